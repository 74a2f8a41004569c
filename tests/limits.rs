//! Limits and shutdown (`ledger-spec/api.md` §6): every list route refuses a page larger
//! than the limit, a request that outlives the timeout is answered 503 `timeout` (and an op
//! in it may still land, so clients retry with the same op id), and a graceful shutdown
//! answers the ops already in flight before the server stops.

mod common;

use common::*;
use points_ledger::client::Client;
use points_ledger::codec;
use points_ledger::crypto::Keypair;
use points_ledger::server::{self, ServeConfig};

#[tokio::test]
async fn every_list_route_bounds_its_page() {
    let srv = TestServer::start().await;
    let m = Keypair::generate();
    srv.register_merchant(&m, "Shop").await;
    let a = id(&srv.issuer);
    let mid = id(&m);
    let lists = [
        "/v1/entries?".to_string(),
        format!("/v1/wallets/{a}/history?"),
        format!("/v1/wallets/{a}/history?proofs=true&"),
        format!("/v1/wallets/{a}/orders?"),
        format!("/v1/merchants/{mid}/orders?"),
        format!("/v1/merchants/{mid}/settlements?"),
        "/v1/mall/items?".to_string(),
        "/v1/reports/liability?".to_string(),
    ];
    for list in &lists {
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=x"] {
            let err = srv
                .client
                .get_json::<serde_json::Value>(&format!("{list}{bad}"))
                .await
                .expect_err(list);
            assert_eq!(err.code(), Some("invalid_query"), "{list}{bad}: {err}");
        }
        let _: serde_json::Value = srv
            .client
            .get_json(&format!("{list}limit=1000"))
            .await
            .unwrap_or_else(|e| panic!("{list}limit=1000: {e}"));
    }
}

#[tokio::test]
async fn the_liability_report_pages_its_merchants() {
    let srv = TestServer::start().await;
    let mut shops: Vec<_> = (0..5).map(|_| Keypair::generate()).collect();
    for (i, s) in shops.iter().enumerate() {
        srv.register_merchant(s, &format!("Shop {i}")).await;
    }
    shops.sort_by_key(id);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut as_of = None;
    loop {
        let mut q = "/v1/reports/liability?limit=2".to_string();
        if let Some(a) = &after {
            q.push_str(&format!("&after={a}&seq={}", as_of.unwrap()));
        }
        let page: points_ledger::api::mall::LiabilityReport =
            srv.client.get_json(&q).await.unwrap();
        assert!(page.merchants.len() <= 2);
        as_of = Some(page.as_of_seq);
        seen.extend(page.merchants.iter().map(|m| m.merchant));
        match page.next_after {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, shops.iter().map(id).collect::<Vec<_>>());
}

fn config(dir: &std::path::Path) -> ServeConfig {
    let mut c = ServeConfig::new(dir);
    c.listen = ([127, 0, 0, 1], 0).into();
    c
}

fn mints(issuer: &Keypair, chain_id: &str, n: usize) -> Vec<points_ledger::op::SignedOp> {
    (0..n)
        .map(|_| {
            points_ledger::client::sign_op(
                issuer,
                chain_id,
                points_ledger::client::random_op_id(),
                points_ledger::client::now_ms() + 600_000,
                mint_op(id(&Keypair::generate()), 1),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_request_past_the_timeout_is_a_503_and_its_ops_may_still_land() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.limits.request_timeout_ms = 1;
    let running = server::start(c).await.unwrap();
    let issuer = Keypair::read_file(&dir.path().join(server::ISSUER_KEY_FILE)).unwrap();
    let client = client_no_retry(&running.url());
    let before = client.info().await.unwrap().size;
    // Verifying and committing 2000 ops takes far longer than 1 ms.
    let ops = mints(&issuer, &running.chain_id, 2000);
    let err = client.submit_batch(&ops).await.expect_err("times out");
    let points_ledger::client::ClientError::Problem(p) = err else {
        panic!("expected a problem, got {err}");
    };
    assert_eq!((p.status, p.code.as_str()), (503, "timeout"), "{p:?}");
    // The ops were handed to the sequencer before the answer gave up: they land anyway,
    // which is why a client retries a timed-out submission with the same op ids.
    let mut size = before;
    for _ in 0..500 {
        size = client.info().await.unwrap().size;
        if size > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(size, before + 2000);
    running.shutdown().await.unwrap();
}

/// Reads an HTTP/1.1 response with `Connection: close`: (status, body).
fn read_response(stream: &mut std::net::TcpStream) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, raw[split + 4..].to_vec())
}

#[tokio::test]
async fn a_graceful_shutdown_answers_the_requests_in_flight() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let running = server::start(config(dir.path())).await.unwrap();
    let issuer = Keypair::read_file(&dir.path().join(server::ISSUER_KEY_FILE)).unwrap();
    let addr = running.addr;
    let ops = mints(&issuer, &running.chain_id, 100);
    let body = codec::encode_batch(&ops);

    // A client sends the head and half the body of a batch, then waits: the server has
    // accepted the request and its handler is reading the body when the shutdown begins.
    let (half_sent, half_sent_rx) = tokio::sync::oneshot::channel::<()>();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "POST /v1/ops/batch HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        let half = body.len() / 2;
        s.write_all(&body[..half]).unwrap();
        s.flush().unwrap();
        half_sent.send(()).unwrap();
        go_rx.recv().unwrap();
        s.write_all(&body[half..]).unwrap();
        read_response(&mut s)
    });
    half_sent_rx.await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let stopping = tokio::spawn(running.shutdown());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "the shutdown must wait for the request in flight"
    );
    go.send(()).unwrap();
    let (status, body) = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let resp: points_ledger::api::dto::BatchResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(resp.results.len(), 100);
    assert!(resp.results.iter().all(|r| r.status == "applied"));
    stopping.await.unwrap().expect("clean shutdown");

    // Every acknowledged op is in the log after a restart.
    let again = loop {
        match server::start(config(dir.path())).await {
            Ok(r) => break r,
            Err(server::ServeError::Store(points_ledger::store::StoreError::Locked(_))) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    };
    let info = Client::new(&again.url()).info().await.unwrap();
    assert_eq!(info.size, 101);
    again.shutdown().await.unwrap();
}
