//! Disk faults: when the disk holding the ledger is full, `points serve` refuses new ops with
//! 503 problem+json `unavailable`, keeps serving reads, leaves no half-written state behind,
//! and takes ops again as soon as space returns. The ledger lives on a small tmpfs that the
//! test mounts (it runs as root in CI); where mounting is not allowed the test says so and
//! skips.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use points_ledger::api::dto::{BatchResponse, CheckpointView, InfoResponse};
use points_ledger::audit;
use points_ledger::client::{self, Client, ClientError, DEFAULT_TTL_MS};
use points_ledger::codec;
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::store::Receipt;

/// Size of the tmpfs the ledger runs on.
const TMPFS_SIZE: &str = "8m";
/// Most ops sent while waiting for a gradually filling disk to refuse them.
const GRADUAL_OPS_MAX: usize = 20_000;

/// A tmpfs mounted for the test; unmounted (lazily, so a straggling reader cannot block
/// it) on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system holding `path` with a ballast file until writes fail, leaving
/// `leave` bytes (rounded to pages) free; returns the ballast's size.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("creating the ballast file");
    let mut written = 0u64;
    for chunk in [1usize << 20, 64 << 10, 4 << 10, 512] {
        let buf = vec![0xa5u8; chunk];
        while f.write_all(&buf).is_ok() {
            written += chunk as u64;
        }
    }
    f.sync_all().expect("syncing the ballast");
    if leave > 0 {
        let keep = written.saturating_sub(leave);
        f.set_len(keep).expect("shrinking the ballast");
        written = keep;
    }
    written
}

struct Ledger {
    client: Client,
    http: reqwest::Client,
    url: String,
    chain_id: String,
    issuer: Keypair,
    merchant: Keypair,
    members: Vec<Keypair>,
}

impl Ledger {
    fn sign(&self, key: &Keypair, op: Op) -> SignedOp {
        client::sign_op(
            key,
            &self.chain_id,
            client::random_op_id(),
            client::now_ms() + DEFAULT_TTL_MS,
            op,
        )
    }

    fn earn(&self, i: usize, amount: u64) -> SignedOp {
        let member = id(&self.members[i % self.members.len()]);
        self.sign(&self.merchant, earn_op(member, amount, "disk-full"))
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("the server answers while the disk is full")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("the server answers reads while the disk is full")
    }

    async fn accounts(&self) -> Vec<AccountId> {
        let mut all = vec![id(&self.issuer), id(&self.merchant)];
        all.extend(self.members.iter().map(id));
        all
    }

    async fn balances(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for a in self.accounts().await {
            out.push(match self.client.wallet(&a).await {
                Ok(w) => w.balance,
                Err(e) if e.code() == Some("unknown_account") => 0,
                Err(e) => panic!("GET wallet {a}: {e}"),
            });
        }
        out
    }
}

/// Audits the live log (`GET /v1/export`, read as the issuer) with the library auditor that
/// `points audit` runs.
async fn audit_live(client: &Client) -> audit::AuditReport {
    let mut export = Vec::new();
    client.export_to(&mut export).await.expect("GET /v1/export");
    audit::audit_export(&export[..], 4096, |_| {}).unwrap_or_else(|e| panic!("audit: {e}"))
}

/// Submits `op`, which must be refused with 503 `unavailable` and a Retry-After.
async fn expect_unavailable(ledger: &Ledger, op: &SignedOp) {
    let resp = ledger.post("/v1/ops", codec::encode_signed_op(op)).await;
    assert!(
        resp.headers().contains_key("retry-after"),
        "a 503 says when to retry"
    );
    expect_problem(resp, 503, "unavailable").await;
}

/// Checks that the acknowledged receipts are in the log as acknowledged and that every
/// (signer, op_id) appears at most once.
async fn check_log(ledger: &Ledger, acked: &[Receipt]) {
    let info = ledger.client.info().await.expect("GET /v1/info");
    let mut seen = std::collections::HashMap::new();
    let mut after = None;
    loop {
        let page = ledger
            .client
            .entries(after, 1000)
            .await
            .expect("GET /v1/entries");
        for e in &page.items {
            let key = (e.op.envelope.signer, e.op.envelope.op_id);
            if let Some(prev) = seen.insert(key, e.seq) {
                panic!("op {key:?} is in the log twice: at {prev} and {}", e.seq);
            }
        }
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len() as u64, info.size, "every entry was listed");
    for r in acked {
        let e = ledger.client.entry(r.seq).await.expect("acked entry");
        assert_eq!(e.entry_hash, r.entry_hash, "acked entry {} changed", r.seq);
        assert_eq!(e.op, r.signed_op, "acked entry {} holds another op", r.seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_serves_reads_and_recovers() {
    let tmp = tempfile::Builder::new()
        .prefix("points-diskfull-")
        .tempdir()
        .expect("temporary folder");
    let mnt = tmp.path().join("mnt");
    let fs = match Tmpfs::mount(&mnt, TMPFS_SIZE) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED full_disk_refuses_writes_serves_reads_and_recovers: {why}");
            return;
        }
    };
    let data = mnt.join("data");
    let ballast = mnt.join("ballast");
    let server = ServeChild::start(&data, &tmp.path().join("logs"));
    let url = server.url();
    let issuer =
        Keypair::read_file(&data.join(points_ledger::server::ISSUER_KEY_FILE)).expect("issuer key");
    let client = client_no_retry(&url).with_key(issuer.clone());
    let info = client.info().await.expect("GET /v1/info");
    let ledger = Ledger {
        client,
        http: reqwest::Client::new(),
        url: url.clone(),
        chain_id: info.chain_id.clone(),
        issuer,
        merchant: Keypair::generate(),
        members: keys(4),
    };
    let mut acked: Vec<Receipt> = Vec::new();
    let setup = [
        ledger.sign(
            &ledger.issuer,
            register_merchant_op(id(&ledger.merchant), "Disk Full Mart"),
        ),
        ledger.sign(&ledger.issuer, mint_op(id(&ledger.merchant), 1_000_000_000)),
    ];
    for op in &setup {
        acked.push(ledger.client.submit(op).await.expect("setup op"));
    }
    for i in 0..20 {
        acked.push(
            ledger
                .client
                .submit(&ledger.earn(i, 10))
                .await
                .expect("earn"),
        );
    }

    // Phase 1: the disk fills up all at once while the ledger is idle.
    let cp: CheckpointView = ledger
        .client
        .post_empty("/v1/checkpoint")
        .await
        .expect("a checkpoint of the tip, signed before the disk fills");
    let before = ledger.client.info().await.expect("GET /v1/info");
    assert_eq!(cp.size, before.size);
    let balances_before = ledger.balances().await;
    let filled = fill(&ballast, 0);
    eprintln!("ballast of {filled} bytes fills the {TMPFS_SIZE} tmpfs");

    let refused: Vec<SignedOp> = (0..3).map(|i| ledger.earn(i, 7)).collect();
    for round in 0..3 {
        for op in &refused {
            expect_unavailable(&ledger, op).await;
        }
        let batch: Vec<SignedOp> = (0..5).map(|i| ledger.earn(i + round, 3)).collect();
        let resp = ledger
            .post("/v1/ops/batch", codec::encode_batch(&batch))
            .await;
        expect_problem(resp, 503, "unavailable").await;
    }

    // Reads still work and show exactly the state before the disk filled.
    let during: InfoResponse = expect_json(ledger.get("/v1/info").await).await;
    assert_eq!(
        (during.size, during.head, during.root, during.supply),
        (before.size, before.head, before.root, before.supply),
        "refused ops changed the ledger"
    );
    assert_eq!(ledger.balances().await, balances_before);
    let health = ledger.get("/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let last = ledger
        .client
        .entry(before.size - 1)
        .await
        .expect("last entry");
    assert_eq!(last.entry_hash, before.head);
    match ledger.client.entry(before.size).await {
        Err(ClientError::Problem(p)) if p.status == 404 => {}
        other => panic!("nothing may be served past the tip: {other:?}"),
    }
    let history = ledger
        .client
        .history(&id(&ledger.members[0]), None, 5)
        .await
        .expect("a wallet's history");
    assert!(!history.items.is_empty());
    audit_live(&ledger.client).await;

    // Space comes back: the very ops that were refused go through, once each.
    std::fs::remove_file(&ballast).expect("removing the ballast");
    for op in &refused {
        let r = ledger
            .client
            .submit(op)
            .await
            .expect("accepted once space is back");
        acked.push(r);
    }
    for (i, op) in refused.iter().enumerate() {
        let again = ledger.client.submit(op).await.expect("idempotent retry");
        assert_eq!(again, acked[acked.len() - refused.len() + i]);
    }
    let after = ledger.client.info().await.expect("GET /v1/info");
    assert_eq!(after.size, before.size + refused.len() as u64);
    check_log(&ledger, &acked).await;

    // Phase 2: the disk fills gradually under load, by the ledger's own writes, until ops
    // are refused; the store must not be damaged by the last writes that fit.
    let leave = 1 << 20;
    fill(&ballast, leave);
    let mut first_refusal = None;
    for i in 0..GRADUAL_OPS_MAX {
        let result = if i % 4 == 3 {
            let batch: Vec<SignedOp> = (0..8).map(|j| ledger.earn(i + j, 1)).collect();
            ledger.client.submit_batch(&batch).await.map(|items| {
                for item in items {
                    assert_eq!(item.status, "applied", "{item:?}");
                    acked.push(item.receipt.expect("receipt"));
                }
            })
        } else {
            ledger
                .client
                .submit(&ledger.earn(i, 1))
                .await
                .map(|r| acked.push(r))
        };
        match result {
            Ok(()) => {}
            Err(ClientError::Problem(p)) if p.status == 503 => {
                assert_eq!(p.code, "unavailable", "{p:?}");
                first_refusal = Some(i);
                break;
            }
            Err(e) => panic!("op {i} while the disk fills: {e}"),
        }
    }
    let first_refusal = first_refusal.expect("a filling disk ends in refusals");
    eprintln!("the disk was full after {first_refusal} more requests");
    // A smaller op than the one refused may still fit: take the last bytes too.
    let rest = mnt.join("ballast-rest");
    fill(&rest, 0);
    expect_unavailable(&ledger, &ledger.earn(0, 1)).await;
    let full = ledger.client.info().await.expect("GET /v1/info");
    check_log(&ledger, &acked).await;

    std::fs::remove_file(&ballast).expect("removing the ballast");
    std::fs::remove_file(&rest).expect("removing the ballast");
    let mut batch: Vec<SignedOp> = (0..10).map(|i| ledger.earn(i, 2)).collect();
    batch.push(ledger.earn(99, 5));
    let body = ledger
        .post("/v1/ops/batch", codec::encode_batch(&batch))
        .await;
    let results: BatchResponse = expect_json(body).await;
    for item in results.results {
        assert_eq!(item.status, "applied", "{item:?}");
        acked.push(item.receipt.expect("receipt"));
    }
    let end = ledger.client.info().await.expect("GET /v1/info");
    assert_eq!(end.size, full.size + batch.len() as u64);
    check_log(&ledger, &acked).await;
    let report = audit_live(&ledger.client).await;
    assert_eq!((report.entries, report.root), (end.size, end.root));
    let key = data.join(points_ledger::server::ISSUER_KEY_FILE);
    let key = key.to_str().expect("UTF-8 path");
    let cli = run_points(&["audit", "--server", &url, "--key", key, "--json"]).ok();
    assert_eq!(cli.json()["entries"], end.size);

    // A clean stop and an offline audit and replay agree with what was served.
    let balances_end = ledger.balances().await;
    let exited = server.terminate();
    assert_eq!(exited.code, Some(0), "{exited:#?}");
    let data_arg = data.to_str().expect("UTF-8 path");
    run_points(&["audit", "--data", data_arg]).ok();
    run_points(&["reindex", "--data", data_arg]).ok();
    let server = ServeChild::start(&data, &tmp.path().join("logs"));
    let ledger = Ledger {
        client: client_no_retry(&server.url()).with_key(ledger.issuer.clone()),
        url: server.url(),
        ..ledger
    };
    let reopened = ledger.client.info().await.expect("GET /v1/info");
    assert_eq!(
        (reopened.size, reopened.head, reopened.root, reopened.supply),
        (end.size, end.head, end.root, end.supply)
    );
    assert_eq!(ledger.balances().await, balances_end);
    check_log(&ledger, &acked).await;
    drop(server);
    drop(fs);
}
