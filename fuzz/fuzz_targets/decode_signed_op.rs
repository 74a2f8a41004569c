//! Canonical decoding of a signed op and of a batch of them: never panics, and whatever
//! decodes re-encodes to exactly the input (one value, one encoding). A decoded op also goes
//! through strict signature verification, which must not panic on any key or signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use points_ledger::codec;
use points_ledger::rules::VerifiedOp;

fuzz_target!(|data: &[u8]| {
    if let Ok(op) = codec::decode_signed_op(data) {
        assert_eq!(
            codec::encode_signed_op(&op),
            data,
            "decoded bytes that are not canonical"
        );
        let payload = codec::signing_payload(&op.envelope);
        assert!(payload.ends_with(&codec::encode_envelope(&op.envelope)));
        let _ = VerifiedOp::verify(op);
    }
    if let Ok(ops) = codec::decode_batch(data) {
        assert!(ops.len() <= codec::BATCH_OPS_MAX);
        assert_eq!(
            codec::encode_batch(&ops),
            data,
            "decoded a batch that is not canonical"
        );
    }
});
