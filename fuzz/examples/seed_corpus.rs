//! Writes the seed corpora of the fuzz targets: real canonical ops, batches and entries of
//! every core op type, API request bodies, checkpoint notes and verifier keys, and a few
//! fixed byte strings for the structured targets. Deterministic: keys come from fixed seeds.
//!
//! Run from `fuzz/`: `cargo run --example seed_corpus -- corpus`.

use std::path::Path;

use points_ledger::api::dto::{BatchRequest, SubmitRequest};
use points_ledger::chain::Head;
use points_ledger::checkpoint::{Checkpoint, NoteVerifier};
use points_ledger::client::sign_op;
use points_ledger::codec;
use points_ledger::crypto::Keypair;
use points_ledger::merkle;
use points_ledger::op::*;

const CHAIN: &str = "fuzz.points.local/seed";

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus folder");
    std::fs::write(d.join(name), bytes).expect("corpus file");
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&out);
    let issuer = Keypair::from_seed([1; 32]);
    let merchant = Keypair::from_seed([2; 32]);
    let member = Keypair::from_seed([3; 32]);
    let id = |k: &Keypair| AccountId(k.public_key());
    let rate = Rate {
        minor_units: 1,
        per_points: 100,
    };
    let ops: Vec<(&str, &Keypair, Op)> = vec![
        (
            "genesis",
            &issuer,
            Op::Genesis(Genesis {
                currency: "CNY".into(),
                minor_unit_digits: 2,
                checkpoint_key: id(&member),
            }),
        ),
        (
            "register_merchant",
            &issuer,
            Op::RegisterMerchant(RegisterMerchant {
                merchant: id(&merchant),
                name: "Tea House".into(),
                issue_rate: rate,
                redeem_rate: rate,
            }),
        ),
        (
            "update_merchant",
            &issuer,
            Op::UpdateMerchant(UpdateMerchant {
                merchant: id(&merchant),
                name: None,
                issue_rate: Some(rate),
                redeem_rate: None,
                status: Some(MerchantStatus::Suspended),
            }),
        ),
        (
            "register_auditor",
            &issuer,
            Op::RegisterAuditor(RegisterAuditor {
                auditor: id(&member),
                name: "Audit Co".into(),
            }),
        ),
        (
            "mint",
            &issuer,
            Op::Mint(Mint {
                to: id(&merchant),
                amount: Points(10_000),
                memo: Bytes(b"INV-1".to_vec()),
                expires_at_ms: Some(1_900_000_000_000),
            }),
        ),
        (
            "earn",
            &merchant,
            Op::Earn(Earn {
                member: id(&member),
                amount: Points(500),
                reason: EarnReason::Purchase,
                reference: Bytes(b"R-1001".to_vec()),
                expires_at_ms: None,
                pending: Some(Pending {
                    release_at_ms: Some(1_850_000_000_000),
                }),
            }),
        ),
        (
            "transfer",
            &member,
            Op::Transfer(Transfer {
                to: id(&issuer),
                amount: Points(120),
                memo: Bytes(Vec::new()),
            }),
        ),
        (
            "burn",
            &member,
            Op::Burn(Burn {
                from: id(&member),
                amount: Points(30),
                reason: BurnReason::Voluntary,
            }),
        ),
    ];
    let mut signed = Vec::new();
    let mut head = Head::EMPTY;
    for (i, (name, key, op)) in ops.into_iter().enumerate() {
        let op = sign_op(key, CHAIN, OpId(i as u128 + 1), 1_900_000_000_000, op);
        let bytes = codec::encode_signed_op(&op);
        write(dir, "decode_signed_op", name, &bytes);
        let hex_op = hex::encode(&bytes);
        let body = serde_json::to_vec(&SubmitRequest { signed_op: hex_op }).expect("json");
        write(dir, "api_bodies", &format!("submit_{name}"), &body);
        let json = serde_json::to_vec(&op).expect("json");
        write(dir, "api_bodies", &format!("op_{name}"), &json);
        let entry = head.next_entry(op.clone(), 1_800_000_000_000 + i as u64);
        let (entry_bytes, hash) = points_ledger::chain::seal(&entry);
        head.advance(&entry, hash);
        write(dir, "decode_entry", name, &entry_bytes);
        signed.push(op);
    }
    write(
        dir,
        "decode_signed_op",
        "batch",
        &codec::encode_batch(&signed[4..7]),
    );
    let batch = BatchRequest {
        signed_ops: signed
            .iter()
            .map(|op| hex::encode(codec::encode_signed_op(op)))
            .collect(),
    };
    write(
        dir,
        "api_bodies",
        "batch",
        &serde_json::to_vec(&batch).expect("json"),
    );

    let log_key = Keypair::from_seed([7; 32]);
    let origin = "fuzz.points.local/log";
    let cp = Checkpoint {
        origin: origin.into(),
        size: 8,
        root: merkle::leaf_hash(b"root"),
        head: head.hash.0,
        time_ms: 1_800_000_000_000,
    };
    write(dir, "checkpoint_note", "body", cp.body().as_bytes());
    write(
        dir,
        "checkpoint_note",
        "note",
        cp.sign(origin, &log_key).as_bytes(),
    );
    let vkey = NoteVerifier::new(origin, log_key.public_key())
        .expect("verifier")
        .vkey();
    write(dir, "checkpoint_note", "vkey", vkey.as_bytes());

    // Structured targets read their input through `arbitrary`: any bytes will do as seeds.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for target in ["rules_sequence", "merkle_proofs", "batch_vs_single"] {
        for (i, len) in [64usize, 256, 1024].into_iter().enumerate() {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            write(dir, target, &format!("seed{i}"), &bytes);
        }
    }
    println!("wrote the seed corpora under {}", dir.display());
}
