//! Crash harness: nothing acknowledged is ever lost.
//!
//! The real `points serve` runs as a child process on a loopback port with a temporary data
//! folder. Concurrent workers send signed earns and transfers (single ops and batches) as a
//! merchant and its members; at a random moment the child is killed with SIGKILL. After each
//! restart the harness checks, as an auditor would:
//!
//! - every acknowledged op is in the log at its receipt's seq with the receipt's entry hash;
//! - every op whose fate was unknown (the connection died) gets, when retried with the same
//!   op id, either its one receipt or a rejection, and no (signer, op_id) is ever in the log
//!   twice; an op that was refused is never in the log;
//! - the chain, signatures, rules and Merkle tree verify (the auditor of
//!   `points audit`, over the live `/v1/export`);
//! - the served balances equal a small independent model replayed from the log, and the
//!   derived state equals a full replay (`points reindex`, then the same balances and totals).
//!
//! Randomness comes from one seed, printed at the start: `POINTS_CRASH_SEED=N` replays the
//! same op mix and kill delays (the exact kill moments still depend on scheduling).
//! `POINTS_CRASH_KILLS=N` sets the number of kills (default 25).
//!
//! A second test sends SIGTERM while ops are in flight: every op is acknowledged and durable,
//! or refused, or its connection failed; and the process exits 0.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use points_ledger::api::dto::InfoResponse;
use points_ledger::audit::{self, AuditReport};
use points_ledger::client::{self, Client, ClientError, DEFAULT_TTL_MS};
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::server::ISSUER_KEY_FILE;
use points_ledger::store::Receipt;

/// Kills per run unless `POINTS_CRASH_KILLS` says otherwise.
const KILLS_DEFAULT: u32 = 25;
/// Concurrent submitters.
const WORKERS: u64 = 6;
/// Members the merchant awards points to.
const MEMBERS: usize = 12;
/// Longest time traffic runs before the kill, in ms.
const KILL_AFTER_MS_MAX: u64 = 400;
/// Every this many rounds, the restarting child is killed again while it opens the ledger.
const DOUBLE_KILL_EVERY: u32 = 4;
/// Largest batch a worker sends.
const BATCH_OPS_MAX: u64 = 8;
/// Page size when reading the log.
const PAGE: u32 = 1000;

/// xorshift64: small, seedable, good enough to pick ops and delays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Spread nearby seeds apart and never start at zero.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got `{v}`"))
    })
}

fn seed() -> u64 {
    let seed = env_u64("POINTS_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("crash harness seed: {seed} (replay with POINTS_CRASH_SEED={seed})");
    seed
}

type OpKey = (AccountId, OpId);

fn key_of(op: &SignedOp) -> OpKey {
    (op.envelope.signer, op.envelope.op_id)
}

/// The keys of the program.
struct Keys {
    chain_id: String,
    issuer: Keypair,
    merchant: Keypair,
    members: Vec<Keypair>,
}

impl Keys {
    fn sign(&self, key: &Keypair, op: Op) -> SignedOp {
        client::sign_op(
            key,
            &self.chain_id,
            client::random_op_id(),
            client::now_ms() + DEFAULT_TTL_MS,
            op,
        )
    }

    fn accounts(&self) -> Vec<AccountId> {
        let mut all = vec![id(&self.issuer), id(&self.merchant)];
        all.extend(self.members.iter().map(id));
        all
    }

    /// A random earn (most), member-to-member transfer (some too large: refused), or
    /// voluntary burn.
    fn random_op(&self, rng: &mut Rng) -> SignedOp {
        let m = self.members.len() as u64;
        let a = rng.below(m) as usize;
        match rng.below(12) {
            0..=3 => {
                let b = (a + 1 + rng.below(m - 1) as usize) % self.members.len();
                let amount = match rng.below(6) {
                    0 => 5_000 + rng.below(5_000),
                    _ => 1 + rng.below(40),
                };
                self.sign(&self.members[a], transfer_op(id(&self.members[b]), amount))
            }
            4 => self.sign(
                &self.members[a],
                burn_op(id(&self.members[a]), 1 + rng.below(10)),
            ),
            _ => {
                let amount = 1 + rng.below(100);
                self.sign(
                    &self.merchant,
                    earn_op(id(&self.members[a]), amount, "crash"),
                )
            }
        }
    }
}

/// What the clients were told about every op they sent.
#[derive(Default)]
struct Book {
    /// Acknowledged, with the receipt.
    acked: HashMap<OpKey, Receipt>,
    /// Refused by the rules (or as a whole request with a 4xx): never in the log.
    rejected: HashSet<OpKey>,
    /// No answer (connection failed) or 503: may or may not be in the log.
    in_doubt: HashMap<OpKey, SignedOp>,
    /// Keys acknowledged since the last check.
    fresh: Vec<OpKey>,
    /// Answers that are neither a receipt, a refusal nor a connection failure.
    unexpected: Vec<String>,
}

impl Book {
    fn ack(&mut self, op: &SignedOp, receipt: Receipt) {
        let key = key_of(op);
        if receipt.signed_op != *op {
            self.unexpected
                .push(format!("receipt for {key:?} holds another op: {receipt:?}"));
        }
        self.in_doubt.remove(&key);
        if let Some(prev) = self.acked.get(&key) {
            if *prev != receipt {
                self.unexpected.push(format!(
                    "two different receipts for {key:?}: {prev:?} and {receipt:?}"
                ));
            }
            return;
        }
        self.acked.insert(key, receipt);
        self.fresh.push(key);
    }

    fn failed(&mut self, ops: &[SignedOp], error: &ClientError) {
        match error {
            ClientError::Problem(p) if p.status == 503 => self.doubt(ops),
            ClientError::Problem(p) if (400..500).contains(&p.status) => {
                for op in ops {
                    self.in_doubt.remove(&key_of(op));
                    self.rejected.insert(key_of(op));
                }
            }
            ClientError::Transport(_) => self.doubt(ops),
            other => self.unexpected.push(format!("{other}")),
        }
    }

    fn doubt(&mut self, ops: &[SignedOp]) {
        for op in ops {
            let key = key_of(op);
            if !self.acked.contains_key(&key) && !self.rejected.contains(&key) {
                self.in_doubt.insert(key, op.clone());
            }
        }
    }
}

/// Sends random traffic until `stop` is set.
async fn worker(
    client: Client,
    keys: Arc<Keys>,
    book: Arc<Mutex<Book>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        if rng.below(3) == 0 {
            let n = 2 + rng.below(BATCH_OPS_MAX - 1);
            let ops: Vec<SignedOp> = (0..n).map(|_| keys.random_op(&mut rng)).collect();
            book.lock().unwrap().doubt(&ops);
            let result = client.submit_batch(&ops).await;
            let mut book = book.lock().unwrap();
            match result {
                Ok(items) if items.len() == ops.len() => {
                    for (op, item) in ops.iter().zip(items) {
                        match (item.status.as_str(), item.receipt, item.problem) {
                            ("applied", Some(r), _) => book.ack(op, r),
                            ("rejected", None, Some(p)) if (400..500).contains(&p.status) => {
                                book.in_doubt.remove(&key_of(op));
                                book.rejected.insert(key_of(op));
                            }
                            (status, r, p) => book
                                .unexpected
                                .push(format!("batch item {status}: {r:?} {p:?}")),
                        }
                    }
                }
                Ok(items) => book.unexpected.push(format!(
                    "{} results for a batch of {}",
                    items.len(),
                    ops.len()
                )),
                Err(e) => book.failed(&ops, &e),
            }
        } else {
            let op = keys.random_op(&mut rng);
            book.lock().unwrap().doubt(std::slice::from_ref(&op));
            let result = client.submit(&op).await;
            let mut book = book.lock().unwrap();
            match result {
                Ok(r) => book.ack(&op, r),
                Err(e) => book.failed(std::slice::from_ref(&op), &e),
            }
        }
    }
}

/// What the test has read of the log so far: every entry is read once, in order, and checked
/// to link to the one before; earlier entries are pinned by the hash chain (the last hash read
/// must still be there, and the audit checks every link).
#[derive(Default)]
struct LogView {
    hashes: Vec<Hash32>,
    seq_of: HashMap<OpKey, u64>,
    /// Balances replayed from the entries by the simple model of earn, transfer, mint, burn.
    model: HashMap<AccountId, u64>,
}

impl LogView {
    async fn catch_up(&mut self, client: &Client) {
        if let Some(last) = self.hashes.last() {
            let seq = self.hashes.len() as u64 - 1;
            let e = client.entry(seq).await.expect("GET an entry read before");
            assert_eq!(e.entry_hash, *last, "entry {seq} changed after a restart");
        }
        loop {
            let after = (self.hashes.len() as u64).checked_sub(1);
            let page = client.entries(after, PAGE).await.expect("GET /v1/entries");
            for e in &page.items {
                assert_eq!(e.seq, self.hashes.len() as u64, "entries come in order");
                let prev = self.hashes.last().copied().unwrap_or(Hash32::ZERO);
                assert_eq!(e.prev_hash, prev, "entry {} does not link", e.seq);
                self.hashes.push(e.entry_hash);
                let key = key_of(&e.op);
                if let Some(first) = self.seq_of.insert(key, e.seq) {
                    panic!("op {key:?} is in the log twice: at {first} and {}", e.seq);
                }
                self.apply(&e.op);
            }
            if page.next_after.is_none() || page.items.is_empty() {
                return;
            }
        }
    }

    fn apply(&mut self, op: &SignedOp) {
        let signer = op.envelope.signer;
        let (from, to, amount) = match &op.envelope.op {
            Op::Mint(m) => (None, Some(m.to), m.amount.0),
            Op::Earn(e) => (Some(signer), Some(e.member), e.amount.0),
            Op::Transfer(t) => (Some(signer), Some(t.to), t.amount.0),
            Op::Burn(b) => (Some(b.from), None, b.amount.0),
            _ => (None, None, 0),
        };
        if let Some(from) = from {
            let b = self.model.entry(from).or_insert(0);
            *b = b
                .checked_sub(amount)
                .expect("the log never overdraws an account");
        }
        if let Some(to) = to {
            *self.model.entry(to).or_insert(0) += amount;
        }
    }
}

/// Balances of `accounts` as served (0 for an account that never held points).
async fn balances(client: &Client, accounts: &[AccountId]) -> Vec<u64> {
    let mut out = Vec::with_capacity(accounts.len());
    for a in accounts {
        out.push(match client.wallet(a).await {
            Ok(w) => w.balance,
            Err(e) if e.code() == Some("unknown_account") => 0,
            Err(e) => panic!("GET wallet {a}: {e}"),
        });
    }
    out
}

/// Totals and tip of `/v1/info`, for comparisons.
fn totals(i: &InfoResponse) -> (u64, Hash32, Hash32, u64, u64, u64) {
    (i.size, i.head, i.root, i.supply, i.minted, i.burned)
}

/// A ledger under test: the data folder, the running child and what is known about it.
struct Harness {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    logs: PathBuf,
    server: Option<ServeChild>,
    client: Client,
    keys: Arc<Keys>,
    book: Arc<Mutex<Book>>,
    log: LogView,
}

impl Harness {
    async fn start() -> Harness {
        let tmp = tempfile::Builder::new()
            .prefix("points-crash-")
            .tempdir()
            .expect("temporary folder");
        let data = tmp.path().join("data");
        let logs = tmp.path().join("logs");
        let server = ServeChild::start(&data, &logs);
        let issuer = Keypair::read_file(&data.join(ISSUER_KEY_FILE)).expect("issuer key");
        let client = client_no_retry(&server.url()).with_key(issuer.clone());
        let chain_id = client.info().await.expect("GET /v1/info").chain_id;
        let keys = Arc::new(Keys {
            chain_id,
            issuer,
            merchant: Keypair::generate(),
            members: keys(MEMBERS),
        });
        let h = Harness {
            _tmp: tmp,
            data,
            logs,
            server: Some(server),
            client,
            keys,
            book: Arc::default(),
            log: LogView::default(),
        };
        let k = h.keys.clone();
        let mut setup = vec![
            k.sign(
                &k.issuer,
                register_merchant_op(id(&k.merchant), "Crash Test Mart"),
            ),
            k.sign(&k.issuer, mint_op(id(&k.merchant), 1_000_000_000_000)),
        ];
        setup.extend(
            k.members
                .iter()
                .map(|m| k.sign(&k.merchant, earn_op(id(m), 1_000, "welcome"))),
        );
        for op in &setup {
            let r = h.client.submit(op).await.expect("setup op");
            h.book.lock().unwrap().ack(op, r);
        }
        h
    }

    fn restart(&mut self) {
        assert!(self.server.is_none(), "stop the child first");
        let server = ServeChild::start(&self.data, &self.logs);
        self.client = client_no_retry(&server.url()).with_key(self.keys.issuer.clone());
        self.server = Some(server);
    }

    /// Starts `points serve` and kills it again after `ms` milliseconds, most likely while
    /// it is still opening (and recovering) the ledger.
    fn kill_while_opening(&self, ms: u64) {
        let mut child = points_cmd(&[
            "serve",
            "--data",
            self.data.to_str().expect("UTF-8 path"),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning points serve");
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Runs traffic from `WORKERS` workers; `stopper` decides when the child goes away.
    async fn traffic(
        &mut self,
        seed: u64,
        stopper: impl FnOnce(ServeChild) -> Exited + Send + 'static,
        after_ms: u64,
    ) -> Exited {
        let stop = Arc::new(AtomicBool::new(false));
        // Ops carry their own signatures: submitters send no signed request header.
        let submitter = client_no_retry(self.client.base());
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            tasks.push(tokio::spawn(worker(
                submitter.clone(),
                self.keys.clone(),
                self.book.clone(),
                stop.clone(),
                seed ^ (w + 1).wrapping_mul(0x2545_f491_4f6c_dd1d),
            )));
        }
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        let server = self.server.take().expect("running");
        let exited = tokio::task::spawn_blocking(move || stopper(server))
            .await
            .expect("stopping the child");
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("worker");
        }
        let unexpected = std::mem::take(&mut self.book.lock().unwrap().unexpected);
        assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
        exited
    }

    /// Every check of the module docs, against the running child. Returns (entries, ops
    /// that had landed without their acknowledgement).
    async fn check(&mut self) -> (u64, usize) {
        self.log.catch_up(&self.client).await;
        let size_before_retries = self.log.hashes.len() as u64;

        // Ops acknowledged since the last check, one by one.
        let fresh = std::mem::take(&mut self.book.lock().unwrap().fresh);
        for key in &fresh {
            let r = self.book.lock().unwrap().acked[key].clone();
            let e = self
                .client
                .entry(r.seq)
                .await
                .unwrap_or_else(|e| panic!("acknowledged entry {} is gone: {e}", r.seq));
            assert_eq!(
                e.entry_hash, r.entry_hash,
                "acknowledged entry {} changed",
                r.seq
            );
            assert_eq!(e.op, r.signed_op, "entry {} holds another op", r.seq);
        }

        // Ops of unknown fate: retried with the same op id, each lands at most once.
        let doubts: Vec<SignedOp> = {
            let mut book = self.book.lock().unwrap();
            let mut v: Vec<_> = book.in_doubt.drain().map(|(_, op)| op).collect();
            v.sort_by_key(|op| op.envelope.op_id);
            v
        };
        let mut landed_unacked = 0;
        for op in &doubts {
            match self.client.submit(op).await {
                Ok(r) => {
                    if r.seq < size_before_retries {
                        landed_unacked += 1;
                        assert_eq!(
                            self.log.seq_of.get(&key_of(op)),
                            Some(&r.seq),
                            "a retried op's receipt names another seq than the log"
                        );
                    }
                    self.book.lock().unwrap().ack(op, r);
                }
                Err(ClientError::Problem(p)) if (400..500).contains(&p.status) => {
                    assert!(
                        !self.log.seq_of.contains_key(&key_of(op)),
                        "an op in the log was refused on retry: {p:?}"
                    );
                    self.book.lock().unwrap().rejected.insert(key_of(op));
                }
                Err(e) => panic!("retrying an op after the restart: {e}"),
            }
        }
        self.log.catch_up(&self.client).await;
        {
            let book = self.book.lock().unwrap();
            assert!(book.unexpected.is_empty(), "{:#?}", book.unexpected);
            for (key, r) in &book.acked {
                assert_eq!(
                    self.log.seq_of.get(key),
                    Some(&r.seq),
                    "acknowledged op {key:?} is not in the log at seq {}",
                    r.seq
                );
                assert_eq!(self.log.hashes[r.seq as usize], r.entry_hash);
            }
            for key in &book.rejected {
                assert!(
                    !self.log.seq_of.contains_key(key),
                    "refused op {key:?} is in the log"
                );
            }
        }

        // A sample of acknowledged ops, retried: the very same receipt, no new entry.
        let sample: Vec<Receipt> = {
            let book = self.book.lock().unwrap();
            fresh
                .iter()
                .take(10)
                .map(|k| book.acked[k].clone())
                .collect()
        };
        for r in sample {
            let again = self.client.submit(&r.signed_op).await.expect("retry");
            assert_eq!(again, r, "an idempotent retry changed the receipt");
        }

        // The whole chain, signatures, rules, invariants and Merkle tree, as an auditor.
        let report = audit_live(&self.client).await;
        let info = self.client.info().await.expect("GET /v1/info");
        assert_eq!(
            (report.entries, report.root, report.head, report.supply),
            (info.size, info.root, info.head, info.supply),
            "the audit and the server disagree"
        );
        assert_eq!(info.size, self.log.hashes.len() as u64);

        // Served balances against the independent model.
        let accounts = self.keys.accounts();
        let served = balances(&self.client, &accounts).await;
        let model: Vec<u64> = accounts
            .iter()
            .map(|a| self.log.model.get(a).copied().unwrap_or(0))
            .collect();
        assert_eq!(served, model, "served balances differ from the log's");
        (info.size, landed_unacked)
    }

    /// Every acknowledged receipt, fetched one by one (`GET /v1/entries/{seq}`).
    async fn check_every_receipt(&self) -> usize {
        let receipts: Vec<Receipt> = self.book.lock().unwrap().acked.values().cloned().collect();
        for r in &receipts {
            let e = self
                .client
                .entry(r.seq)
                .await
                .unwrap_or_else(|e| panic!("acknowledged entry {} is gone: {e}", r.seq));
            assert_eq!(
                e.entry_hash, r.entry_hash,
                "acknowledged entry {} changed",
                r.seq
            );
            assert_eq!(e.op, r.signed_op, "entry {} holds another op", r.seq);
        }
        receipts.len()
    }

    /// Stops the child cleanly, rebuilds every derived tree by replaying the log, restarts,
    /// and compares balances and totals with what was served before.
    async fn reindex_and_compare(&mut self) {
        let accounts = self.keys.accounts();
        let before_balances = balances(&self.client, &accounts).await;
        let before = self.client.info().await.expect("GET /v1/info");
        let exited = self.server.take().expect("running").terminate();
        assert_eq!(exited.code, Some(0), "clean stop: {exited:#?}");
        run_points(&["reindex", "--data", self.data.to_str().expect("UTF-8 path")]).ok();
        self.restart();
        let after = self.client.info().await.expect("GET /v1/info");
        assert_eq!(
            totals(&after),
            totals(&before),
            "reindex changed the totals"
        );
        assert_eq!(
            balances(&self.client, &accounts).await,
            before_balances,
            "reindex changed balances"
        );
    }
}

fn kill(server: ServeChild) -> Exited {
    server.kill()
}

fn terminate(server: ServeChild) -> Exited {
    server.terminate()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let seed = seed();
    let kills = env_u64("POINTS_CRASH_KILLS").unwrap_or(u64::from(KILLS_DEFAULT)) as u32;
    let mut rng = Rng::new(seed);
    let mut h = Harness::start().await;
    let mut landed_unacked_total = 0;
    let mut double_kills = 0;
    let mut size = 0;
    for round in 1..=kills {
        let after_ms = match rng.below(4) {
            0 => rng.below(20),
            _ => rng.below(KILL_AFTER_MS_MAX),
        };
        let exited = h.traffic(rng.next(), kill, after_ms).await;
        assert_eq!(exited.code, None, "SIGKILL, not an exit: {exited:#?}");
        if round % DOUBLE_KILL_EVERY == 0 {
            h.kill_while_opening(rng.below(40));
            double_kills += 1;
        }
        h.restart();
        let (entries, landed_unacked) = h.check().await;
        landed_unacked_total += landed_unacked;
        size = entries;
        h.reindex_and_compare().await;
        eprintln!(
            "round {round}/{kills}: killed after {after_ms} ms; {entries} entries, \
             {landed_unacked} ops had landed without their acknowledgement"
        );
    }
    let fetched = h.check_every_receipt().await;
    let book = h.book.lock().unwrap();
    assert_eq!(fetched, book.acked.len());
    eprintln!(
        "{kills} kills ({double_kills} more while opening), {size} entries, {} acknowledged, \
         {} refused, {landed_unacked_total} landed unacknowledged; seed {seed}",
        book.acked.len(),
        book.rejected.len()
    );
    assert!(
        book.acked.len() > kills as usize,
        "the traffic got ops through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_ops_in_flight_drains_and_exits_zero() {
    let seed = seed();
    let mut rng = Rng::new(seed ^ 0x5157_7e12);
    let mut h = Harness::start().await;
    for round in 0..3 {
        let after_ms = 50 + rng.below(200);
        let exited = h.traffic(rng.next(), terminate, after_ms).await;
        assert_eq!(
            exited.code,
            Some(0),
            "SIGTERM must end in exit 0: {exited:#?}"
        );
        assert!(
            exited.stdout.contains("Stopped cleanly."),
            "round {round}: {exited:#?}"
        );
        h.restart();
        h.check().await;
    }
    let data = h.data.clone();
    let exited = h.server.take().expect("running").terminate();
    assert_eq!(exited.code, Some(0), "{exited:#?}");
    audit_data(&data);
}

/// Audits the live log (`GET /v1/export`, read as the issuer) with the library auditor that
/// `points audit` runs.
async fn audit_live(client: &Client) -> AuditReport {
    let mut export = Vec::new();
    client.export_to(&mut export).await.expect("GET /v1/export");
    audit::audit_export(&export[..], 4096, |_| {}).unwrap_or_else(|e| panic!("audit: {e}"))
}

fn audit_data(data: &Path) {
    run_points(&["audit", "--data", data.to_str().expect("UTF-8 path")]).ok();
}
