//! Access control of the reads (`ledger-spec/api.md` §3), end to end against a real server:
//! every protected route refuses an anonymous caller, a wrong key, an expired, a future, a
//! badly signed and a replayed request, and answers the callers it names; public routes
//! answer anyone.

mod common;

use common::*;
use points_ledger::api::auth::{authorization_value, AuthConfig};
use points_ledger::api::REQUEST_ID_HEADER;
use points_ledger::client::{now_ms, Client};
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::server::{self, ServeConfig};
use points_ledger::settlement::{self, Statement};

/// A ledger with an issuer, an auditor, a merchant with an item, a member with an order
/// and a settlement, and an outsider.
struct World {
    srv: TestServer,
    auditor: Keypair,
    merchant: Keypair,
    member: Keypair,
    outsider: Keypair,
    order_id: u64,
    settlement_id: u64,
}

impl World {
    async fn new() -> World {
        let srv = TestServer::start().await;
        let (auditor, merchant, member, outsider) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        srv.ok(
            &srv.issuer,
            Op::RegisterAuditor(RegisterAuditor {
                auditor: id(&auditor),
                name: "Auditor".into(),
            }),
        )
        .await;
        srv.register_merchant(&merchant, "Shop").await;
        srv.mint(&id(&merchant), 1000).await;
        srv.ok(&merchant, earn_op(id(&member), 300, "r-1")).await;
        srv.ok(&merchant, earn_op(id(&outsider), 5, "r-2")).await;
        let item = srv
            .ok(
                &merchant,
                Op::ListItem(ListItem {
                    title: "Mug".into(),
                    description: String::new(),
                    price: Points(100),
                    stock: 5,
                    limit_per_order: 0,
                    limit_per_member: 0,
                    available_from_ms: 0,
                    available_until_ms: None,
                    active: true,
                }),
            )
            .await;
        let order = srv
            .ok(
                &member,
                Op::Redeem(Redeem {
                    item_id: item.seq,
                    quantity: 1,
                    max_unit_price: Points(100),
                }),
            )
            .await;
        let m = id(&merchant);
        let st: Statement = srv
            .client
            .get_json(&format!("/v1/merchants/{m}/statement"))
            .await
            .expect("draft statement");
        let merchant_signature = settlement::countersign(&srv.chain_id, &merchant, &st);
        let settled = srv
            .ok(
                &srv.issuer,
                Op::Settle(Settle {
                    merchant: m,
                    from_seq: st.from_seq,
                    to_seq: st.to_seq,
                    totals: st.totals,
                    merchant_signature,
                }),
            )
            .await;
        // A later entry so that the statement has an open period again.
        srv.ok(&merchant, earn_op(id(&member), 1, "r-3")).await;
        World {
            srv,
            auditor,
            merchant,
            member,
            outsider,
            order_id: order.seq,
            settlement_id: settled.seq,
        }
    }

    fn issuer(&self) -> &Keypair {
        &self.srv.issuer
    }

    /// Every protected route, with the keys that may read it (besides the issuer and
    /// auditors, who may read all) and one that may not.
    fn protected(&self) -> Vec<(String, Vec<&Keypair>, &Keypair)> {
        let a = id(&self.member);
        let m = id(&self.merchant);
        let overseers_only: Vec<&Keypair> = vec![];
        vec![
            (
                format!("/v1/wallets/{a}"),
                vec![&self.member],
                &self.outsider,
            ),
            (
                format!("/v1/wallets/{a}/history?limit=5"),
                vec![&self.member],
                &self.merchant,
            ),
            (
                format!("/v1/wallets/{a}/history?proofs=true"),
                vec![&self.member],
                &self.outsider,
            ),
            (
                format!("/v1/wallets/{a}/orders"),
                vec![&self.member],
                &self.merchant,
            ),
            (
                format!("/v1/merchants/{m}/orders"),
                vec![&self.merchant],
                &self.member,
            ),
            (
                format!("/v1/merchants/{m}/statement"),
                vec![&self.merchant],
                &self.member,
            ),
            (
                format!("/v1/merchants/{m}/statement?format=csv"),
                vec![&self.merchant],
                &self.outsider,
            ),
            (
                format!("/v1/merchants/{m}/settlements"),
                vec![&self.merchant],
                &self.member,
            ),
            (
                format!("/v1/settlements/{}", self.settlement_id),
                vec![&self.merchant],
                &self.member,
            ),
            (
                format!("/v1/mall/orders/{}", self.order_id),
                vec![&self.member, &self.merchant],
                &self.outsider,
            ),
            ("/metrics".into(), overseers_only.clone(), &self.merchant),
            ("/v1/export".into(), overseers_only.clone(), &self.member),
            (
                "/v1/reports/liability".into(),
                overseers_only.clone(),
                &self.merchant,
            ),
            (
                "/v1/entries?limit=3".into(),
                overseers_only.clone(),
                &self.member,
            ),
            ("/v1/entries/0".into(), overseers_only, &self.outsider),
        ]
    }

    async fn get(&self, path: &str, auth: Option<String>) -> reqwest::Response {
        let mut req = self.srv.http.get(self.srv.at(path));
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        req.send().await.expect("the server answers")
    }

    fn sign(&self, key: &Keypair, path: &str, ts_ms: u64) -> String {
        authorization_value(key, "GET", path, ts_ms, &self.srv.chain_id)
    }
}

async fn expect_ok(resp: reqwest::Response, what: &str) {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{what}: {body}");
}

#[tokio::test]
async fn every_protected_route_refuses_strangers_and_answers_its_readers() {
    let w = World::new().await;
    let auditor = &w.auditor;
    for (path, readers, stranger) in w.protected() {
        // Anonymous: 401, naming the scheme.
        let resp = w.get(&path, None).await;
        assert_eq!(
            resp.headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Points-Ed25519"),
            "{path}"
        );
        expect_problem(resp, 401, "unauthorized").await;

        // A valid signature by a key that may not read it: 403.
        let resp = w.get(&path, Some(w.sign(stranger, &path, now_ms()))).await;
        expect_problem(resp, 403, "forbidden").await;

        // Expired and future timestamps, outside the ±60 s window: 401.
        for ts in [now_ms() - 61_000, now_ms() + 61_000] {
            let resp = w.get(&path, Some(w.sign(w.issuer(), &path, ts))).await;
            let p = expect_problem(resp, 401, "unauthorized").await;
            assert!(p.detail.contains("server clock"), "{p:?}");
        }

        // A signature over another path, or by another chain: 401.
        let other = w.sign(w.issuer(), "/v1/info", now_ms());
        expect_problem(w.get(&path, Some(other)).await, 401, "unauthorized").await;
        let wrong_chain = authorization_value(w.issuer(), "GET", &path, now_ms(), "other/chain");
        expect_problem(w.get(&path, Some(wrong_chain)).await, 401, "unauthorized").await;
        let malformed = format!("Points-Ed25519 key={}, ts=1", id(w.issuer()));
        expect_problem(w.get(&path, Some(malformed)).await, 401, "unauthorized").await;

        // The issuer, an auditor and the route's own readers succeed.
        for key in [w.issuer(), auditor].into_iter().chain(readers) {
            let header = w.sign(key, &path, now_ms());
            expect_ok(w.get(&path, Some(header.clone())).await, &path).await;
            // The very same signed request again: a replay, 401.
            let p = expect_problem(w.get(&path, Some(header)).await, 401, "unauthorized").await;
            assert!(p.detail.contains("already used"), "{p:?}");
        }
    }
}

#[tokio::test]
async fn public_routes_answer_anyone() {
    let w = World::new().await;
    let size = w.srv.info().await.size;
    let item_id = w.order_id - 1;
    let _: serde_json::Value = w.srv.client.post_empty("/v1/checkpoint").await.unwrap();
    let cp = w
        .srv
        .client
        .get_json_accept::<serde_json::Value>("/v1/checkpoint")
        .await
        .unwrap();
    let cp_size = cp["size"].as_u64().unwrap();
    for path in [
        "/healthz".to_string(),
        "/openapi.json".into(),
        "/v1/info".into(),
        "/v1/checkpoint".into(),
        format!("/v1/checkpoints/{cp_size}"),
        format!("/v1/proofs/inclusion?seq=0&size={size}"),
        format!("/v1/proofs/consistency?from=1&to={size}"),
        "/v1/mall/items".into(),
        format!("/v1/mall/items/{item_id}"),
    ] {
        expect_ok(w.get(&path, None).await, &path).await;
    }
}

#[tokio::test]
async fn signed_clients_read_what_their_key_may_read() {
    let w = World::new().await;
    let url = w.srv.url();
    let a = id(&w.member);
    let member = Client::new(&url).with_key(w.member.clone());
    assert_eq!(member.signer(), Some(a));
    // Many identical reads in a row: each gets a fresh ts, so none is a replay.
    for _ in 0..20 {
        assert_eq!(member.wallet(&a).await.unwrap().balance, 300 - 100 + 1);
    }
    let err = member.wallet(&id(&w.merchant)).await.unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
    let err = Client::new(&url).wallet(&a).await.unwrap_err();
    assert_eq!(err.code(), Some("unauthorized"));
    let err = member.entries(None, 1).await.unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
    let auditor = Client::new(&url).with_key(w.auditor.clone());
    assert_eq!(auditor.entries(None, 2).await.unwrap().items.len(), 2);
    let mut export = Vec::new();
    assert!(auditor.export_to(&mut export).await.unwrap() > 0);
    assert!(member.export_to(&mut Vec::new()).await.is_err());
}

#[tokio::test]
async fn every_request_carries_a_request_id() {
    let w = World::new().await;
    let resp = w.get("/healthz", None).await;
    let made = resp
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("a request id is made up")
        .to_string();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let resp = w
        .srv
        .http
        .get(w.srv.at("/v1/wallets/zz"))
        .header(REQUEST_ID_HEADER, "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get(REQUEST_ID_HEADER).unwrap(),
        "trace-me-42",
        "a given id is echoed, on errors too"
    );
}

#[tokio::test]
async fn metrics_count_ops_and_can_be_made_public() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(dir.path());
    config.listen = ([127, 0, 0, 1], 0).into();
    config.auth = AuthConfig {
        metrics_public: true,
        ..AuthConfig::default()
    };
    let running = server::start(config).await.unwrap();
    let issuer = Keypair::read_file(&dir.path().join(server::ISSUER_KEY_FILE)).unwrap();
    let client = Client::new(&running.url());
    let wallet = points_ledger::client::Wallet::connect(issuer, client.clone())
        .await
        .unwrap();
    let m = Keypair::generate();
    wallet
        .send(register_merchant_op(id(&m), "Shop"))
        .await
        .unwrap();
    wallet.send(mint_op(id(&m), 10)).await.unwrap();
    let err = wallet.send(mint_op(id(&m), 0)).await.unwrap_err();
    assert_eq!(err.code(), Some("zero_amount"));
    let text = client.get_text("/metrics").await.expect("public metrics");
    for line in [
        "points_ops_accepted_total{type=\"mint\"} 1",
        "points_ops_accepted_total{type=\"register_merchant\"} 1",
        "points_ops_rejected_total{reason=\"zero_amount\",type=\"mint\"} 1",
        "points_entries 3",
        "points_accounts 1",
        "points_supply 10",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(
        text.contains("points_group_commit_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(
            "points_http_requests_total{method=\"POST\",route=\"/v1/ops\",status=\"200\"}"
        ),
        "{text}"
    );
    running.shutdown().await.unwrap();
}
