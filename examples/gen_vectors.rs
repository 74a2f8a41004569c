//! Generates the test vectors of `ledger-spec/vectors/`.
//!
//! ```text
//! cargo run --example gen_vectors -- ledger-spec/vectors
//! ```
//!
//! Everything is deterministic: keys come from fixed seeds (`[n; 32]`), timestamps and op ids
//! are constants, and Ed25519 signing (RFC 8032) is deterministic, so running this twice gives
//! byte-identical files. The committed files are the reference; `tests/spec_vectors.rs` checks
//! the library against them and never regenerates them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use points_ledger::api::error::Problem;
use points_ledger::chain::{self, Head};
use points_ledger::client::sign_op;
use points_ledger::codec::{self, CodecError};
use points_ledger::crypto::{self, Keypair};
use points_ledger::merkle::{self, Frontier};
use points_ledger::op::*;
use points_ledger::rules::{self, Ctx, Effects, OpIdRecord, Outcome, Rejection, State, VerifiedOp};
use points_ledger::settlement::{self, SettleBody, StatementTotals};

#[path = "gen_vectors/loyalty.rs"]
mod loyalty;

/// The chain id of every vector (except the wrong-chain ones).
const CHAIN_ID: &str = "points-ledger.example/spec/v1";
/// 2025-01-01T00:00:00Z in unix milliseconds.
const T0: u64 = 1_735_689_600_000;
/// Default `not_after_ms` of the chain's ops: 30 days after `T0`.
const NOT_AFTER: u64 = T0 + 30 * 86_400_000;
/// One day in milliseconds.
const DAY: u64 = 86_400_000;
/// Timestamps of the chain's entries (4 and 5 are equal: timestamps may repeat).
const TIMESTAMPS: [u64; 21] = [
    T0,
    T0 + 60_000,
    T0 + 120_000,
    T0 + 180_000,
    T0 + 3_600_000,
    T0 + 3_600_000,
    T0 + 7_200_000,
    T0 + 7_260_000,
    T0 + DAY,
    T0 + DAY + 3_600_000,
    T0 + DAY + 7_200_000,
    T0 + 2 * DAY,
    T0 + 2 * DAY + 60_000,
    T0 + 2 * DAY + 120_000,
    T0 + 2 * DAY + 180_000,
    T0 + 3 * DAY,
    T0 + 3 * DAY + 300_000,
    T0 + 4 * DAY,
    T0 + 4 * DAY + 3_600_000,
    T0 + 7 * DAY,
    T0 + 7 * DAY + 60_000,
];
/// Seq of the Settle entry, which is built from the state before it.
const SETTLE_SEQ: usize = 19;
/// Number of entries after which the merchant is suspended (entry 10 suspends it, 11 reactivates).
const SUSPENDED: usize = 11;
/// End of the availability window of item 12 after entry 14.
const TEA_UNTIL: u64 = T0 + 90 * DAY;
/// Start of the availability window of item 13.
const GIFT_FROM: u64 = T0 + 365 * DAY;
/// The identity point: a 32-byte string that is a valid encoding of a point of small order,
/// so never an acceptable key.
const IDENTITY_KEY: [u8; 32] = {
    let mut k = [0u8; 32];
    k[0] = 1;
    k
};

struct Keys {
    issuer: Keypair,
    checkpoint: Keypair,
    merchant: Keypair,
    member4: Keypair,
    member5: Keypair,
    auditor: Keypair,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            issuer: Keypair::from_seed([1; 32]),
            checkpoint: Keypair::from_seed([2; 32]),
            merchant: Keypair::from_seed([3; 32]),
            member4: Keypair::from_seed([4; 32]),
            member5: Keypair::from_seed([5; 32]),
            auditor: Keypair::from_seed([6; 32]),
        }
    }

    fn all(&self) -> [(&'static str, u8, &Keypair); 6] {
        [
            ("issuer", 1, &self.issuer),
            ("checkpoint", 2, &self.checkpoint),
            ("merchant", 3, &self.merchant),
            ("member_a", 4, &self.member4),
            ("member_b", 5, &self.member5),
            ("auditor", 6, &self.auditor),
        ]
    }
}

fn id(k: &Keypair) -> AccountId {
    AccountId(k.public_key())
}

fn sign(k: &Keypair, op_id: u128, not_after_ms: u64, op: Op) -> SignedOp {
    sign_op(k, CHAIN_ID, OpId(op_id), not_after_ms, op)
}

fn rate(minor_units: u64, per_points: u64) -> Rate {
    Rate {
        minor_units,
        per_points,
    }
}

fn bytes(s: &str) -> Bytes {
    Bytes(s.as_bytes().to_vec())
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The JSON form of a codec error used by the vectors (`ledger-spec/vectors/README.md`).
fn codec_error_json(e: &CodecError) -> Value {
    match e {
        CodecError::UnexpectedEnd { .. } => json!({ "error": "unexpected_end" }),
        CodecError::TrailingBytes { trailing } => {
            json!({ "error": "trailing_bytes", "trailing": trailing })
        }
        CodecError::UnknownTag { found, .. } => json!({ "error": "unknown_tag", "found": found }),
        CodecError::TooLong { .. } => json!({ "error": "too_long" }),
        CodecError::InvalidUtf8 => json!({ "error": "invalid_utf8" }),
        CodecError::InvalidBool(b) => json!({ "error": "invalid_bool", "found": b }),
        CodecError::BatchTooLarge { count, .. } => {
            json!({ "error": "batch_too_large", "count": count })
        }
        CodecError::Malformed(_) => json!({ "error": "malformed" }),
    }
}

fn rejection_json(r: &Rejection) -> Value {
    let mut v = json!({
        "code": r.code(),
        "http_status": Problem::status_for(r).as_u16(),
    });
    if let Rejection::InvalidField(field) = r {
        v["field"] = json!(field);
    }
    v
}

/// State, op-id index, head and Merkle frontier of a chain being built.
#[derive(Clone)]
struct Ledger {
    state: State,
    ids: HashMap<(AccountId, OpId), OpIdRecord>,
    head: Head,
    frontier: Frontier,
}

struct Applied {
    entry: Entry,
    bytes: Vec<u8>,
    hash: Hash32,
    effects: Effects,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            state: State::new(),
            ids: HashMap::new(),
            head: Head::EMPTY,
            frontier: Frontier::new(),
        }
    }

    fn ctx(&self, timestamp_ms: u64) -> Ctx {
        Ctx {
            seq: self.head.next_seq,
            timestamp_ms: timestamp_ms.max(self.head.timestamp_ms),
        }
    }

    /// Applies an op that must be accepted and appends its entry.
    fn append(&mut self, op: SignedOp, timestamp_ms: u64) -> Applied {
        let verified = VerifiedOp::verify(op).expect("chain ops are correctly signed");
        let ctx = self.ctx(timestamp_ms);
        let effects = match rules::apply(&mut self.state, &mut self.ids, ctx, &verified) {
            Ok(Outcome::Applied(effects)) => effects,
            other => panic!("chain op at seq {} not applied: {other:?}", ctx.seq),
        };
        self.state
            .check_invariants()
            .expect("invariants hold after every entry");
        let entry = self.head.next_entry(verified.into_inner(), timestamp_ms);
        assert_eq!(entry.timestamp_ms, ctx.timestamp_ms);
        self.head
            .check_link(&entry)
            .expect("entry links to the head");
        let (bytes, hash) = chain::seal(&entry);
        self.frontier.append(merkle::leaf_hash(&bytes));
        self.head.advance(&entry, hash);
        Applied {
            entry,
            bytes,
            hash,
            effects,
        }
    }

    fn balances_json(&self) -> Value {
        let sorted: BTreeMap<String, u64> = self
            .state
            .balances()
            .iter()
            .map(|(k, v)| (k.to_hex(), *v))
            .collect();
        json!(sorted)
    }

    fn totals_json(&self) -> Value {
        let t = self.state.totals();
        json!({
            "supply": t.supply,
            "minted": t.minted,
            "burned": t.burned,
            "entries": t.entries,
        })
    }
}

/// One op of the reference chain, with a short description. `op` is `None` for the Settle
/// entry, whose countersigned statement is computed from the state before it.
struct ChainOp {
    what: &'static str,
    op: Option<SignedOp>,
}

fn chain_ops(k: &Keys) -> Vec<ChainOp> {
    let merchant = id(&k.merchant);
    let member4 = id(&k.member4);
    let member5 = id(&k.member5);
    vec![
        ChainOp {
            what: "genesis: the issuer creates the ledger (CNY, 2 minor-unit digits) and names the checkpoint key",
            op: Some(sign(
                &k.issuer,
                1,
                NOT_AFTER,
                Op::Genesis(Genesis {
                    currency: "CNY".into(),
                    minor_unit_digits: 2,
                    checkpoint_key: id(&k.checkpoint),
                }),
            )),
        },
        ChainOp {
            what: "the issuer registers the merchant",
            op: Some(sign(
                &k.issuer,
                2,
                NOT_AFTER,
                Op::RegisterMerchant(RegisterMerchant {
                    merchant,
                    name: "Jade Tea House".into(),
                    issue_rate: rate(1, 1),
                    redeem_rate: rate(9, 10),
                }),
            )),
        },
        ChainOp {
            what: "the issuer registers the auditor",
            op: Some(sign(
                &k.issuer,
                3,
                NOT_AFTER,
                Op::RegisterAuditor(RegisterAuditor {
                    auditor: id(&k.auditor),
                    name: "Ledger Audit Ltd".into(),
                }),
            )),
        },
        ChainOp {
            what: "the issuer mints 1000000 points into the merchant's float",
            op: Some(sign(
                &k.issuer,
                4,
                NOT_AFTER,
                Op::Mint(Mint {
                    to: merchant,
                    amount: Points(1_000_000),
                    memo: bytes("INV-2025-0001"),
                    expires_at_ms: None,
                }),
            )),
        },
        ChainOp {
            what: "the merchant awards 1500 points to member A for a purchase",
            op: Some(sign(
                &k.merchant,
                0x6b2f_0c1e_93a4_4d57_8e21_0f3c_5a9d_e001,
                NOT_AFTER,
                Op::Earn(Earn {
                    member: member4,
                    amount: Points(1_500),
                    reason: EarnReason::Purchase,
                    reference: bytes("receipt-000417"),
                    expires_at_ms: None,
                    pending: None,
                }),
            )),
        },
        ChainOp {
            what: "the merchant awards 250 points to member B for a task (same timestamp as the previous entry)",
            op: Some(sign(
                &k.merchant,
                0x6b2f_0c1e_93a4_4d57_8e21_0f3c_5a9d_e002,
                NOT_AFTER,
                Op::Earn(Earn {
                    member: member5,
                    amount: Points(250),
                    reason: EarnReason::Task,
                    reference: bytes("task:survey-12"),
                    expires_at_ms: None,
                    pending: None,
                }),
            )),
        },
        ChainOp {
            what: "member A transfers 400 points to member B",
            op: Some(sign(
                &k.member4,
                42,
                NOT_AFTER,
                Op::Transfer(Transfer {
                    to: member5,
                    amount: Points(400),
                    memo: bytes("gift"),
                }),
            )),
        },
        ChainOp {
            what: "member B burns 150 of its own points; not_after_ms equals the entry's timestamp (the bound is inclusive)",
            op: Some(sign(
                &k.member5,
                7,
                TIMESTAMPS[7],
                Op::Burn(Burn {
                    from: member5,
                    amount: Points(150),
                    reason: BurnReason::Voluntary,
                }),
            )),
        },
        ChainOp {
            what: "the issuer burns 100 of member A's points as expired",
            op: Some(sign(
                &k.issuer,
                5,
                NOT_AFTER,
                Op::Burn(Burn {
                    from: member4,
                    amount: Points(100),
                    reason: BurnReason::Expiry,
                }),
            )),
        },
        ChainOp {
            what: "the issuer renames the merchant (non-ASCII UTF-8) and changes its redeem rate",
            op: Some(sign(
                &k.issuer,
                6,
                NOT_AFTER,
                Op::UpdateMerchant(UpdateMerchant {
                    merchant,
                    name: Some("Jade Tea House · 玉茶".into()),
                    issue_rate: None,
                    redeem_rate: Some(rate(8, 10)),
                    status: None,
                }),
            )),
        },
        ChainOp {
            what: "the issuer suspends the merchant",
            op: Some(sign(
                &k.issuer,
                7,
                NOT_AFTER,
                Op::UpdateMerchant(UpdateMerchant {
                    merchant,
                    name: None,
                    issue_rate: None,
                    redeem_rate: None,
                    status: Some(MerchantStatus::Suspended),
                }),
            )),
        },
        ChainOp {
            what: "the issuer reactivates the merchant",
            op: Some(sign(
                &k.issuer,
                8,
                NOT_AFTER,
                Op::UpdateMerchant(UpdateMerchant {
                    merchant,
                    name: None,
                    issue_rate: None,
                    redeem_rate: None,
                    status: Some(MerchantStatus::Active),
                }),
            )),
        },
        ChainOp {
            what: "the merchant lists item 12 (its id is this entry's seq): 300 points, 10 units, at most 3 per order and 4 per member, until day 60",
            op: Some(sign(
                &k.merchant,
                0x6b2f_0c1e_93a4_4d57_8e21_0f3c_5a9d_e003,
                NOT_AFTER,
                Op::ListItem(ListItem {
                    title: "Jasmine tea, 100 g".into(),
                    description: "Loose leaf.\nShips in 3 days.".into(),
                    price: Points(300),
                    stock: 10,
                    limit_per_order: 3,
                    limit_per_member: 4,
                    available_from_ms: 0,
                    available_until_ms: Some(T0 + 60 * DAY),
                    active: true,
                }),
            )),
        },
        ChainOp {
            what: "the merchant lists item 13, inactive, available from day 365, no limits",
            op: Some(sign(
                &k.merchant,
                0x6b2f_0c1e_93a4_4d57_8e21_0f3c_5a9d_e004,
                NOT_AFTER,
                Op::ListItem(ListItem {
                    title: "Gift card 50".into(),
                    description: String::new(),
                    price: Points(5_000),
                    stock: 5,
                    limit_per_order: 0,
                    limit_per_member: 0,
                    available_from_ms: GIFT_FROM,
                    available_until_ms: None,
                    active: false,
                }),
            )),
        },
        ChainOp {
            what: "the merchant lowers item 12's price to 250, withdraws 2 units and extends it to day 90",
            op: Some(sign(
                &k.merchant,
                0x6b2f_0c1e_93a4_4d57_8e21_0f3c_5a9d_e005,
                NOT_AFTER,
                Op::UpdateItem(UpdateItem {
                    item_id: 12,
                    title: None,
                    description: None,
                    price: Some(Points(250)),
                    stock_delta: -2,
                    limit_per_order: None,
                    limit_per_member: None,
                    available_from_ms: None,
                    available_until_ms: Some(Some(TEA_UNTIL)),
                    active: None,
                }),
            )),
        },
        ChainOp {
            what: "member A redeems 2 units of item 12 (order 15, 500 points)",
            op: Some(sign(
                &k.member4,
                43,
                NOT_AFTER,
                Op::Redeem(Redeem {
                    item_id: 12,
                    quantity: 2,
                    max_unit_price: Points(250),
                }),
            )),
        },
        ChainOp {
            what: "member B redeems 1 unit of item 12 (order 16, 250 points), accepting up to 300 per unit",
            op: Some(sign(
                &k.member5,
                8,
                NOT_AFTER,
                Op::Redeem(Redeem {
                    item_id: 12,
                    quantity: 1,
                    max_unit_price: Points(300),
                }),
            )),
        },
        ChainOp {
            what: "the merchant fulfils order 15",
            op: Some(sign(
                &k.merchant,
                0x6b2f_0c1e_93a4_4d57_8e21_0f3c_5a9d_e006,
                NOT_AFTER,
                Op::FulfillOrder(FulfillOrder {
                    order_id: 15,
                    reference: bytes("ship-7781"),
                }),
            )),
        },
        ChainOp {
            what: "member B cancels order 16: 250 points back from the merchant, 1 unit back in stock",
            op: Some(sign(
                &k.member5,
                9,
                NOT_AFTER,
                Op::CancelOrder(CancelOrder {
                    order_id: 16,
                    reason: bytes("changed my mind"),
                }),
            )),
        },
        ChainOp {
            what: "the issuer settles the merchant's period (0, 18], countersigned by the merchant: 500 redeemed points are burned",
            op: None,
        },
        ChainOp {
            what: "the merchant activates item 13",
            op: Some(sign(
                &k.merchant,
                0x6b2f_0c1e_93a4_4d57_8e21_0f3c_5a9d_e007,
                NOT_AFTER,
                Op::UpdateItem(UpdateItem {
                    item_id: 13,
                    title: None,
                    description: None,
                    price: None,
                    stock_delta: 0,
                    limit_per_order: None,
                    limit_per_member: None,
                    available_from_ms: None,
                    available_until_ms: None,
                    active: Some(true),
                }),
            )),
        },
    ]
}

/// A Settle op signed by `signer` in the envelope and countersigned by `countersigner` over
/// the body with `chain_id` (normally the ledger's).
#[allow(clippy::too_many_arguments)]
fn settle_with(
    signer: &Keypair,
    countersigner: &Keypair,
    body_chain_id: &str,
    merchant: AccountId,
    from_seq: u64,
    to_seq: u64,
    totals: StatementTotals,
    op_id: u128,
) -> SignedOp {
    let body = SettleBody {
        chain_id: body_chain_id.to_string(),
        merchant,
        from_seq,
        to_seq,
        totals,
    };
    let merchant_signature = Signature(countersigner.sign(&settlement::countersign_payload(&body)));
    sign(
        signer,
        op_id,
        NOT_AFTER,
        Op::Settle(Settle {
            merchant,
            from_seq,
            to_seq,
            totals,
            merchant_signature,
        }),
    )
}

/// The correct Settle of the merchant's period `(from_seq, to_seq]` in `state`.
fn settle_op(k: &Keys, state: &State, from_seq: u64, to_seq: u64, op_id: u128) -> SignedOp {
    let merchant = id(&k.merchant);
    let book = state.book(&merchant).cloned().unwrap_or_default();
    let st = settlement::statement(merchant, &book, to_seq).expect("a statement");
    assert_eq!(st.from_seq, from_seq);
    let op = settle_with(
        &k.issuer,
        &k.merchant,
        CHAIN_ID,
        merchant,
        from_seq,
        to_seq,
        st.totals,
        op_id,
    );
    if let Op::Settle(s) = &op.envelope.op {
        assert_eq!(
            s.merchant_signature,
            settlement::countersign(CHAIN_ID, &k.merchant, &st)
        );
    }
    op
}

fn op_vector(name: &str, signer_role: &str, chain_seq: Option<u64>, op: &SignedOp) -> Value {
    let envelope_bytes = codec::encode_envelope(&op.envelope);
    let payload = codec::signing_payload(&op.envelope);
    let signed = codec::encode_signed_op(op);
    let mut v = json!({
        "name": name,
        "op_type": op.envelope.op.kind(),
        "signer_role": signer_role,
        "envelope": serde_json::to_value(&op.envelope).unwrap(),
        "envelope_hex": hex::encode(&envelope_bytes),
        "signing_payload_hex": hex::encode(&payload),
        "payload_digest": sha256_hex(&payload),
        "signature": op.signature.to_hex(),
        "signed_op_hex": hex::encode(&signed),
    });
    if let Some(seq) = chain_seq {
        v["chain_seq"] = json!(seq);
    }
    if let Op::Settle(st) = &op.envelope.op {
        let body = SettleBody {
            chain_id: op.envelope.chain_id.clone(),
            merchant: st.merchant,
            from_seq: st.from_seq,
            to_seq: st.to_seq,
            totals: st.totals,
        };
        v["countersign_payload_hex"] = json!(hex::encode(settlement::countersign_payload(&body)));
    }
    // serde shows `Some(None)` and `None` alike (null): such JSON does not round-trip.
    let back: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
    if back != op.envelope {
        v["json_round_trip"] = json!(false);
    }
    v
}

fn write_json(dir: &Path, name: &str, value: &Value) {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("wrote {}", path.display());
}

/// Offset of the `Op` enum tag inside canonical envelope (or signed op) bytes.
fn op_tag_offset(op: &SignedOp) -> usize {
    8 + op.envelope.chain_id.len() + 32 + 16 + 8
}

/// One rejection case: an op applied after the first `after` entries of the chain.
struct Case {
    name: String,
    description: String,
    after: usize,
    timestamp_ms: u64,
    op: SignedOp,
}

fn main() {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ledger-spec/vectors"));
    std::fs::create_dir_all(&out).expect("creating the output folder");

    let k = Keys::new();
    let role_of: HashMap<AccountId, &str> = k
        .all()
        .iter()
        .map(|(role, _, kp)| (id(kp), *role))
        .collect();

    // keys.json
    let keys: Vec<Value> = k
        .all()
        .iter()
        .map(|(role, n, kp)| {
            json!({
                "role": role,
                "seed_byte": n,
                "seed": hex::encode(kp.seed()),
                "public_key": hex::encode(kp.public_key()),
            })
        })
        .collect();
    write_json(
        &out,
        "keys.json",
        &json!({
            "description": "Deterministic ed25519 keys of the vectors: the 32-byte RFC 8032 secret seed is the byte `seed_byte` repeated 32 times.",
            "keys": keys,
        }),
    );

    // The reference chain.
    let ops = chain_ops(&k);
    let mut ledger = Ledger::new();
    let mut prefixes: Vec<Ledger> = vec![ledger.clone()];
    let mut entries_json = Vec::new();
    let mut signed: Vec<SignedOp> = Vec::new();
    for (i, c) in ops.iter().enumerate() {
        let op = match &c.op {
            Some(op) => op.clone(),
            None => {
                assert_eq!(i, SETTLE_SEQ);
                settle_op(&k, &ledger.state, 0, SETTLE_SEQ as u64 - 1, 9)
            }
        };
        signed.push(op.clone());
        let a = ledger.append(op.clone(), TIMESTAMPS[i]);
        assert_eq!(a.entry.seq as usize, i);
        let history: Vec<String> = a
            .effects
            .parties
            .as_slice()
            .iter()
            .map(AccountId::to_hex)
            .collect();
        let signer_role = role_of[&op.envelope.signer];
        entries_json.push(json!({
            "seq": a.entry.seq,
            "description": c.what,
            "op_type": op.envelope.op.kind(),
            "signer_role": signer_role,
            "timestamp_ms": a.entry.timestamp_ms,
            "prev_hash": a.entry.prev_hash.to_hex(),
            "signed_op_hex": hex::encode(codec::encode_signed_op(&a.entry.signed_op)),
            "entry_hex": hex::encode(&a.bytes),
            "entry_hash": a.hash.to_hex(),
            "leaf_hash": hex::encode(merkle::leaf_hash(&a.bytes)),
            "merkle_root": hex::encode(ledger.frontier.root()),
            "history": history,
            "balances": ledger.balances_json(),
            "totals": ledger.totals_json(),
        }));
        prefixes.push(ledger.clone());
    }
    let n = signed.len();
    let after_ts = |after: usize| -> u64 {
        if after < n {
            TIMESTAMPS[after]
        } else {
            TIMESTAMPS[n - 1] + 60_000
        }
    };

    // Idempotent retries: the very same signed op again.
    let mut retries = Vec::new();
    for (seq, after, why) in [
        (6usize, n, "a plain retry of member A's transfer, at the end of the chain"),
        (4, SUSPENDED, "the merchant's earn, retried while the merchant is suspended (after entry 10): idempotency is checked before the op's own checks"),
        (7, n, "member B's burn, retried after its not_after_ms has passed: idempotency is checked before expiry"),
        (16, n, "member B's redemption, retried after the order was cancelled"),
    ] {
        let op = &signed[seq];
        let mut l = prefixes[after].clone();
        let before = l.state.clone();
        let verified = VerifiedOp::verify(op.clone()).unwrap();
        let ts = after_ts(after);
        let ctx = l.ctx(ts);
        let outcome = rules::apply(&mut l.state, &mut l.ids, ctx, &verified).unwrap();
        assert_eq!(outcome, Outcome::Duplicate { seq: seq as u64 });
        assert!(l.state == before);
        retries.push(json!({
            "description": why,
            "after_entries": after,
            "timestamp_ms": ts,
            "signed_op_hex": hex::encode(codec::encode_signed_op(op)),
            "expect": { "duplicate_of_seq": seq },
        }));
    }

    // Mall and settlement state at the end (the serde form of the records).
    let merchant_id = id(&k.merchant);
    let mut items_json = serde_json::Map::new();
    let mut item_ids: Vec<u64> = ledger.state.items().keys().copied().collect();
    item_ids.sort_unstable();
    for item_id in item_ids {
        items_json.insert(
            item_id.to_string(),
            serde_json::to_value(ledger.state.item(item_id).unwrap()).unwrap(),
        );
    }
    let mut orders_json = serde_json::Map::new();
    for order_id in 0..n as u64 {
        if let Some(o) = ledger.state.order(order_id) {
            orders_json.insert(order_id.to_string(), serde_json::to_value(o).unwrap());
        }
    }
    let mut settlements_json = serde_json::Map::new();
    for sid in 0..n as u64 {
        if let Some(r) = ledger.state.settlement(sid) {
            settlements_json.insert(sid.to_string(), serde_json::to_value(r).unwrap());
        }
    }
    let book = ledger.state.book(&merchant_id).cloned().unwrap_or_default();
    let books_json = json!({
        merchant_id.to_hex(): {
            "settled_to": book.settled_to,
            "settlements": book.settlements,
            "open_events": book.events.len(),
        }
    });
    // The statement the Settle entry carries, computed from the state before it.
    {
        let before = &prefixes[SETTLE_SEQ].state;
        let book = before.book(&merchant_id).cloned().unwrap_or_default();
        let st = settlement::statement(merchant_id, &book, SETTLE_SEQ as u64 - 1).unwrap();
        entries_json[SETTLE_SEQ]["statement"] = serde_json::to_value(&st).unwrap();
    }

    let retry_count = retries.len();
    write_json(
        &out,
        "chain.json",
        &json!({
            "description": "A short valid chain. Replay each entry in order through the rules starting from an empty state; after entry i the balances, totals and Merkle root (tree of entries 0..=i) must be as listed.",
            "chain_id": CHAIN_ID,
            "entries": entries_json,
            "final": {
                "size": n,
                "head_hash": ledger.head.hash.to_hex(),
                "head_timestamp_ms": ledger.head.timestamp_ms,
                "merkle_root": hex::encode(ledger.frontier.root()),
                "balances": ledger.balances_json(),
                "totals": ledger.totals_json(),
                "items": items_json,
                "orders": orders_json,
                "settlements": settlements_json,
                "books": books_json,
            },
            "retries": retries,
        }),
    );

    // ops.json: one vector per op type, in tag order, taken from the chain, plus extras.
    let mut op_vectors = Vec::new();
    for (name, seq) in [
        ("genesis", 0usize),
        ("register_merchant", 1),
        ("update_merchant", 9),
        ("register_auditor", 2),
        ("mint", 3),
        ("earn", 4),
        ("transfer", 6),
        ("burn", 7),
        ("list_item", 12),
        ("update_item", 14),
        ("redeem", 15),
        ("fulfill_order", 17),
        ("cancel_order", 18),
        ("settle", SETTLE_SEQ),
    ] {
        let op = &signed[seq];
        op_vectors.push(op_vector(
            name,
            role_of[&op.envelope.signer],
            Some(seq as u64),
            op,
        ));
    }
    let all_fields = sign(
        &k.issuer,
        0xffff_ffff_ffff_ffff_ffff_ffff_ffff_fffe,
        u64::MAX,
        Op::UpdateMerchant(UpdateMerchant {
            merchant: id(&k.merchant),
            name: Some("Jade".into()),
            issue_rate: Some(rate(3, 2)),
            redeem_rate: Some(rate(u64::MAX, 1)),
            status: Some(MerchantStatus::Active),
        }),
    );
    op_vectors.push(op_vector(
        "update_merchant_all_fields",
        "issuer",
        None,
        &all_fields,
    ));
    let empty_memo = sign(
        &k.member5,
        u128::MAX,
        0,
        Op::Transfer(Transfer {
            to: id(&k.member4),
            amount: Points(u64::MAX),
            memo: Bytes(Vec::new()),
        }),
    );
    op_vectors.push(op_vector(
        "transfer_extremes",
        "member_b",
        None,
        &empty_memo,
    ));
    let update_all = sign(
        &k.merchant,
        1,
        NOT_AFTER,
        Op::UpdateItem(UpdateItem {
            item_id: 12,
            title: Some("Jasmine tea, 250 g".into()),
            description: Some(String::new()),
            price: Some(Points(700)),
            stock_delta: i64::MIN,
            limit_per_order: Some(0),
            limit_per_member: Some(u64::MAX),
            available_from_ms: Some(T0),
            available_until_ms: Some(None),
            active: Some(false),
        }),
    );
    op_vectors.push(op_vector(
        "update_item_all_fields",
        "merchant",
        None,
        &update_all,
    ));
    op_vectors.extend(loyalty::write_chain(&out, &k));
    let batch_ops = vec![signed[4].clone(), signed[5].clone()];
    write_json(
        &out,
        "ops.json",
        &json!({
            "description": "One signed op per op type (tag order), then extra encodings. signing_payload = OP_SIGNING_DOMAIN || envelope bytes; signed_op = envelope bytes || signature; payload_digest = SHA-256(signing payload), the idempotency digest.",
            "chain_id": CHAIN_ID,
            "op_signing_domain_hex": hex::encode(OP_SIGNING_DOMAIN),
            "entry_hash_domain_hex": hex::encode(chain::ENTRY_HASH_DOMAIN),
            "vectors": op_vectors,
            "batch": {
                "description": "A batch of the ops of chain entries 4 and 5: u64 LE count, then each signed op.",
                "signed_ops_hex": batch_ops.iter().map(|o| hex::encode(codec::encode_signed_op(o))).collect::<Vec<_>>(),
                "batch_hex": hex::encode(codec::encode_batch(&batch_ops)),
            },
        }),
    );

    // invalid.json: rejections.
    let merchant = id(&k.merchant);
    let member4 = id(&k.member4);
    let member5 = id(&k.member5);
    let auditor = id(&k.auditor);
    let issuer = id(&k.issuer);
    let mut cases: Vec<Case> = Vec::new();
    let next_id = std::cell::Cell::new(1000u128);
    let mk = |name: &str,
              description: &str,
              after: usize,
              signer: &Keypair,
              not_after: Option<u64>,
              op: Op|
     -> Case {
        next_id.set(next_id.get() + 1);
        Case {
            name: name.into(),
            description: description.into(),
            after,
            timestamp_ms: after_ts(after),
            op: sign(signer, next_id.get(), not_after.unwrap_or(NOT_AFTER), op),
        }
    };
    let transfer = |to: AccountId, amount: u64, memo: Bytes| {
        Op::Transfer(Transfer {
            to,
            amount: Points(amount),
            memo,
        })
    };
    let mint = |to: AccountId, amount: u64, memo: Bytes| {
        Op::Mint(Mint {
            to,
            amount: Points(amount),
            memo,
            expires_at_ms: None,
        })
    };
    let earn = |member: AccountId, amount: u64, reference: Bytes| {
        Op::Earn(Earn {
            member,
            amount: Points(amount),
            reason: EarnReason::Purchase,
            reference,
            expires_at_ms: None,
            pending: None,
        })
    };
    let burn = |from: AccountId, amount: u64, reason: BurnReason| {
        Op::Burn(Burn {
            from,
            amount: Points(amount),
            reason,
        })
    };
    let reg_merchant = |merchant: AccountId, name: &str, issue: Rate, redeem: Rate| {
        Op::RegisterMerchant(RegisterMerchant {
            merchant,
            name: name.into(),
            issue_rate: issue,
            redeem_rate: redeem,
        })
    };
    let reg_auditor = |auditor: AccountId, name: &str| {
        Op::RegisterAuditor(RegisterAuditor {
            auditor,
            name: name.into(),
        })
    };
    let genesis = |currency: &str, digits: u8, key: AccountId| {
        Op::Genesis(Genesis {
            currency: currency.into(),
            minor_unit_digits: digits,
            checkpoint_key: key,
        })
    };
    let update = |merchant: AccountId, name: Option<&str>, redeem: Option<Rate>| {
        Op::UpdateMerchant(UpdateMerchant {
            merchant,
            name: name.map(Into::into),
            issue_rate: None,
            redeem_rate: redeem,
            status: None,
        })
    };
    let ok_rate = rate(1, 1);
    let long_bytes = Bytes(vec![b'x'; REFERENCE_LEN_MAX + 1]);
    let name65 = "n".repeat(NAME_LEN_MAX + 1);
    let cp = id(&k.checkpoint);

    cases.push(mk(
        "not_initialized",
        "a mint before any genesis",
        0,
        &k.issuer,
        None,
        mint(merchant, 1, Bytes::default()),
    ));
    cases.push(mk(
        "already_initialized",
        "a second genesis",
        n,
        &k.issuer,
        None,
        genesis("CNY", 2, cp),
    ));
    cases.push(mk(
        "wrong_chain",
        "a burn signed for another chain id",
        n,
        &k.member4,
        None,
        Op::Burn(Burn {
            from: member4,
            amount: Points(1),
            reason: BurnReason::Voluntary,
        }),
    ));
    // Re-sign the wrong-chain case for another chain.
    {
        let last = cases.last_mut().unwrap();
        last.op = sign_op(
            &k.member4,
            "points-ledger.example/other",
            last.op.envelope.op_id,
            NOT_AFTER,
            last.op.envelope.op.clone(),
        );
    }
    cases.push(mk(
        "duplicate_op_id",
        "member A reuses the op id of its transfer (entry 6) for a different op",
        n,
        &k.member4,
        None,
        transfer(member5, 1, Bytes::default()),
    ));
    cases.last_mut().unwrap().op = sign(
        &k.member4,
        42,
        NOT_AFTER,
        transfer(member5, 1, Bytes::default()),
    );
    cases.push(mk(
        "expired",
        "not_after_ms is one millisecond before the entry timestamp",
        n,
        &k.member4,
        Some(after_ts(n) - 1),
        transfer(member5, 1, Bytes::default()),
    ));
    cases.push(mk(
        "not_authorized_mint",
        "a member tries to mint",
        n,
        &k.member4,
        None,
        mint(member4, 1, Bytes::default()),
    ));
    cases.push(mk(
        "not_authorized_earn",
        "a member (not a merchant) signs an earn",
        n,
        &k.member4,
        None,
        earn(member5, 1, Bytes::default()),
    ));
    cases.push(mk(
        "not_authorized_burn_other",
        "member A burns member B's points",
        n,
        &k.member4,
        None,
        burn(member5, 1, BurnReason::Voluntary),
    ));
    cases.push(mk(
        "not_authorized_burn_reason",
        "member B burns its own points with reason expiry (issuer only)",
        n,
        &k.member5,
        None,
        burn(member5, 1, BurnReason::Expiry),
    ));
    cases.push(mk(
        "not_authorized_register",
        "the auditor tries to register a merchant",
        n,
        &k.auditor,
        None,
        reg_merchant(member4, "Shop", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "unknown_merchant",
        "the issuer updates a key that is not a merchant",
        n,
        &k.issuer,
        None,
        update(member4, Some("Shop"), None),
    ));
    cases.push(mk(
        "merchant_suspended_earn",
        "the suspended merchant awards points",
        SUSPENDED,
        &k.merchant,
        None,
        earn(member4, 1, Bytes::default()),
    ));
    cases.push(mk(
        "merchant_suspended_transfer",
        "the suspended merchant transfers points",
        SUSPENDED,
        &k.merchant,
        None,
        transfer(member4, 1, Bytes::default()),
    ));
    cases.push(mk(
        "merchant_suspended_burn",
        "the suspended merchant burns its own points",
        SUSPENDED,
        &k.merchant,
        None,
        burn(merchant, 1, BurnReason::Voluntary),
    ));
    cases.push(mk(
        "merchant_exists",
        "the merchant is registered a second time",
        n,
        &k.issuer,
        None,
        reg_merchant(merchant, "Again", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "auditor_exists",
        "the auditor is registered a second time",
        n,
        &k.issuer,
        None,
        reg_auditor(auditor, "Again"),
    ));
    cases.push(mk(
        "role_conflict_merchant_is_auditor",
        "the auditor's key registered as a merchant",
        n,
        &k.issuer,
        None,
        reg_merchant(auditor, "Shop", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "role_conflict_merchant_is_issuer",
        "the issuer's key registered as a merchant",
        n,
        &k.issuer,
        None,
        reg_merchant(issuer, "Shop", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "role_conflict_auditor_is_merchant",
        "the merchant's key registered as an auditor",
        n,
        &k.issuer,
        None,
        reg_auditor(merchant, "Audit"),
    ));
    cases.push(mk(
        "role_conflict_auditor_is_issuer",
        "the issuer's key registered as an auditor",
        n,
        &k.issuer,
        None,
        reg_auditor(issuer, "Audit"),
    ));
    cases.push(mk(
        "invalid_account_mint",
        "a mint to the identity point (small order)",
        n,
        &k.issuer,
        None,
        mint(AccountId(IDENTITY_KEY), 1, Bytes::default()),
    ));
    cases.push(mk(
        "invalid_account_transfer",
        "a transfer to the all-zero string (a point of order 4)",
        n,
        &k.member4,
        None,
        transfer(AccountId([0; 32]), 1, Bytes::default()),
    ));
    cases.push(mk(
        "invalid_account_register",
        "a merchant whose key is not canonical (y >= p)",
        n,
        &k.issuer,
        None,
        reg_merchant(AccountId([0xff; 32]), "Shop", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "invalid_account_earn",
        "an earn to the identity point, before the merchant is suspended",
        10,
        &k.merchant,
        None,
        earn(AccountId(IDENTITY_KEY), 1, Bytes::default()),
    ));
    cases.push(mk(
        "invalid_field_chain_id_case",
        "a genesis whose chain id has an uppercase letter",
        0,
        &k.issuer,
        None,
        genesis("CNY", 2, cp),
    ));
    cases.push(mk(
        "invalid_field_currency_case",
        "a genesis with a lowercase currency code",
        0,
        &k.issuer,
        None,
        genesis("cny", 2, cp),
    ));
    cases.push(mk(
        "invalid_field_currency_length",
        "a genesis with a 4-letter currency code",
        0,
        &k.issuer,
        None,
        genesis("CNYX", 2, cp),
    ));
    cases.push(mk(
        "invalid_field_minor_unit_digits",
        "a genesis with 5 minor-unit digits",
        0,
        &k.issuer,
        None,
        genesis("CNY", 5, cp),
    ));
    cases.push(mk(
        "invalid_field_checkpoint_key",
        "a genesis whose checkpoint key is the identity point",
        0,
        &k.issuer,
        None,
        genesis("CNY", 2, AccountId(IDENTITY_KEY)),
    ));
    cases.push(mk(
        "invalid_field_name_empty",
        "a merchant with an empty name",
        n,
        &k.issuer,
        None,
        reg_merchant(member4, "", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "invalid_field_name_long",
        "a merchant with a 65-byte name",
        n,
        &k.issuer,
        None,
        reg_merchant(member4, &name65, ok_rate, ok_rate),
    ));
    cases.push(mk(
        "invalid_field_name_newline",
        "a merchant name with a line feed",
        n,
        &k.issuer,
        None,
        reg_merchant(member4, "Tea\nHouse", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "invalid_field_name_c1_control",
        "a merchant name with U+0085 (a C1 control character)",
        n,
        &k.issuer,
        None,
        reg_merchant(member4, "Tea\u{85}House", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "invalid_field_issue_rate",
        "a merchant with issue_rate.per_points = 0",
        n,
        &k.issuer,
        None,
        reg_merchant(member4, "Shop", rate(1, 0), ok_rate),
    ));
    cases.push(mk(
        "invalid_field_redeem_rate",
        "a merchant with redeem_rate.per_points = 0",
        n,
        &k.issuer,
        None,
        reg_merchant(member4, "Shop", ok_rate, rate(0, 0)),
    ));
    cases.push(mk(
        "invalid_field_update_name",
        "an update to an empty name",
        n,
        &k.issuer,
        None,
        update(merchant, Some(""), None),
    ));
    cases.push(mk(
        "invalid_field_update_rate",
        "an update to a redeem rate with per_points = 0",
        n,
        &k.issuer,
        None,
        update(merchant, None, Some(rate(5, 0))),
    ));
    cases.push(mk(
        "invalid_field_auditor_name",
        "an auditor with a 65-byte name",
        n,
        &k.issuer,
        None,
        reg_auditor(member4, &name65),
    ));
    cases.push(mk(
        "invalid_field_mint_memo",
        "a mint with a 65-byte memo",
        n,
        &k.issuer,
        None,
        mint(member4, 1, long_bytes.clone()),
    ));
    cases.push(mk(
        "invalid_field_transfer_memo",
        "a transfer with a 65-byte memo",
        n,
        &k.member4,
        None,
        transfer(member5, 1, long_bytes.clone()),
    ));
    cases.push(mk(
        "invalid_field_earn_reference",
        "an earn with a 65-byte reference, before the merchant is suspended",
        10,
        &k.merchant,
        None,
        earn(member4, 1, long_bytes.clone()),
    ));
    cases.push(mk(
        "zero_amount_transfer",
        "a transfer of 0 points",
        n,
        &k.member4,
        None,
        transfer(member5, 0, Bytes::default()),
    ));
    cases.push(mk(
        "zero_amount_mint",
        "a mint of 0 points",
        n,
        &k.issuer,
        None,
        mint(member5, 0, Bytes::default()),
    ));
    cases.push(mk(
        "zero_amount_burn",
        "a burn of 0 points",
        n,
        &k.member5,
        None,
        burn(member5, 0, BurnReason::Voluntary),
    ));
    cases.push(mk(
        "zero_amount_earn",
        "an earn of 0 points, before the merchant is suspended",
        10,
        &k.merchant,
        None,
        earn(member4, 0, Bytes::default()),
    ));
    cases.push(mk(
        "self_transfer",
        "member A transfers to itself",
        n,
        &k.member4,
        None,
        transfer(member4, 1, Bytes::default()),
    ));
    cases.push(mk(
        "self_transfer_earn",
        "the merchant awards points to itself, before it is suspended",
        10,
        &k.merchant,
        None,
        earn(merchant, 1, Bytes::default()),
    ));
    cases.push(mk(
        "unknown_account_issuer_burn",
        "the issuer burns from the auditor, which never held points",
        n,
        &k.issuer,
        None,
        burn(auditor, 1, BurnReason::Correction),
    ));
    cases.push(mk(
        "unknown_account_own_burn",
        "the auditor burns its own (never held) points",
        n,
        &k.auditor,
        None,
        burn(auditor, 1, BurnReason::Voluntary),
    ));
    cases.push(mk(
        "insufficient_funds_transfer",
        "member A (balance 500) transfers 501",
        n,
        &k.member4,
        None,
        transfer(member5, 501, Bytes::default()),
    ));
    cases.push(mk("insufficient_funds_no_account", "the auditor, which never held points, transfers 1: insufficient_funds, not unknown_account", n, &k.auditor, None, transfer(member5, 1, Bytes::default())));
    cases.push(mk(
        "insufficient_funds_burn",
        "member B (balance 500) burns 501",
        n,
        &k.member5,
        None,
        burn(member5, 501, BurnReason::Voluntary),
    ));
    cases.push(mk(
        "insufficient_funds_earn",
        "the merchant awards more than its float, before it is suspended",
        10,
        &k.merchant,
        None,
        earn(member4, 998_251, Bytes::default()),
    ));
    cases.push(mk(
        "overflow_mint",
        "a mint of exactly 2^64 - supply points: one more than fits",
        n,
        &k.issuer,
        None,
        mint(
            member4,
            u64::MAX - prefixes[n].state.totals().supply + 1,
            Bytes::default(),
        ),
    ));
    // Precedence: several faults at once; the first check in the normative order wins.
    cases.push(mk(
        "order_expired_before_authority",
        "a member mints 0 points with an expired op: expiry is checked before authority",
        n,
        &k.member4,
        Some(0),
        mint(member4, 0, Bytes::default()),
    ));
    cases.push(mk(
        "order_op_id_before_expiry",
        "member A reuses op id 42 in an expired op: the op id is checked before expiry",
        n,
        &k.member4,
        None,
        transfer(member5, 1, Bytes::default()),
    ));
    cases.last_mut().unwrap().op = sign(&k.member4, 42, 0, transfer(member5, 1, Bytes::default()));
    cases.push(mk(
        "order_authority_before_fields",
        "a member mints 0 points with a 65-byte memo: authority first",
        n,
        &k.member4,
        None,
        mint(member4, 0, long_bytes.clone()),
    ));
    cases.push(mk(
        "order_fields_before_amount",
        "a mint of 0 points with a 65-byte memo: memo before amount",
        n,
        &k.issuer,
        None,
        mint(member4, 0, long_bytes.clone()),
    ));
    cases.push(mk(
        "order_name_before_rates",
        "a merchant with an empty name and per_points = 0: name first",
        n,
        &k.issuer,
        None,
        reg_merchant(member4, "", rate(1, 0), rate(1, 0)),
    ));
    cases.push(mk(
        "order_fields_before_account",
        "a merchant with an invalid key and an empty name: fields before the key",
        n,
        &k.issuer,
        None,
        reg_merchant(AccountId(IDENTITY_KEY), "", ok_rate, ok_rate),
    ));
    cases.push(mk(
        "order_fields_before_existence",
        "the existing merchant registered again with per_points = 0: fields before existence",
        n,
        &k.issuer,
        None,
        reg_merchant(merchant, "Again", rate(1, 0), ok_rate),
    ));
    cases.push(mk(
        "order_fields_before_unknown_merchant",
        "an update of a non-merchant with an empty name: fields before the merchant lookup",
        n,
        &k.issuer,
        None,
        update(member4, Some(""), None),
    ));
    cases.push(mk(
        "order_suspended_before_amount",
        "the suspended merchant transfers 0 points to itself",
        SUSPENDED,
        &k.merchant,
        None,
        transfer(merchant, 0, Bytes::default()),
    ));
    cases.push(mk(
        "order_self_before_funds",
        "member B transfers more than its balance to itself",
        n,
        &k.member5,
        None,
        transfer(member5, 10_000, Bytes::default()),
    ));
    cases.push(mk(
        "order_unknown_account_before_funds",
        "the issuer burns a huge amount from a key that never held points",
        n,
        &k.issuer,
        None,
        burn(AccountId(IDENTITY_KEY), u64::MAX, BurnReason::Correction),
    ));
    cases.push(mk(
        "order_zero_before_self",
        "member A transfers 0 points to itself",
        n,
        &k.member4,
        None,
        transfer(member4, 0, Bytes::default()),
    ));
    // The mall.
    let list = |title: &str, description: &str, price: u64, until: Option<u64>| {
        Op::ListItem(ListItem {
            title: title.into(),
            description: description.into(),
            price: Points(price),
            stock: 1,
            limit_per_order: 0,
            limit_per_member: 0,
            available_from_ms: 100,
            available_until_ms: until,
            active: true,
        })
    };
    let update_item = |item_id: u64, price: Option<u64>, stock_delta: i64, from: Option<u64>| {
        Op::UpdateItem(UpdateItem {
            item_id,
            title: None,
            description: None,
            price: price.map(Points),
            stock_delta,
            limit_per_order: None,
            limit_per_member: None,
            available_from_ms: from,
            available_until_ms: None,
            active: None,
        })
    };
    let redeem = |item_id: u64, quantity: u64, max: u64| {
        Op::Redeem(Redeem {
            item_id,
            quantity,
            max_unit_price: Points(max),
        })
    };
    let fulfill = |order_id: u64, reference: Bytes| {
        Op::FulfillOrder(FulfillOrder {
            order_id,
            reference,
        })
    };
    let cancel = |order_id: u64, reason: Bytes| Op::CancelOrder(CancelOrder { order_id, reason });
    cases.push(mk(
        "not_authorized_list_item",
        "a member lists an item",
        n,
        &k.member4,
        None,
        list("Tea", "", 10, None),
    ));
    cases.push(mk(
        "merchant_suspended_list_item",
        "the merchant lists an item while suspended (after entry 10)",
        11,
        &k.merchant,
        None,
        list("Tea", "", 10, None),
    ));
    cases.push(mk(
        "invalid_field_title_empty",
        "an item with an empty title",
        n,
        &k.merchant,
        None,
        list("", "", 10, None),
    ));
    cases.push(mk(
        "invalid_field_title_long",
        "an item with an 81-byte title",
        n,
        &k.merchant,
        None,
        list(&"t".repeat(81), "", 10, None),
    ));
    cases.push(mk(
        "invalid_field_description_long",
        "an item with a 281-byte description",
        n,
        &k.merchant,
        None,
        list("Tea", &"d".repeat(281), 10, None),
    ));
    cases.push(mk(
        "invalid_field_description_tab",
        "an item description with a tab (only line feeds are allowed)",
        n,
        &k.merchant,
        None,
        list("Tea", "a\tb", 10, None),
    ));
    cases.push(mk(
        "invalid_field_window_empty",
        "an item available from 100 until 100 (the end is exclusive)",
        n,
        &k.merchant,
        None,
        list("Tea", "", 10, Some(100)),
    ));
    cases.push(mk(
        "zero_amount_list_price",
        "an item priced at 0 points",
        n,
        &k.merchant,
        None,
        list("Tea", "", 0, None),
    ));
    cases.push(mk(
        "unknown_item_update",
        "an update of item 999",
        n,
        &k.merchant,
        None,
        update_item(999, Some(1), 0, None),
    ));
    cases.push(mk(
        "not_authorized_update_item",
        "a member updates item 12",
        n,
        &k.member4,
        None,
        update_item(12, Some(1), 0, None),
    ));
    cases.push(mk(
        "invalid_field_stock_delta",
        "withdrawing 7 units of item 12, which has 6",
        n,
        &k.merchant,
        None,
        update_item(12, None, -7, None),
    ));
    cases.push(mk(
        "zero_amount_update_price",
        "a new price of 0 for item 12",
        n,
        &k.merchant,
        None,
        update_item(12, Some(0), 0, None),
    ));
    cases.push(mk(
        "invalid_field_update_window",
        "moving item 12's start to its end",
        n,
        &k.merchant,
        None,
        update_item(12, None, 0, Some(TEA_UNTIL)),
    ));
    cases.push(mk(
        "unknown_item_redeem",
        "a redemption of item 999",
        n,
        &k.member4,
        None,
        redeem(999, 1, 1_000),
    ));
    cases.push(mk(
        "zero_amount_redeem",
        "a redemption of 0 units",
        n,
        &k.member4,
        None,
        redeem(12, 0, 1_000),
    ));
    cases.push(mk(
        "self_transfer_redeem",
        "the merchant redeems its own item",
        n,
        &k.merchant,
        None,
        redeem(12, 1, 1_000),
    ));
    cases.push(mk(
        "item_inactive",
        "a redemption of item 13 before it is activated (after entry 19)",
        20,
        &k.member4,
        None,
        redeem(13, 1, 5_000),
    ));
    cases.push(mk(
        "not_available_before_start",
        "a redemption of item 13 before its availability starts",
        n,
        &k.member4,
        None,
        redeem(13, 1, 5_000),
    ));
    cases.push(mk(
        "not_available_at_end",
        "a redemption of item 12 at exactly its (exclusive) end",
        n,
        &k.member4,
        Some(u64::MAX),
        redeem(12, 1, 250),
    ));
    cases.last_mut().unwrap().timestamp_ms = TEA_UNTIL;
    cases.push(mk(
        "limit_exceeded_per_order",
        "4 units of item 12 in one order (limit 3)",
        n,
        &k.member5,
        None,
        redeem(12, 4, 250),
    ));
    cases.push(mk(
        "limit_exceeded_per_member",
        "member A, holding 2 units of item 12 in a fulfilled order, asks for 3 more (limit 4)",
        n,
        &k.member4,
        None,
        redeem(12, 3, 250),
    ));
    cases.push(mk(
        "price_above_max",
        "member B accepts at most 249 per unit; the price is 250",
        n,
        &k.member5,
        None,
        redeem(12, 1, 249),
    ));
    cases.push(mk(
        "out_of_stock",
        "6 units of item 13 (stock 5), at exactly its (inclusive) start",
        n,
        &k.member4,
        Some(u64::MAX),
        redeem(13, 6, 5_000),
    ));
    cases.last_mut().unwrap().timestamp_ms = GIFT_FROM;
    cases.push(mk(
        "insufficient_funds_redeem",
        "member B (balance 500) redeems a 5000-point gift card",
        n,
        &k.member5,
        Some(u64::MAX),
        redeem(13, 1, 5_000),
    ));
    cases.last_mut().unwrap().timestamp_ms = GIFT_FROM;
    cases.push(mk(
        "unknown_order_fulfill",
        "the merchant fulfils order 999",
        n,
        &k.merchant,
        None,
        fulfill(999, Bytes::default()),
    ));
    cases.push(mk(
        "not_authorized_fulfill",
        "member A fulfils its own order 15",
        n,
        &k.member4,
        None,
        fulfill(15, Bytes::default()),
    ));
    cases.push(mk(
        "order_closed_fulfill",
        "the merchant fulfils the cancelled order 16",
        n,
        &k.merchant,
        None,
        fulfill(16, Bytes::default()),
    ));
    cases.push(mk(
        "invalid_field_fulfil_reference",
        "a fulfilment reference of 65 bytes",
        n,
        &k.merchant,
        None,
        fulfill(16, long_bytes.clone()),
    ));
    cases.push(mk(
        "unknown_order_cancel",
        "member A cancels order 999",
        n,
        &k.member4,
        None,
        cancel(999, Bytes::default()),
    ));
    cases.push(mk(
        "not_authorized_cancel",
        "member B cancels member A's order 15",
        n,
        &k.member5,
        None,
        cancel(15, Bytes::default()),
    ));
    cases.push(mk(
        "order_closed_cancel",
        "member A cancels its fulfilled order 15",
        n,
        &k.member4,
        None,
        cancel(15, Bytes::default()),
    ));
    cases.push(mk(
        "invalid_field_cancel_reason",
        "a cancellation reason of 65 bytes",
        n,
        &k.member4,
        None,
        cancel(15, long_bytes.clone()),
    ));
    cases.push(mk(
        "order_authority_before_status",
        "the auditor cancels the fulfilled order 15: authority before status",
        n,
        &k.auditor,
        None,
        cancel(15, Bytes::default()),
    ));
    cases.push(mk("order_item_checks_before_funds", "member B (balance 500) asks for 4 units of item 12: the per-order limit is checked before funds", n, &k.member5, None, redeem(12, 4, 250)));

    // Settlement (the merchant's last settlement ended at 18; the next op would be seq 21).
    let zero = StatementTotals::default();
    let mut settle_cases: Vec<(&str, &str, SignedOp)> = vec![
        ("not_authorized_settle", "the merchant signs the Settle envelope itself", settle_with(&k.merchant, &k.merchant, CHAIN_ID, merchant, 18, 20, zero, 2001)),
        ("unknown_merchant_settle", "a Settle for member A, who is not a merchant", settle_with(&k.issuer, &k.member4, CHAIN_ID, member4, 0, 20, zero, 2002)),
        ("period_mismatch_start", "a period starting at 0 instead of the last settlement's end (18)", settle_with(&k.issuer, &k.merchant, CHAIN_ID, merchant, 0, 20, zero, 2003)),
        ("period_mismatch_empty", "a period (18, 18]", settle_with(&k.issuer, &k.merchant, CHAIN_ID, merchant, 18, 18, zero, 2004)),
        ("period_mismatch_future", "a period ending at 21, the seq of the Settle itself", settle_with(&k.issuer, &k.merchant, CHAIN_ID, merchant, 18, 21, zero, 2005)),
        ("bad_countersignature", "the period (18, 20] countersigned by member A instead of the merchant", settle_with(&k.issuer, &k.member4, CHAIN_ID, merchant, 18, 20, zero, 2006)),
        ("bad_countersignature_other_chain", "the merchant countersigned a body naming another chain id", settle_with(&k.issuer, &k.merchant, "points-ledger.example/other", merchant, 18, 20, zero, 2007)),
        ("statement_mismatch", "a correctly countersigned statement claiming 1 awarded point in (18, 20], where nothing happened", settle_with(&k.issuer, &k.merchant, CHAIN_ID, merchant, 18, 20, StatementTotals { points_awarded: 1, ..zero }, 2008)),
        ("order_period_before_countersignature", "a wrong period and a wrong countersigner: the period is checked first", settle_with(&k.issuer, &k.member4, CHAIN_ID, merchant, 0, 20, zero, 2009)),
    ];
    for (name, description, op) in settle_cases.drain(..) {
        cases.push(Case {
            name: name.into(),
            description: description.into(),
            after: n,
            timestamp_ms: after_ts(n),
            op,
        });
    }
    // A correct Settle of the same period is accepted (checked here, not a vector).
    {
        let mut l = prefixes[n].clone();
        let ok = settle_op(&k, &l.state, 18, 20, 2010);
        let verified = VerifiedOp::verify(ok).unwrap();
        let ctx = l.ctx(after_ts(n));
        assert!(matches!(
            rules::apply(&mut l.state, &mut l.ids, ctx, &verified),
            Ok(Outcome::Applied(_))
        ));
    }

    // The genesis op of entry 0 submitted again is an idempotent retry (checked here, not a
    // vector): the original receipt stands and nothing changes.
    {
        let mut l = prefixes[n].clone();
        let verified = VerifiedOp::verify(signed[0].clone()).unwrap();
        let ctx = l.ctx(after_ts(n));
        assert!(matches!(
            rules::apply(&mut l.state, &mut l.ids, ctx, &verified),
            Ok(Outcome::Duplicate { seq: 0 })
        ));
    }
    // Malformed chain ids only make sense in a genesis, the only op whose chain id is validated.
    for c in cases.iter_mut() {
        if c.name == "invalid_field_chain_id_case" {
            c.op = sign_op(
                &k.issuer,
                "Points/Spec",
                c.op.envelope.op_id,
                NOT_AFTER,
                c.op.envelope.op.clone(),
            );
        }
    }
    cases.push(mk(
        "invalid_field_chain_id_empty",
        "a genesis with an empty chain id",
        0,
        &k.issuer,
        None,
        genesis("CNY", 2, cp),
    ));
    {
        let c = cases.last_mut().unwrap();
        c.op = sign_op(
            &k.issuer,
            "",
            c.op.envelope.op_id,
            NOT_AFTER,
            c.op.envelope.op.clone(),
        );
    }
    cases.push(mk(
        "invalid_field_chain_id_long",
        "a genesis with a 65-byte chain id",
        0,
        &k.issuer,
        None,
        genesis("CNY", 2, cp),
    ));
    {
        let c = cases.last_mut().unwrap();
        let long = "a".repeat(CHAIN_ID_LEN_MAX + 1);
        c.op = sign_op(
            &k.issuer,
            &long,
            c.op.envelope.op_id,
            NOT_AFTER,
            c.op.envelope.op.clone(),
        );
    }

    cases.extend(loyalty::invalid_cases(&k, n, after_ts(n)));

    let mut rejections = Vec::new();
    for c in &cases {
        let mut l = prefixes[c.after].clone();
        let before = l.state.clone();
        let verified = VerifiedOp::verify(c.op.clone())
            .unwrap_or_else(|e| panic!("case {}: signature refused: {e}", c.name));
        let ctx = Ctx {
            seq: l.head.next_seq,
            timestamp_ms: c.timestamp_ms,
        };
        let rejection = match rules::apply(&mut l.state, &mut l.ids, ctx, &verified) {
            Err(r) => r,
            Ok(o) => panic!("case {} was not rejected: {o:?}", c.name),
        };
        assert!(
            l.state == before,
            "case {}: a rejection changed the state",
            c.name
        );
        rejections.push(json!({
            "name": c.name,
            "description": c.description,
            "after_entries": c.after,
            "seq": ctx.seq,
            "timestamp_ms": ctx.timestamp_ms,
            "signed_op_hex": hex::encode(codec::encode_signed_op(&c.op)),
            "expect": rejection_json(&rejection),
        }));
    }

    // Signature failures: refused before the rules run.
    let mut sig_cases: Vec<(String, String, SignedOp)> = Vec::new();
    {
        let mut tampered = signed[6].clone();
        if let Op::Transfer(t) = &mut tampered.envelope.op {
            t.amount = Points(4_000);
        }
        sig_cases.push((
            "bad_signature_tampered".into(),
            "entry 6's transfer with the amount changed after signing".into(),
            tampered,
        ));
        let mut other_chain = signed[6].clone();
        other_chain.envelope.chain_id = "points-ledger.example/other".into();
        sig_cases.push((
            "bad_signature_other_chain".into(),
            "entry 6's transfer with its chain id changed: the signature is checked before the chain id".into(),
            other_chain,
        ));
        let mut high_s = signed[6].clone();
        high_s.signature.0[32..].copy_from_slice(&[0xff; 32]);
        sig_cases.push((
            "bad_signature_s_not_reduced".into(),
            "entry 6's transfer with s = 2^256 - 1".into(),
            high_s,
        ));
        let mut small_key = signed[6].clone();
        small_key.envelope.signer = AccountId(IDENTITY_KEY);
        sig_cases.push((
            "bad_signature_small_order_signer".into(),
            "entry 6's transfer claiming the identity point as its signer".into(),
            small_key,
        ));
    }
    for (name, description, op) in &sig_cases {
        let payload = codec::signing_payload(&op.envelope);
        let sig_err = crypto::verify(&op.envelope.signer.0, &payload, &op.signature.0)
            .expect_err("the signature must be refused");
        let r = VerifiedOp::verify(op.clone()).expect_err("the op must be refused");
        assert_eq!(r, Rejection::BadSignature);
        rejections.push(json!({
            "name": name,
            "description": description,
            "after_entries": n,
            "seq": n,
            "timestamp_ms": after_ts(n),
            "signed_op_hex": hex::encode(codec::encode_signed_op(op)),
            "expect": rejection_json(&r),
            "signature_error": sig_err.code(),
        }));
    }

    // Every code must be covered.
    for code in Rejection::ALL_CODES {
        assert!(
            rejections.iter().any(|r| r["expect"]["code"] == *code),
            "no vector for rejection code {code}"
        );
    }

    // Decoding cases.
    let transfer_op = &signed[6];
    let t_bytes = codec::encode_signed_op(transfer_op);
    let t_tag = op_tag_offset(transfer_op);
    let earn_bytes = codec::encode_signed_op(&signed[4]);
    let e_tag = op_tag_offset(&signed[4]);
    let burn_bytes = codec::encode_signed_op(&signed[7]);
    let b_tag = op_tag_offset(&signed[7]);
    let upd9 = codec::encode_signed_op(&signed[9]);
    let u9_tag = op_tag_offset(&signed[9]);
    let upd10 = codec::encode_signed_op(&signed[10]);
    let u10_tag = op_tag_offset(&signed[10]);
    let chain_entry = |seq: usize| -> Vec<u8> {
        hex::decode(entries_json[seq]["entry_hex"].as_str().unwrap()).unwrap()
    };

    let mut decoding: Vec<(String, String, &'static str, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, description: &str, kind: &'static str, b: Vec<u8>| {
        decoding.push((name.into(), description.into(), kind, b));
    };
    let with = |base: &[u8], at: usize, patch: &[u8]| -> Vec<u8> {
        let mut v = base.to_vec();
        v[at..at + patch.len()].copy_from_slice(patch);
        v
    };
    add("empty", "no bytes at all", "signed_op", Vec::new());
    add(
        "truncated_last_byte",
        "entry 6's signed op without its last signature byte",
        "signed_op",
        t_bytes[..t_bytes.len() - 1].to_vec(),
    );
    add(
        "truncated_in_chain_id",
        "cut inside the chain id",
        "signed_op",
        t_bytes[..12].to_vec(),
    );
    add(
        "truncated_in_length",
        "cut inside the chain id's length prefix",
        "signed_op",
        t_bytes[..5].to_vec(),
    );
    add(
        "envelope_only",
        "an envelope without its signature",
        "signed_op",
        codec::encode_envelope(&transfer_op.envelope),
    );
    let mut trailing = t_bytes.clone();
    trailing.push(0);
    add(
        "trailing_byte",
        "entry 6's signed op followed by one 00 byte",
        "signed_op",
        trailing,
    );
    let mut trailing3 = t_bytes.clone();
    trailing3.extend_from_slice(&[1, 2, 3]);
    add(
        "trailing_bytes_3",
        "entry 6's signed op followed by three bytes",
        "signed_op",
        trailing3,
    );
    add(
        "unknown_op_tag",
        "op tag 200",
        "signed_op",
        with(&t_bytes, t_tag, &200u32.to_le_bytes()),
    );
    add(
        "unknown_op_tag_high_byte",
        "op tag 0x01000006: the tag is a full u32, not a byte",
        "signed_op",
        with(&t_bytes, t_tag, &0x0100_0006u32.to_le_bytes()),
    );
    add(
        "unknown_op_tag_max",
        "op tag 0xffffffff",
        "signed_op",
        with(&t_bytes, t_tag, &u32::MAX.to_le_bytes()),
    );
    add(
        "unknown_earn_reason",
        "earn reason tag 5 (entry 4)",
        "signed_op",
        with(&earn_bytes, e_tag + 4 + 32 + 8, &5u32.to_le_bytes()),
    );
    add(
        "unknown_burn_reason",
        "burn reason tag 3 (entry 7)",
        "signed_op",
        with(&burn_bytes, b_tag + 4 + 32 + 8, &3u32.to_le_bytes()),
    );
    add(
        "unknown_merchant_status",
        "merchant status tag 2 (entry 10)",
        "signed_op",
        with(&upd10, u10_tag + 4 + 32 + 4, &2u32.to_le_bytes()),
    );
    add(
        "bad_option_tag",
        "option tag 2 for UpdateMerchant.name (entry 10)",
        "signed_op",
        with(&upd10, u10_tag + 4 + 32, &[2]),
    );
    add(
        "bad_option_tag_ff",
        "option tag 0xff for UpdateMerchant.status (entry 10)",
        "signed_op",
        with(&upd10, u10_tag + 4 + 32 + 3, &[0xff]),
    );
    add(
        "length_over_limit",
        "chain id length prefix 2^40",
        "signed_op",
        with(&t_bytes, 0, &(1u64 << 40).to_le_bytes()),
    );
    add(
        "length_max",
        "chain id length prefix 2^64 - 1",
        "signed_op",
        with(&t_bytes, 0, &u64::MAX.to_le_bytes()),
    );
    add(
        "length_just_over_limit",
        "chain id length prefix 65537",
        "signed_op",
        with(&t_bytes, 0, &65_537u64.to_le_bytes()),
    );
    add(
        "length_past_end",
        "memo length prefix 1000, beyond the end of the input but within the limit",
        "signed_op",
        with(&t_bytes, t_tag + 4 + 32 + 8, &1000u64.to_le_bytes()),
    );
    add(
        "name_length_past_end",
        "UpdateMerchant.name length prefix 4096 (entry 9)",
        "signed_op",
        with(&upd9, u9_tag + 4 + 32 + 1, &4096u64.to_le_bytes()),
    );
    add(
        "invalid_utf8",
        "byte 0xff inside the chain id",
        "signed_op",
        with(&t_bytes, 8, &[0xff]),
    );
    add(
        "invalid_utf8_overlong",
        "an overlong encoding of '/' (c0 af) inside the chain id",
        "signed_op",
        with(&t_bytes, 8, &[0xc0, 0xaf]),
    );
    add(
        "invalid_utf8_surrogate",
        "an encoded surrogate (ed a0 80) inside the chain id",
        "signed_op",
        with(&t_bytes, 8, &[0xed, 0xa0, 0x80]),
    );
    let mut big = t_bytes.clone();
    big.resize(codec::DECODE_BYTES_MAX + 1, 0);
    add(
        "message_over_limit",
        "65537 bytes: entry 6's signed op padded with zeros",
        "signed_op",
        big,
    );
    // The largest acceptable message: a transfer whose memo fills the message to exactly 64 KiB.
    let mut fill = transfer_op.clone();
    let fixed = t_bytes.len() - 4; // everything but the memo's 4 bytes ("gift")
    if let Op::Transfer(t) = &mut fill.envelope.op {
        t.memo = Bytes(vec![0x6d; codec::DECODE_BYTES_MAX - fixed]);
    }
    let fill_bytes = codec::encode_signed_op(&fill);
    assert_eq!(fill_bytes.len(), codec::DECODE_BYTES_MAX);
    add(
        "message_at_limit",
        "exactly 65536 bytes (a 65401-byte memo, invalid for the rules but well formed): decodes",
        "signed_op",
        fill_bytes,
    );
    add("entry_ok", "entry 6 of chain.json", "entry", chain_entry(6));
    let mut e_trailing = chain_entry(6);
    e_trailing.push(0);
    add(
        "entry_trailing_byte",
        "entry 6 followed by one 00 byte",
        "entry",
        e_trailing,
    );
    let e6 = chain_entry(6);
    add(
        "entry_truncated",
        "entry 6 without its last byte",
        "entry",
        e6[..e6.len() - 1].to_vec(),
    );
    add(
        "entry_unknown_op_tag",
        "entry 6 with op tag 200",
        "entry",
        with(&e6, 48 + t_tag, &200u32.to_le_bytes()),
    );
    let batch = codec::encode_batch(&batch_ops);
    add("batch_ok", "the batch of ops.json", "batch", batch.clone());
    add(
        "batch_empty",
        "a batch of zero ops",
        "batch",
        0u64.to_le_bytes().to_vec(),
    );
    let mut over = (codec::BATCH_OPS_MAX as u64 + 1).to_le_bytes().to_vec();
    over.extend_from_slice(&t_bytes);
    add(
        "batch_too_large",
        "a batch claiming 4097 ops",
        "batch",
        over,
    );
    add(
        "batch_short",
        "a batch claiming 3 ops that holds 2",
        "batch",
        with(&batch, 0, &3u64.to_le_bytes()),
    );
    let mut b_trailing = batch.clone();
    b_trailing.push(0);
    add(
        "batch_trailing_byte",
        "the batch followed by one 00 byte",
        "batch",
        b_trailing,
    );
    add(
        "batch_bad_op",
        "a batch whose second op has op tag 200",
        "batch",
        {
            let second = 8 + t_bytes_len(&signed[4]);
            with(
                &batch,
                second + op_tag_offset(&signed[5]),
                &200u32.to_le_bytes(),
            )
        },
    );

    let list_op = &signed[12];
    let l_bytes = codec::encode_signed_op(list_op);
    let l_active = {
        let Op::ListItem(li) = &list_op.envelope.op else {
            unreachable!()
        };
        op_tag_offset(list_op) + 4 + 8 + li.title.len() + 8 + li.description.len() + 5 * 8 + 9
    };
    assert_eq!(l_bytes[l_active], 1);
    add(
        "bad_bool",
        "ListItem.active = 02 (entry 12)",
        "signed_op",
        with(&l_bytes, l_active, &[2]),
    );
    let upd_op = &signed[14];
    let ui_bytes = codec::encode_signed_op(upd_op);
    // item_id 8, title 1, description 1, price 1+8, stock_delta 8, limits 1+1, from 1, then
    // the outer and inner tags of available_until_ms.
    let ui_until = op_tag_offset(upd_op) + 4 + 8 + 1 + 1 + 9 + 8 + 1 + 1 + 1;
    assert_eq!(&ui_bytes[ui_until..ui_until + 2], &[1, 1]);
    add(
        "bad_inner_option_tag",
        "UpdateItem.available_until_ms (an Option<Option<u64>>) with inner tag 02 (entry 14)",
        "signed_op",
        with(&ui_bytes, ui_until + 1, &[2]),
    );
    add(
        "option_none_inside_some",
        "UpdateItem.available_until_ms = Some(None): tags 01 00 and no value (entry 14 with the 8 value bytes removed)",
        "signed_op",
        {
            let mut v = ui_bytes[..ui_until + 1].to_vec();
            v.push(0);
            v.extend_from_slice(&ui_bytes[ui_until + 2 + 8..]);
            v
        },
    );

    let mut decoding_json = Vec::new();
    for (name, description, kind, b) in &decoding {
        let result: Result<(), CodecError> = match *kind {
            "signed_op" => codec::decode_signed_op(b).map(|_| ()),
            "entry" => codec::decode_entry(b).map(|_| ()),
            "batch" => codec::decode_batch(b).map(|_| ()),
            _ => unreachable!(),
        };
        let expect = match &result {
            Ok(()) => json!({ "ok": true }),
            Err(e) => codec_error_json(e),
        };
        decoding_json.push(json!({
            "name": name,
            "description": description,
            "decode_as": kind,
            "hex": hex::encode(b),
            "expect": expect,
        }));
    }

    write_json(
        &out,
        "invalid.json",
        &json!({
            "description": "Ops the rules refuse, each applied to the state after the first `after_entries` entries of chain.json at the given seq and timestamp, and byte strings the decoder refuses (or, for the boundary cases, accepts).",
            "chain_id": CHAIN_ID,
            "rejections": rejections,
            "decoding": decoding_json,
        }),
    );
    println!(
        "{} op vectors, {} chain entries, {} retries, {} rejections, {} decoding cases",
        op_vectors.len(),
        n,
        retry_count,
        rejections.len(),
        decoding.len()
    );
}

fn t_bytes_len(op: &SignedOp) -> usize {
    codec::encode_signed_op(op).len()
}
