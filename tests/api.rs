//! The HTTP API over real HTTP on 127.0.0.1, against an in-process server with a real sled
//! store: submission in both body formats, idempotency, every rejection with its stable
//! problem code, malformed input that must never be a 500, batches and pagination.
//! After every rejection the ledger must be exactly as it was.

mod common;

use std::collections::BTreeSet;

use common::*;
use points_ledger::api::dto::{BatchResponse, EntryView, Health, InfoResponse, Page};
use points_ledger::client::{self, DEFAULT_TTL_MS};
use points_ledger::codec;
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::store::Receipt;
use serde_json::json;

const OCTETS: &str = "application/octet-stream";
const JSON: &str = "application/json";

/// A ledger with a merchant holding a float of 1_000_000 and member A holding 10_000.
struct Setup {
    srv: TestServer,
    merchant: Keypair,
    a: Keypair,
    b: Keypair,
}

impl Setup {
    async fn new() -> Setup {
        let srv = TestServer::start().await;
        let merchant = Keypair::generate();
        let a = Keypair::generate();
        let b = Keypair::generate();
        srv.register_merchant(&merchant, "Corner Coffee").await;
        srv.mint(&id(&merchant), 1_000_000).await;
        srv.ok(&merchant, earn_op(id(&a), 10_000, "receipt-1"))
            .await;
        Setup {
            srv,
            merchant,
            a,
            b,
        }
    }

    fn accounts(&self) -> Vec<AccountId> {
        vec![
            self.srv.issuer_id(),
            id(&self.merchant),
            id(&self.a),
            id(&self.b),
        ]
    }

    async fn snapshot(&self) -> Snapshot {
        self.srv.snapshot(&self.accounts()).await
    }

    /// POSTs `body` to `path` with an optional content type.
    async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self.srv.http.post(self.srv.at(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        req.send().await.expect("the server answers")
    }

    /// GETs `path`, signed by the issuer (who may read every route).
    async fn get(&self, path: &str) -> reqwest::Response {
        let auth = points_ledger::api::auth::authorization_value(
            &self.srv.issuer,
            "GET",
            path,
            points_ledger::client::now_ms(),
            &self.srv.chain_id,
        );
        self.srv
            .http
            .get(self.srv.at(path))
            .header(reqwest::header::AUTHORIZATION, auth)
            .send()
            .await
            .expect("the server answers")
    }

    /// POSTs a request that must fail with `status` and `code` and change nothing.
    async fn rejected(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        status: u16,
        code: &str,
    ) -> points_ledger::api::error::Problem {
        let before = self.snapshot().await;
        let resp = self.post(path, content_type, body).await;
        let p = expect_problem(resp, status, code).await;
        assert_eq!(
            self.snapshot().await,
            before,
            "a rejected request changed the ledger"
        );
        p
    }

    /// Submits a signed op as canonical bytes and as JSON; both must be refused with the
    /// rule's code and its status, leaving the ledger unchanged.
    async fn rule_rejects(&self, op: &SignedOp, code: &str) {
        let bytes = codec::encode_signed_op(op);
        let status = status_of(code);
        self.rejected("/v1/ops", Some(OCTETS), bytes.clone(), status, code)
            .await;
        self.rejected("/v1/ops", Some(JSON), json_op(&bytes), status, code)
            .await;
    }

    async fn submit_octets(&self, op: &SignedOp) -> Receipt {
        let resp = self
            .post("/v1/ops", Some(OCTETS), codec::encode_signed_op(op))
            .await;
        expect_json(resp).await
    }

    async fn submit_json(&self, op: &SignedOp) -> Receipt {
        let resp = self
            .post("/v1/ops", Some(JSON), json_op(&codec::encode_signed_op(op)))
            .await;
        expect_json(resp).await
    }
}

/// The HTTP status of each rule rejection, as `ledger-spec/api.md` fixes it.
fn status_of(code: &str) -> u16 {
    match code {
        "not_authorized" | "merchant_suspended" => 403,
        "duplicate_op_id"
        | "merchant_exists"
        | "auditor_exists"
        | "role_conflict"
        | "insufficient_funds"
        | "already_initialized" => 409,
        _ => 422,
    }
}

fn json_op(bytes: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "signed_op": hex::encode(bytes) })).expect("JSON")
}

fn json_batch(ops: &[SignedOp]) -> Vec<u8> {
    let hexes: Vec<String> = ops
        .iter()
        .map(|op| hex::encode(codec::encode_signed_op(op)))
        .collect();
    serde_json::to_vec(&json!({ "signed_ops": hexes })).expect("JSON")
}

/// Offset of the op's enum tag in the canonical bytes of a signed op.
fn op_tag_offset(op: &SignedOp) -> usize {
    8 + op.envelope.chain_id.len() + 32 + 16 + 8
}

/// A key that is not a valid account: the identity point, of small order.
fn small_order_key() -> AccountId {
    let mut k = [0u8; 32];
    k[0] = 1;
    AccountId(k)
}

#[tokio::test]
async fn submit_as_canonical_bytes_and_as_json() {
    let s = Setup::new().await;
    let (a, b) = (id(&s.a), id(&s.b));

    let op = s.srv.sign(&s.a, transfer_op(b, 100));
    let before = s.srv.info().await;
    let r = s.submit_octets(&op).await;
    assert_eq!(r.seq, before.size);
    assert_eq!(r.signed_op, op, "the receipt holds exactly the op sent");
    let info = s.srv.info().await;
    assert_eq!(info.size, before.size + 1);
    assert_eq!(info.head, r.entry_hash);
    let entry = s.srv.client.entry(r.seq).await.expect("entry");
    assert_eq!(entry.entry_hash, r.entry_hash);
    assert_eq!(entry.prev_hash, before.head);
    assert_eq!(entry.timestamp_ms, r.timestamp_ms);
    assert_eq!(entry.op, op);

    let op2 = s.srv.sign(&s.a, transfer_op(b, 250));
    let r2 = s.submit_json(&op2).await;
    assert_eq!(r2.seq, r.seq + 1);
    assert_eq!(r2.signed_op, op2);

    // Parameters on the media type are fine.
    let op3 = s.srv.sign(&s.a, burn_op(a, 50));
    let resp = s
        .post(
            "/v1/ops",
            Some("application/json; charset=utf-8"),
            json_op(&codec::encode_signed_op(&op3)),
        )
        .await;
    let r3: Receipt = expect_json(resp).await;
    assert_eq!(r3.seq, r2.seq + 1);

    assert_eq!(s.srv.balances(&[a, b]).await, vec![10_000 - 400, 350]);
    let info = s.srv.info().await;
    assert_eq!(
        (info.minted, info.burned, info.supply),
        (1_000_000, 50, 999_950)
    );
    let health: Health = expect_json(s.get("/healthz").await).await;
    assert_eq!(health.status, "ok");
    assert_eq!(health.size, info.size);
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_same_receipt_and_changes_nothing() {
    let mut s = Setup::new().await;
    let op = s.srv.sign(&s.a, transfer_op(id(&s.b), 700));
    let first = s.submit_octets(&op).await;
    let after_first = s.snapshot().await;

    assert_eq!(s.submit_octets(&op).await, first);
    assert_eq!(s.submit_json(&op).await, first);
    let batch = s
        .srv
        .client
        .submit_batch(&[op.clone(), op.clone()])
        .await
        .expect("batch");
    for item in &batch {
        assert_eq!(item.status, "applied");
        assert_eq!(item.receipt.as_ref(), Some(&first));
    }
    assert_eq!(s.snapshot().await, after_first);

    // The op-id index is durable: the same answer after a restart.
    s.srv.restart().await;
    assert_eq!(s.snapshot().await, after_first);
    assert_eq!(s.submit_octets(&op).await, first);
    assert_eq!(s.snapshot().await, after_first);
    assert_eq!(s.srv.balance(&id(&s.b)).await, 700);
}

#[tokio::test]
async fn op_ids_are_per_signer_and_a_reused_one_is_refused() {
    let s = Setup::new().await;
    let b = id(&s.b);
    let first = s.srv.sign_id(&s.a, 77, transfer_op(b, 10));
    s.submit_octets(&first).await;

    // Same signer, same op id, another op.
    let other = s.srv.sign_id(&s.a, 77, transfer_op(b, 11));
    s.rule_rejects(&other, "duplicate_op_id").await;
    // Even the same op with another expiry is another op.
    let mut later = first.envelope.clone();
    later.not_after_ms += 1;
    let later = client::sign_op(
        &s.a,
        &later.chain_id,
        later.op_id,
        later.not_after_ms,
        later.op,
    );
    s.rule_rejects(&later, "duplicate_op_id").await;

    // Another signer may use the same op id.
    s.submit_octets(&s.srv.sign_id(&s.merchant, 77, earn_op(b, 5, "r")))
        .await;
    // A refused op does not use up its op id.
    let too_much = s.srv.sign_id(&s.a, 78, transfer_op(b, 1_000_000));
    s.rule_rejects(&too_much, "insufficient_funds").await;
    let fine = s.srv.sign_id(&s.a, 78, transfer_op(b, 1));
    s.submit_octets(&fine).await;
    assert_eq!(s.srv.balance(&b).await, 16);
}

#[tokio::test]
async fn every_rule_rejection_has_its_code_and_changes_nothing() {
    let s = Setup::new().await;
    let srv = &s.srv;
    let (a, b, m) = (id(&s.a), id(&s.b), id(&s.merchant));
    let now = client::now_ms();

    // Envelope checks.
    let expired = client::sign_op(
        &s.a,
        &srv.chain_id,
        client::random_op_id(),
        now - 1,
        transfer_op(b, 1),
    );
    s.rule_rejects(&expired, "expired").await;
    let ancient = client::sign_op(
        &s.a,
        &srv.chain_id,
        client::random_op_id(),
        0,
        transfer_op(b, 1),
    );
    s.rule_rejects(&ancient, "expired").await;
    let elsewhere = client::sign_op(
        &s.a,
        "other.points.local/prod",
        client::random_op_id(),
        now + DEFAULT_TTL_MS,
        transfer_op(b, 1),
    );
    s.rule_rejects(&elsewhere, "wrong_chain").await;

    // Signatures.
    let mut flipped = srv.sign(&s.a, transfer_op(b, 1));
    flipped.signature.0[10] ^= 0x01;
    s.rule_rejects(&flipped, "bad_signature").await;
    let mut tampered = srv.sign(&s.a, transfer_op(b, 1));
    tampered.envelope.op = transfer_op(b, 9_000);
    s.rule_rejects(&tampered, "bad_signature").await;
    let mut impostor = srv.sign(&s.b, transfer_op(b, 1));
    impostor.envelope.signer = a;
    s.rule_rejects(&impostor, "bad_signature").await;
    let mut weak = srv.sign(&s.a, transfer_op(b, 1));
    weak.envelope.signer = small_order_key();
    s.rule_rejects(&weak, "bad_signature").await;
    let mut unreduced = srv.sign(&s.a, transfer_op(b, 1));
    unreduced.signature.0[32..].fill(0xff);
    s.rule_rejects(&unreduced, "bad_signature").await;

    // Amounts.
    for op in [transfer_op(b, 0), burn_op(a, 0)] {
        s.rule_rejects(&srv.sign(&s.a, op), "zero_amount").await;
    }
    s.rule_rejects(&srv.sign(&s.merchant, earn_op(b, 0, "r")), "zero_amount")
        .await;
    s.rule_rejects(&srv.sign(&srv.issuer, mint_op(b, 0)), "zero_amount")
        .await;
    s.rule_rejects(&srv.sign(&srv.issuer, mint_op(b, u64::MAX)), "overflow")
        .await;
    s.rule_rejects(
        &srv.sign(&srv.issuer, mint_op(m, u64::MAX - 1_000_000 + 1)),
        "overflow",
    )
    .await;
    s.rule_rejects(
        &srv.sign(&s.a, transfer_op(b, 10_001)),
        "insufficient_funds",
    )
    .await;
    s.rule_rejects(&srv.sign(&s.a, burn_op(a, 10_001)), "insufficient_funds")
        .await;
    s.rule_rejects(&srv.sign(&s.b, transfer_op(a, 1)), "insufficient_funds")
        .await;
    s.rule_rejects(
        &srv.sign(&s.merchant, earn_op(b, 1_000_001, "r")),
        "insufficient_funds",
    )
    .await;

    // Self transfers.
    s.rule_rejects(&srv.sign(&s.a, transfer_op(a, 1)), "self_transfer")
        .await;
    s.rule_rejects(&srv.sign(&s.merchant, earn_op(m, 1, "r")), "self_transfer")
        .await;

    // Authority.
    s.rule_rejects(&srv.sign(&s.a, mint_op(a, 1)), "not_authorized")
        .await;
    s.rule_rejects(&srv.sign(&s.merchant, mint_op(m, 1)), "not_authorized")
        .await;
    s.rule_rejects(&srv.sign(&s.a, earn_op(b, 1, "r")), "not_authorized")
        .await;
    s.rule_rejects(
        &srv.sign(&s.a, register_merchant_op(b, "Mine")),
        "not_authorized",
    )
    .await;
    s.rule_rejects(&srv.sign(&s.a, burn_op(m, 1)), "not_authorized")
        .await;
    let expiry = Op::Burn(Burn {
        from: a,
        amount: Points(1),
        reason: BurnReason::Expiry,
    });
    s.rule_rejects(&srv.sign(&s.a, expiry), "not_authorized")
        .await;

    // Registrations and fields.
    s.rule_rejects(
        &srv.sign(&srv.issuer, register_merchant_op(m, "Again")),
        "merchant_exists",
    )
    .await;
    s.rule_rejects(
        &srv.sign(&srv.issuer, register_merchant_op(srv.issuer_id(), "Me")),
        "role_conflict",
    )
    .await;
    s.rule_rejects(
        &srv.sign(&srv.issuer, register_merchant_op(b, "")),
        "invalid_field",
    )
    .await;
    s.rule_rejects(
        &srv.sign(&srv.issuer, register_merchant_op(b, &"x".repeat(65))),
        "invalid_field",
    )
    .await;
    let long_memo = Op::Transfer(Transfer {
        to: b,
        amount: Points(1),
        memo: Bytes(vec![7; REFERENCE_LEN_MAX + 1]),
    });
    s.rule_rejects(&srv.sign(&s.a, long_memo), "invalid_field")
        .await;
    s.rule_rejects(
        &srv.sign(&s.a, transfer_op(small_order_key(), 1)),
        "invalid_account",
    )
    .await;
    s.rule_rejects(
        &srv.sign(&srv.issuer, register_merchant_op(small_order_key(), "Weak")),
        "invalid_account",
    )
    .await;
    s.rule_rejects(
        &srv.sign(
            &srv.issuer,
            merchant_status_op(b, MerchantStatus::Suspended),
        ),
        "unknown_merchant",
    )
    .await;
    let stranger = id(&Keypair::generate());
    let burn_stranger = Op::Burn(Burn {
        from: stranger,
        amount: Points(1),
        reason: BurnReason::Correction,
    });
    s.rule_rejects(&srv.sign(&srv.issuer, burn_stranger), "unknown_account")
        .await;
    let genesis = Op::Genesis(Genesis {
        currency: "CNY".into(),
        minor_unit_digits: 2,
        checkpoint_key: a,
    });
    s.rule_rejects(&srv.sign(&srv.issuer, genesis), "already_initialized")
        .await;

    // After all of that, an honest op still goes through.
    s.submit_octets(&srv.sign(&s.a, transfer_op(b, 1))).await;
    assert_eq!(srv.balances(&[a, b]).await, vec![9_999, 1]);
}

#[tokio::test]
async fn a_suspended_merchant_cannot_award_points_until_reactivated() {
    let s = Setup::new().await;
    let srv = &s.srv;
    let (b, m) = (id(&s.b), id(&s.merchant));
    srv.ok(
        &srv.issuer,
        merchant_status_op(m, MerchantStatus::Suspended),
    )
    .await;
    let w = srv.client.wallet(&m).await.expect("wallet");
    assert_eq!(
        w.merchant.expect("merchant view").status,
        MerchantStatus::Suspended
    );
    s.rule_rejects(
        &srv.sign(&s.merchant, earn_op(b, 10, "r")),
        "merchant_suspended",
    )
    .await;
    s.rule_rejects(
        &srv.sign(&s.merchant, transfer_op(b, 10)),
        "merchant_suspended",
    )
    .await;
    s.rule_rejects(&srv.sign(&s.merchant, burn_op(m, 10)), "merchant_suspended")
        .await;
    srv.ok(&srv.issuer, merchant_status_op(m, MerchantStatus::Active))
        .await;
    srv.ok(&s.merchant, earn_op(b, 10, "r")).await;
    assert_eq!(srv.balance(&b).await, 10);
}

#[tokio::test]
async fn malformed_bodies_are_4xx_problems_never_500() {
    let s = Setup::new().await;
    let good = s.srv.sign(&s.a, transfer_op(id(&s.b), 1));
    let bytes = codec::encode_signed_op(&good);

    let mut trailing = bytes.clone();
    trailing.push(0);
    let mut unknown_tag = bytes.clone();
    let at = op_tag_offset(&good);
    assert_eq!(
        &unknown_tag[at..at + 4],
        &6u32.to_le_bytes(),
        "transfer is tag 6"
    );
    unknown_tag[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let mut huge_length = bytes.clone();
    huge_length[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut bad_utf8 = bytes.clone();
    bad_utf8[8] = 0xff;
    let truncated = bytes[..bytes.len() - 1].to_vec();
    let over_decoder_limit = vec![0u8; codec::DECODE_BYTES_MAX + 1];

    let malformed_octets: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", vec![0xff; 40]),
        ("truncated", truncated.clone()),
        ("trailing bytes", trailing.clone()),
        ("unknown tag", unknown_tag.clone()),
        ("huge length prefix", huge_length),
        ("invalid UTF-8", bad_utf8),
        ("over the decoder limit", over_decoder_limit),
    ];
    for (what, body) in malformed_octets {
        let p = s
            .rejected("/v1/ops", Some(OCTETS), body, 400, "malformed_op")
            .await;
        assert!(!p.detail.is_empty(), "{what}");
    }

    let hex = hex::encode(&bytes);
    let malformed_hex = [
        "zz".to_string(),
        hex.to_uppercase(),
        hex[..hex.len() - 1].to_string(),
        String::new(),
        format!("0x{hex}"),
        format!(" {hex}"),
        hex::encode(&trailing),
        hex::encode(&unknown_tag),
        hex::encode(&truncated),
    ];
    for h in malformed_hex {
        let body = serde_json::to_vec(&json!({ "signed_op": h })).expect("JSON");
        s.rejected("/v1/ops", Some(JSON), body, 400, "malformed_op")
            .await;
    }

    let malformed_json: [&[u8]; 6] = [
        b"",
        b"not json",
        b"{}",
        b"{\"signed_op\": 5}",
        b"{\"signed_op\": \"00\"",
        b"null",
    ];
    for body in malformed_json {
        s.rejected("/v1/ops", Some(JSON), body.to_vec(), 400, "malformed_body")
            .await;
    }

    // A hex string longer than any op the decoder accepts.
    let long_hex =
        serde_json::to_vec(&json!({ "signed_op": "00".repeat(codec::DECODE_BYTES_MAX + 1) }))
            .expect("JSON");
    s.rejected("/v1/ops", Some(JSON), long_hex, 413, "body_too_large")
        .await;

    // Bodies over the 2 MiB limit.
    let limit = 2 * 1024 * 1024;
    s.rejected(
        "/v1/ops",
        Some(OCTETS),
        vec![0u8; limit + 1],
        413,
        "body_too_large",
    )
    .await;
    let mut huge_json = b"{\"signed_op\":\"".to_vec();
    huge_json.resize(limit + 100, b'0');
    huge_json.extend_from_slice(b"\"}");
    s.rejected("/v1/ops", Some(JSON), huge_json, 413, "body_too_large")
        .await;
    s.rejected(
        "/v1/ops/batch",
        Some(OCTETS),
        vec![0u8; limit + 1],
        413,
        "body_too_large",
    )
    .await;

    // Media types.
    for ct in [
        Some("text/plain"),
        Some("application/xml"),
        Some("multipart/form-data"),
        None,
    ] {
        for path in ["/v1/ops", "/v1/ops/batch"] {
            s.rejected(path, ct, bytes.clone(), 415, "unsupported_media_type")
                .await;
        }
    }

    // The good op was never harmed by any of this.
    s.submit_octets(&good).await;
}

#[tokio::test]
async fn bad_paths_and_unknown_routes_are_problems() {
    let s = Setup::new().await;
    let b = id(&s.b).to_string();
    let cases: Vec<(String, u16, &str)> = vec![
        ("/v1/wallets/zz".into(), 400, "invalid_path"),
        (
            format!("/v1/wallets/{}", b.to_uppercase()),
            400,
            "invalid_path",
        ),
        (format!("/v1/wallets/{}", &b[..63]), 400, "invalid_path"),
        ("/v1/wallets/zz/history".into(), 400, "invalid_path"),
        ("/v1/entries/abc".into(), 400, "invalid_path"),
        ("/v1/entries/-1".into(), 400, "invalid_path"),
        (
            "/v1/entries/18446744073709551616".into(),
            400,
            "invalid_path",
        ),
        ("/v1/entries/999999".into(), 404, "not_found"),
        (format!("/v1/wallets/{b}"), 404, "unknown_account"),
        ("/v1/nothing-here".into(), 404, "not_found"),
    ];
    let before = s.snapshot().await;
    for (path, status, code) in cases {
        let resp = s.get(&path).await;
        expect_problem(resp, status, code).await;
    }
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn a_wrong_method_is_a_problem() {
    let s = Setup::new().await;
    let resp = s.get("/v1/ops").await;
    expect_problem(resp, 405, "method_not_allowed").await;
}

/// Media types are case-insensitive (RFC 9110 §8.3.1), so `Application/Octet-Stream` is
/// the canonical body format.
#[tokio::test]
async fn media_types_are_case_insensitive() {
    let s = Setup::new().await;
    let b = id(&s.b);
    let op = s.srv.sign(&s.a, transfer_op(b, 1));
    let resp = s
        .post(
            "/v1/ops",
            Some("Application/Octet-Stream"),
            codec::encode_signed_op(&op),
        )
        .await;
    let _: Receipt = expect_json(resp).await;
    let op = s.srv.sign(&s.a, transfer_op(b, 1));
    let resp = s
        .post(
            "/v1/ops",
            Some("APPLICATION/JSON; charset=UTF-8"),
            json_op(&codec::encode_signed_op(&op)),
        )
        .await;
    let _: Receipt = expect_json(resp).await;
    assert_eq!(s.srv.balance(&b).await, 2);
}

#[tokio::test]
async fn a_batch_gets_one_result_per_item() {
    for as_json in [false, true] {
        let s = Setup::new().await;
        let srv = &s.srv;
        let (a, b) = (id(&s.a), id(&s.b));
        let t1 = srv.sign_id(&s.a, 1, transfer_op(b, 100));
        let mut bad_sig = srv.sign(&s.a, transfer_op(b, 5));
        bad_sig.signature.0[0] ^= 0x80;
        let ops = vec![
            t1.clone(),
            srv.sign(&s.a, transfer_op(b, 1_000_000)),
            t1.clone(),
            bad_sig,
            srv.sign(&s.a, transfer_op(b, 0)),
            srv.sign(&s.merchant, earn_op(b, 50, "r-2")),
            srv.sign_id(&s.a, 1, transfer_op(b, 101)),
            client::sign_op(
                &s.a,
                &srv.chain_id,
                client::random_op_id(),
                1,
                transfer_op(b, 5),
            ),
            srv.sign(&s.b, transfer_op(a, 150)),
            srv.sign(&s.b, transfer_op(a, 1)),
        ];
        let expected: [Result<(), &str>; 10] = [
            Ok(()),
            Err("insufficient_funds"),
            Ok(()),
            Err("bad_signature"),
            Err("zero_amount"),
            Ok(()),
            Err("duplicate_op_id"),
            Err("expired"),
            Ok(()),
            Err("insufficient_funds"),
        ];
        let before = s.snapshot().await;
        let resp = if as_json {
            s.post("/v1/ops/batch", Some(JSON), json_batch(&ops)).await
        } else {
            s.post("/v1/ops/batch", Some(OCTETS), codec::encode_batch(&ops))
                .await
        };
        let body: BatchResponse = expect_json(resp).await;
        assert_eq!(body.results.len(), ops.len());
        let mut seqs = vec![];
        for (i, (item, want)) in body.results.iter().zip(expected).enumerate() {
            match want {
                Ok(()) => {
                    assert_eq!(item.status, "applied", "item {i}: {item:?}");
                    assert!(item.problem.is_none());
                    let r = item.receipt.as_ref().expect("receipt");
                    assert_eq!(r.signed_op, ops[i], "item {i}");
                    seqs.push(r.seq);
                }
                Err(code) => {
                    assert_eq!(item.status, "rejected", "item {i}: {item:?}");
                    assert!(item.receipt.is_none());
                    let p = item.problem.as_ref().expect("problem");
                    assert_eq!(p.code, code, "item {i}");
                    assert_eq!(p.type_uri, format!("{PROBLEM_PREFIX}{code}"));
                    assert_eq!(p.status, status_of(code), "item {i}");
                }
            }
        }
        // The repeat of t1 (item 2) is item 0's receipt; the others are new, in order.
        assert_eq!(body.results[2].receipt, body.results[0].receipt);
        assert_eq!(
            seqs,
            vec![before.size, before.size, before.size + 1, before.size + 2]
        );
        let after = s.snapshot().await;
        assert_eq!(after.size, before.size + 3);
        assert_eq!(s.srv.balances(&[a, b]).await, vec![10_000 - 100 + 150, 0]);
        assert_eq!(after.supply, before.supply);
        for item in &body.results {
            if let Some(r) = &item.receipt {
                let e = s.srv.client.entry(r.seq).await.expect("entry");
                assert_eq!((e.entry_hash, &e.op), (r.entry_hash, &r.signed_op));
            }
        }
    }
}

#[tokio::test]
async fn a_batch_request_that_is_malformed_is_refused_whole() {
    let s = Setup::new().await;
    let b = id(&s.b);
    let good = s.srv.sign(&s.a, transfer_op(b, 1));

    let body = serde_json::to_vec(&json!({
        "signed_ops": [hex::encode(codec::encode_signed_op(&good)), "zz"]
    }))
    .expect("JSON");
    let p = s
        .rejected("/v1/ops/batch", Some(JSON), body, 400, "malformed_op")
        .await;
    assert!(p.detail.contains("signed_ops[1]"), "{}", p.detail);

    let mut octets = codec::encode_batch(std::slice::from_ref(&good));
    octets.push(0);
    s.rejected("/v1/ops/batch", Some(OCTETS), octets, 400, "malformed_op")
        .await;
    s.rejected(
        "/v1/ops/batch",
        Some(OCTETS),
        vec![1, 2, 3],
        400,
        "malformed_op",
    )
    .await;
    s.rejected(
        "/v1/ops/batch",
        Some(JSON),
        b"{\"signed_ops\": \"00\"}".to_vec(),
        400,
        "malformed_body",
    )
    .await;

    let too_many = (codec::BATCH_OPS_MAX + 1) as u64;
    let mut octets = too_many.to_le_bytes().to_vec();
    octets.extend_from_slice(&codec::encode_signed_op(&good));
    s.rejected(
        "/v1/ops/batch",
        Some(OCTETS),
        octets,
        413,
        "batch_too_large",
    )
    .await;
    let hexes = vec!["00"; codec::BATCH_OPS_MAX + 1];
    let body = serde_json::to_vec(&json!({ "signed_ops": hexes })).expect("JSON");
    s.rejected("/v1/ops/batch", Some(JSON), body, 413, "batch_too_large")
        .await;

    // An empty batch is fine and does nothing.
    let before = s.snapshot().await;
    let empty: BatchResponse = expect_json(
        s.post("/v1/ops/batch", Some(OCTETS), codec::encode_batch(&[]))
            .await,
    )
    .await;
    assert!(empty.results.is_empty());
    let empty: BatchResponse = expect_json(
        s.post(
            "/v1/ops/batch",
            Some(JSON),
            b"{\"signed_ops\": []}".to_vec(),
        )
        .await,
    )
    .await;
    assert!(empty.results.is_empty());
    assert_eq!(s.snapshot().await, before);

    // Same op id twice in one batch with different content: the first wins.
    let x1 = s.srv.sign_id(&s.a, 9, transfer_op(b, 3));
    let x2 = s.srv.sign_id(&s.a, 9, transfer_op(b, 4));
    let results = s.srv.client.submit_batch(&[x1, x2]).await.expect("batch");
    assert_eq!(results[0].status, "applied");
    assert_eq!(results[1].status, "rejected");
    assert_eq!(
        results[1].problem.as_ref().map(|p| p.code.as_str()),
        Some("duplicate_op_id")
    );
    assert_eq!(s.srv.balance(&b).await, 3);
}

/// Walks `/v1/entries` with `limit` and returns the seqs seen.
async fn walk_entries(srv: &TestServer, limit: u32) -> Vec<EntryView> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page: Page<EntryView> = srv.client.entries(after, limit).await.expect("entries");
        assert!(page.items.len() <= limit as usize);
        out.extend(page.items);
        match page.next_after {
            Some(n) => {
                assert_eq!(
                    Some(n),
                    out.last().map(|e| e.seq),
                    "next_after is the last seq"
                );
                after = Some(n);
            }
            None => return out,
        }
    }
}

/// Whether an op of the kinds these tests submit concerns `who` (signer or counterparty).
fn concerns(op: &SignedOp, who: &AccountId) -> bool {
    let op_ = &op.envelope.op;
    op.envelope.signer == *who
        || matches!(op_, Op::Transfer(t) if t.to == *who)
        || matches!(op_, Op::Earn(e) if e.member == *who)
        || matches!(op_, Op::Mint(m) if m.to == *who)
        || matches!(op_, Op::Burn(b) if b.from == *who)
        || matches!(op_, Op::RegisterMerchant(r) if r.merchant == *who)
        || matches!(op_, Op::UpdateMerchant(u) if u.merchant == *who)
        || matches!(op_, Op::RegisterAuditor(r) if r.auditor == *who)
}

#[tokio::test]
async fn pagination_walks_everything_exactly_once() {
    let s = Setup::new().await;
    let srv = &s.srv;
    let (a, b) = (id(&s.a), id(&s.b));
    let others = keys(3);
    // 24 ops that concern A, interleaved with 12 that do not.
    let mut ops = vec![];
    for i in 0..12u64 {
        ops.push(srv.sign(&s.a, transfer_op(b, i + 1)));
        ops.push(srv.sign(&s.merchant, earn_op(id(&others[(i % 3) as usize]), 1, "x")));
        ops.push(srv.sign(&s.merchant, earn_op(a, 2, "y")));
    }
    for item in srv.client.submit_batch(&ops).await.expect("batch") {
        assert_eq!(item.status, "applied", "{item:?}");
    }
    let size = srv.info().await.size;

    let all = walk_entries(srv, 1000).await;
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..size).collect::<Vec<_>>()
    );
    for w in all.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].entry_hash, "entries link");
    }
    for limit in [1, 2, 3, 7, size as u32, size as u32 + 1] {
        let walked = walk_entries(srv, limit).await;
        assert_eq!(
            walked
                .iter()
                .map(|e| (e.seq, e.entry_hash))
                .collect::<Vec<_>>(),
            all.iter()
                .map(|e| (e.seq, e.entry_hash))
                .collect::<Vec<_>>(),
            "limit {limit}"
        );
    }

    for (who, name) in [
        (a, "A"),
        (b, "B"),
        (srv.issuer_id(), "issuer"),
        (id(&s.merchant), "merchant"),
    ] {
        let expected: Vec<u64> = all
            .iter()
            .filter(|e| concerns(&e.op, &who))
            .map(|e| e.seq)
            .collect();
        assert!(!expected.is_empty());
        if who == a {
            // earn from setup + 12 transfers + 12 earns
            assert_eq!(expected.len(), 25);
        }
        let n = expected.len() as u32;
        for limit in [1, 2, 5, 7, n, n + 1, 1000] {
            let got: Vec<u64> = srv
                .full_history(&who, limit)
                .await
                .iter()
                .map(|r| r.seq)
                .collect();
            assert_eq!(got, expected, "{name} history, limit {limit}");
            let unique: BTreeSet<u64> = got.iter().copied().collect();
            assert_eq!(unique.len(), got.len());
        }
    }

    // Past the end: an empty page and no cursor.
    let page = srv
        .client
        .entries(Some(size - 1), 10)
        .await
        .expect("entries");
    assert!(page.items.is_empty() && page.next_after.is_none());
    let page = srv
        .client
        .entries(Some(u64::MAX), 10)
        .await
        .expect("entries");
    assert!(page.items.is_empty() && page.next_after.is_none());
    let page = srv
        .client
        .history(&a, Some(u64::MAX), 10)
        .await
        .expect("history");
    assert!(page.items.is_empty() && page.next_after.is_none());
    // The default page size applies without `limit`.
    let page: Page<EntryView> = expect_json(s.get("/v1/entries").await).await;
    assert_eq!(page.items.len() as u64, size.min(100));
}

#[tokio::test]
async fn invalid_page_queries_are_invalid_query() {
    let s = Setup::new().await;
    let a = id(&s.a);
    let before = s.snapshot().await;
    for base in [
        "/v1/entries".to_string(),
        format!("/v1/wallets/{a}/history"),
    ] {
        for q in [
            "limit=0",
            "limit=1001",
            "limit=abc",
            "limit=-1",
            "limit=4294967296",
            "limit=1.5",
            "after=abc",
            "after=-1",
            "after=18446744073709551616",
        ] {
            let resp = s.get(&format!("{base}?{q}")).await;
            let p = expect_problem(resp, 400, "invalid_query").await;
            assert!(!p.detail.is_empty(), "{base}?{q}");
        }
        let ok = s.get(&format!("{base}?limit=1000")).await;
        assert_eq!(ok.status(), 200);
    }
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn info_describes_the_ledger() {
    let s = Setup::new().await;
    let info: InfoResponse = expect_json(s.get("/v1/info").await).await;
    assert_eq!(info.chain_id, s.srv.chain_id);
    assert_eq!(info.issuer, s.srv.issuer_id());
    assert_eq!(info.size, 4);
    assert_eq!(
        (info.minted, info.burned, info.supply),
        (1_000_000, 0, 1_000_000)
    );
    assert!(info.checkpoint_verifier.starts_with(&info.chain_id));
    let genesis = s.srv.client.entry(0).await.expect("genesis");
    assert_eq!(genesis.prev_hash, Hash32::ZERO);
    assert_eq!(genesis.op.envelope.signer, s.srv.issuer_id());
    assert!(
        matches!(genesis.op.envelope.op, Op::Genesis(ref g) if g.checkpoint_key == info.checkpoint_key)
    );
    let sum: u64 = s.srv.balances(&s.accounts()).await.iter().sum();
    assert_eq!(sum, info.supply);
}
