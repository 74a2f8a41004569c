//! What the API parses from a request body: JSON submit and batch requests (hex of canonical
//! ops), raw canonical ops and batches, and signed ops in their JSON form. Nothing panics;
//! every value that parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use points_ledger::api::dto::{BatchRequest, SubmitRequest};
use points_ledger::codec;
use points_ledger::op::SignedOp;

/// The API's handling of one hex-encoded op: bounded, lowercase only, then canonical decode.
fn hex_op(s: &str) {
    if s.len() > 2 * codec::DECODE_BYTES_MAX || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return;
    }
    let Ok(bytes) = hex::decode(s) else {
        return;
    };
    if let Ok(op) = codec::decode_signed_op(&bytes) {
        assert_eq!(codec::encode_signed_op(&op), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<SubmitRequest>(data) {
        hex_op(&req.signed_op);
    }
    if let Ok(req) = serde_json::from_slice::<BatchRequest>(data) {
        for h in req.signed_ops.iter().take(codec::BATCH_OPS_MAX) {
            hex_op(h);
        }
    }
    if let Ok(op) = serde_json::from_slice::<SignedOp>(data) {
        let json = serde_json::to_vec(&op).expect("a parsed op serializes");
        let back: SignedOp = serde_json::from_slice(&json).expect("and parses back");
        assert_eq!(back, op);
        let bytes = codec::encode_signed_op(&op);
        // Ops that fit the decoder's limit decode back from their canonical bytes.
        if bytes.len() <= codec::DECODE_BYTES_MAX {
            assert_eq!(codec::decode_signed_op(&bytes).as_ref(), Ok(&op));
        }
    }
    let _ = codec::decode_signed_op(data);
    let _ = codec::decode_batch(data);
});
