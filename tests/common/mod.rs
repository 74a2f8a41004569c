//! Shared helpers of the end-to-end tests: an in-process server on a loopback port with a
//! temporary data folder, op signing and submission, ledger snapshots, problem+json checks,
//! and the real `points` binary run as a separate process.
//!
//! Every test crate compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use points_ledger::api::dto::{InfoResponse, Page};
use points_ledger::api::error::Problem;
use points_ledger::client::{self, Client, ClientError, DEFAULT_TTL_MS};
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::server::{self, Running, ServeConfig, ServeError};
use points_ledger::store::{Receipt, StoreError};
use tempfile::TempDir;

/// Content type of every error response.
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Prefix of every problem `type`.
pub const PROBLEM_PREFIX: &str = "urn:points-ledger:problem:";

/// How long to keep polling for a condition that must become true (a child process that
/// must answer, a data folder that must be released) before giving up with a clear panic.
/// This bounds a wait; nothing asserts on how long anything took.
const WAIT_ROUNDS: u32 = 600;
const WAIT_STEP: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// In-process server
// ---------------------------------------------------------------------------------------

/// A server running in this process on `127.0.0.1:0`, with its own temporary data folder.
pub struct TestServer {
    /// The data folder (deleted on drop).
    pub dir: TempDir,
    /// The server, while it runs.
    pub running: Option<Running>,
    /// The issuer key, read from `<data>/issuer.key`.
    pub issuer: Keypair,
    /// A client of the server, signing its reads with the issuer key (which may read
    /// everything).
    pub client: Client,
    /// A raw HTTP client, for requests the typed client cannot make.
    pub http: reqwest::Client,
    /// The ledger's chain id.
    pub chain_id: String,
    /// Restarts that had to wait for the previous run to release the data folder.
    pub restart_waits: u32,
}

fn config_for(data: &Path) -> ServeConfig {
    let mut config = ServeConfig::new(data);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.chain_id = Some("test.points.local/e2e".to_string());
    config
}

/// A client that gives up at once: tests want to see every failure, not retry it away.
pub fn client_no_retry(url: &str) -> Client {
    let mut c = Client::new(url);
    c.submit_attempts = 1;
    c
}

impl TestServer {
    /// Starts a fresh ledger in a new temporary folder.
    pub async fn start() -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("points-e2e-")
            .tempdir()
            .expect("creating a temporary data folder");
        let running = server::start(config_for(dir.path()))
            .await
            .expect("starting the in-process server");
        let created = running
            .created
            .clone()
            .expect("a fresh data folder creates a ledger");
        let issuer_path = dir.path().join(server::ISSUER_KEY_FILE);
        assert_eq!(created.issuer_key_path, issuer_path);
        let issuer = Keypair::read_file(&issuer_path).expect("reading the issuer key");
        assert_eq!(AccountId(issuer.public_key()), created.issuer);
        let url = running.url();
        TestServer {
            chain_id: running.chain_id.clone(),
            dir,
            running: Some(running),
            client: client_no_retry(&url).with_key(issuer.clone()),
            issuer,
            http: reqwest::Client::new(),
            restart_waits: 0,
        }
    }

    /// The data folder.
    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    /// Base URL of the running server.
    pub fn url(&self) -> String {
        self.running.as_ref().expect("the server is running").url()
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url(), path)
    }

    /// The issuer's account.
    pub fn issuer_id(&self) -> AccountId {
        AccountId(self.issuer.public_key())
    }

    /// Stops the server gracefully (drains in-flight requests and the sequencer).
    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops the server (if running) and starts it again on the same data folder.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let mut rounds = 0;
        let running = loop {
            match server::start(config_for(self.dir.path())).await {
                Ok(r) => break r,
                // The previous run may still be releasing the sled lock in the background.
                Err(ServeError::Store(StoreError::Locked(_))) if rounds < WAIT_ROUNDS => {
                    rounds += 1;
                    tokio::time::sleep(WAIT_STEP).await;
                }
                Err(e) => panic!("restarting on the same data folder: {e}"),
            }
        };
        if rounds > 0 {
            self.restart_waits += 1;
        }
        assert!(
            running.created.is_none(),
            "a reopened ledger is not created again"
        );
        assert_eq!(running.chain_id, self.chain_id);
        self.client = client_no_retry(&running.url()).with_key(self.issuer.clone());
        self.running = Some(running);
    }

    /// Signs `op` with `key` for this ledger, with a fresh op id and the default TTL.
    pub fn sign(&self, key: &Keypair, op: Op) -> SignedOp {
        client::sign_op(
            key,
            &self.chain_id,
            client::random_op_id(),
            client::now_ms() + DEFAULT_TTL_MS,
            op,
        )
    }

    /// Signs `op` with an explicit op id.
    pub fn sign_id(&self, key: &Keypair, op_id: u128, op: Op) -> SignedOp {
        client::sign_op(
            key,
            &self.chain_id,
            OpId(op_id),
            client::now_ms() + DEFAULT_TTL_MS,
            op,
        )
    }

    /// Signs and submits an op.
    pub async fn submit(&self, key: &Keypair, op: Op) -> Result<Receipt, ClientError> {
        self.client.submit(&self.sign(key, op)).await
    }

    /// Signs and submits an op that must be accepted.
    pub async fn ok(&self, key: &Keypair, op: Op) -> Receipt {
        let kind = op.kind();
        self.submit(key, op)
            .await
            .unwrap_or_else(|e| panic!("{kind} must be accepted: {e}"))
    }

    /// Signs and submits an op that must be refused with `code`.
    pub async fn refused(&self, key: &Keypair, op: Op, code: &str) -> Problem {
        let signed = self.sign(key, op);
        self.refused_signed(&signed, code).await
    }

    /// Submits a signed op that must be refused with `code`; the ledger must not change.
    pub async fn refused_signed(&self, signed: &SignedOp, code: &str) -> Problem {
        let before = self.info().await;
        let err = self
            .client
            .submit(signed)
            .await
            .expect_err(&format!("expected `{code}`, the op was accepted"));
        let ClientError::Problem(p) = err else {
            panic!("expected problem `{code}`, got {err}");
        };
        assert_eq!(p.code, code, "{p:?}");
        assert_eq!(p.type_uri, format!("{PROBLEM_PREFIX}{code}"));
        let after = self.info().await;
        assert_eq!(
            (before.size, before.head, before.supply),
            (after.size, after.head, after.supply),
            "a refused op changed the ledger"
        );
        p
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> InfoResponse {
        self.client.info().await.expect("GET /v1/info")
    }

    /// A balance; 0 for an account that never held points.
    pub async fn balance(&self, account: &AccountId) -> u64 {
        match self.client.wallet(account).await {
            Ok(w) => w.balance,
            Err(e) if e.code() == Some("unknown_account") => 0,
            Err(e) => panic!("GET wallet {account}: {e}"),
        }
    }

    /// Balances of several accounts, in order.
    pub async fn balances(&self, accounts: &[AccountId]) -> Vec<u64> {
        let mut out = Vec::with_capacity(accounts.len());
        for a in accounts {
            out.push(self.balance(a).await);
        }
        out
    }

    /// What must not change when an op is refused: the tip, the totals and these balances.
    pub async fn snapshot(&self, accounts: &[AccountId]) -> Snapshot {
        let info = self.info().await;
        Snapshot {
            size: info.size,
            head: info.head,
            root: info.root,
            supply: info.supply,
            minted: info.minted,
            burned: info.burned,
            balances: self.balances(accounts).await,
        }
    }

    /// Every receipt in an account's history, walking pages of `limit`.
    pub async fn full_history(&self, account: &AccountId, limit: u32) -> Vec<Receipt> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page: Page<Receipt> = self
                .client
                .history(account, after, limit)
                .await
                .expect("GET history");
            assert!(page.items.len() <= limit as usize);
            out.extend(page.items);
            match page.next_after {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    }

    /// Registers `merchant` (issuer-signed) with 1/1 rates.
    pub async fn register_merchant(&self, merchant: &Keypair, name: &str) -> Receipt {
        let issuer = &self.issuer;
        self.ok(issuer, register_merchant_op(id(merchant), name))
            .await
    }

    /// Mints `amount` into `to`.
    pub async fn mint(&self, to: &AccountId, amount: u64) -> Receipt {
        self.ok(&self.issuer, mint_op(*to, amount)).await
    }
}

/// See [`TestServer::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Entries.
    pub size: u64,
    /// Head hash.
    pub head: Hash32,
    /// Merkle root.
    pub root: Hash32,
    /// Supply.
    pub supply: u64,
    /// Minted.
    pub minted: u64,
    /// Burned.
    pub burned: u64,
    /// Balances of the accounts asked for.
    pub balances: Vec<u64>,
}

// ---------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------

/// The account of a key.
pub fn id(key: &Keypair) -> AccountId {
    AccountId(key.public_key())
}

/// `n` fresh keys.
pub fn keys(n: usize) -> Vec<Keypair> {
    (0..n).map(|_| Keypair::generate()).collect()
}

/// RegisterMerchant with 1/1 rates.
pub fn register_merchant_op(merchant: AccountId, name: &str) -> Op {
    Op::RegisterMerchant(RegisterMerchant {
        merchant,
        name: name.to_string(),
        issue_rate: Rate {
            minor_units: 1,
            per_points: 1,
        },
        redeem_rate: Rate {
            minor_units: 1,
            per_points: 1,
        },
    })
}

/// UpdateMerchant that only changes the status.
pub fn merchant_status_op(merchant: AccountId, status: MerchantStatus) -> Op {
    Op::UpdateMerchant(UpdateMerchant {
        merchant,
        name: None,
        issue_rate: None,
        redeem_rate: None,
        status: Some(status),
    })
}

/// Mint with an empty memo.
pub fn mint_op(to: AccountId, amount: u64) -> Op {
    Op::Mint(Mint {
        to,
        amount: Points(amount),
        memo: Bytes(Vec::new()),
        expires_at_ms: None,
    })
}

/// Earn for a purchase with a reference.
pub fn earn_op(member: AccountId, amount: u64, reference: &str) -> Op {
    Op::Earn(Earn {
        member,
        amount: Points(amount),
        reason: EarnReason::Purchase,
        reference: Bytes(reference.as_bytes().to_vec()),
        expires_at_ms: None,
        pending: None,
    })
}

/// Transfer with an empty memo.
pub fn transfer_op(to: AccountId, amount: u64) -> Op {
    Op::Transfer(Transfer {
        to,
        amount: Points(amount),
        memo: Bytes(Vec::new()),
    })
}

/// Voluntary burn.
pub fn burn_op(from: AccountId, amount: u64) -> Op {
    Op::Burn(Burn {
        from,
        amount: Points(amount),
        reason: BurnReason::Voluntary,
    })
}

// ---------------------------------------------------------------------------------------
// Raw HTTP checks
// ---------------------------------------------------------------------------------------

/// Reads a response that must be a problem with `status` and `code`, and checks the whole
/// problem contract: content type, `type` URI, `code`, `status` and a non-empty `detail`.
pub async fn expect_problem(resp: reqwest::Response, status: u16, code: &str) -> Problem {
    let got = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.bytes().await.expect("reading a problem body");
    let text = String::from_utf8_lossy(&body);
    assert_eq!(got, status, "expected HTTP {status} `{code}`, body: {text}");
    assert_eq!(content_type, PROBLEM_JSON, "body: {text}");
    let raw: serde_json::Value = serde_json::from_slice(&body).expect("problem body is JSON");
    assert_eq!(
        raw["type"],
        serde_json::Value::String(format!("{PROBLEM_PREFIX}{code}")),
        "body: {text}"
    );
    let p: Problem = serde_json::from_slice(&body).expect("problem body has every field");
    assert_eq!(p.code, code);
    assert_eq!(p.status, status);
    assert!(!p.title.is_empty());
    assert!(!p.detail.is_empty());
    p
}

/// Reads a successful JSON response.
pub async fn expect_json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> T {
    let status = resp.status();
    let body = resp.bytes().await.expect("reading a body");
    assert!(
        status.is_success(),
        "expected success, got HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "response is not the expected JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

// ---------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------

/// Path of the `points` binary built for this test run.
pub fn points_bin() -> &'static str {
    env!("CARGO_BIN_EXE_points")
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with the whole output unless the run succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "the command failed: {self:#?}");
        self
    }

    /// Panics unless the run failed with a non-zero exit code and a message on stderr.
    pub fn failed(self) -> Run {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "the command must fail with a non-zero exit code: {self:#?}"
        );
        assert!(
            !self.stderr.trim().is_empty(),
            "a failing command must say why on stderr: {self:#?}"
        );
        self
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// A `points` command with a clean environment (no `POINTS_*` settings leak in).
pub fn points_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(points_bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("POINTS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("POINTS_LOG", "warn");
    cmd
}

/// Runs `points` with `args` to completion and captures its output. A run that does not
/// end within the wait bound is killed and reported, so a hang never hangs the suite.
pub fn run_points(args: &[&str]) -> Run {
    let mut child = points_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the points binary");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let mut status = None;
    for _ in 0..WAIT_ROUNDS * 4 {
        if let Some(s) = child.try_wait().expect("polling the child") {
            status = Some(s);
            break;
        }
        std::thread::sleep(WAIT_STEP / 5);
    }
    let hung = status.is_none();
    if hung {
        let _ = child.kill();
        status = Some(child.wait().expect("reaping the child"));
    }
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
    };
    assert!(!hung, "`points {}` did not exit: {run:#?}", args.join(" "));
    run
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// A blocking `GET` on a loopback address: (status, body). `None` if nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_as(addr, path, None)
}

/// [`http_get`] signed by `key` for `chain_id` (`ledger-spec/api.md` §3), when given.
pub fn http_get_as(
    addr: SocketAddr,
    path: &str,
    signer: Option<(&Keypair, &str)>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let auth = signer.map_or_else(String::new, |(key, chain_id)| {
        let value = points_ledger::api::auth::authorization_value(
            key,
            "GET",
            path,
            client::now_ms(),
            chain_id,
        );
        format!("Authorization: {value}\r\n")
    });
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n{auth}\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "http_get does not decode chunked bodies"
    );
    Some((status, body.to_string()))
}

/// `points serve` running as a child process. Killed (and reaped) on drop.
pub struct ServeChild {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The data folder.
    pub data: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

/// How a child server ended.
#[derive(Debug)]
pub struct Exited {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl ServeChild {
    /// Starts `points serve --data DATA --listen 127.0.0.1:0`, reads the port the server
    /// bound from its `Listening on` banner, and waits until `/healthz` answers there.
    /// Letting the server pick its own free port means no other process (or parallel test)
    /// can take the port between choosing it and binding it. `logs` is a folder for the
    /// child's stdout and stderr.
    pub fn start(data: &Path, logs: &Path) -> ServeChild {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        std::fs::create_dir_all(logs).expect("creating the log folder");
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stdout_path = logs.join(format!("serve-{}-{n}.out", std::process::id()));
        let stderr_path = logs.join(format!("serve-{}-{n}.err", std::process::id()));
        let child = points_cmd(&[
            "serve",
            "--data",
            data.to_str().expect("UTF-8 path"),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawning points serve");
        let mut server = ServeChild {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data: data.to_path_buf(),
            stdout_path,
            stderr_path,
        };
        if let Err(exited) = server.wait_healthy() {
            panic!("points serve exited before answering /healthz: {exited:#?}");
        }
        server
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits for the `Listening on http://ADDR` banner, then polls `/healthz` at ADDR until
    /// it answers 200 (`Ok`), or until the child exits (`Err`).
    fn wait_healthy(&mut self) -> Result<(), Exited> {
        for _ in 0..WAIT_ROUNDS {
            if self
                .child_mut()
                .try_wait()
                .expect("polling the child")
                .is_some()
            {
                return Err(self.collect_exit());
            }
            if self.addr.port() == 0 {
                let banner = self.output().0.lines().find_map(|l| {
                    l.strip_prefix("Listening on http://")
                        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                });
                if let Some(addr) = banner {
                    assert!(addr.ip().is_loopback(), "serve listens on {addr}");
                    self.addr = addr;
                }
            }
            if self.addr.port() != 0 {
                if let Some((200, body)) = http_get(self.addr, "/healthz") {
                    assert!(body.contains("\"ok\""), "unexpected /healthz body: {body}");
                    return Ok(());
                }
            }
            std::thread::sleep(WAIT_STEP);
        }
        let _ = self.child_mut().kill();
        panic!(
            "points serve did not answer /healthz: {:#?}",
            self.collect_exit()
        );
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is running")
    }

    fn collect_exit(&mut self) -> Exited {
        let status = self.child_mut().wait().expect("reaping the child");
        self.child = None;
        Exited {
            code: status.code(),
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        }
    }

    /// Whether the child still runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().expect("polling the child").is_none(),
        }
    }

    /// What the child printed so far.
    pub fn output(&self) -> (String, String) {
        (
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        )
    }

    /// Asks the child to stop (SIGTERM) and waits for it to exit.
    pub fn terminate(mut self) -> Exited {
        let pid = self.child_mut().id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        self.collect_exit()
    }

    /// Kills the child (SIGKILL: a crash) and waits for it to exit.
    pub fn kill(mut self) -> Exited {
        let _ = self.child_mut().kill();
        self.collect_exit()
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
