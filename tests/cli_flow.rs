//! The newcomer's flow with the real `points` binary, every step a separate process:
//! `points serve` as a child, `points keygen`, `points wallet …` as issuer, merchant and
//! members; bad input; a second server on the same folder; restarts.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::{http_get, http_get_as, run_points, Run, ServeChild};
use points_ledger::crypto::Keypair;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A key made by `points keygen`.
struct KeyFile {
    path: PathBuf,
    public: String,
}

impl KeyFile {
    fn arg(&self) -> &str {
        self.path.to_str().expect("UTF-8 path")
    }
}

/// `points keygen --out DIR/NAME.key`; checks the output, the file mode and `wallet show`.
fn keygen(dir: &Path, name: &str) -> KeyFile {
    let path = dir.join(format!("{name}.key"));
    let run = run_points(&["keygen", "--out", path.to_str().expect("UTF-8 path")]).ok();
    let public = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Public key: "))
        .unwrap_or_else(|| panic!("keygen prints the public key: {run:#?}"))
        .trim()
        .to_string();
    assert_eq!(public.len(), 64);
    assert!(public
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "keygen writes mode 0600");
    }
    let key = KeyFile { path, public };
    let shown = run_points(&["wallet", "--key", key.arg(), "show"]).ok();
    assert_eq!(shown.stdout.trim(), key.public);
    key
}

/// A running ledger with an issuer, a merchant and two members, all as key files.
struct Flow {
    tmp: TempDir,
    data: PathBuf,
    server: Option<ServeChild>,
    issuer: KeyFile,
    merchant: KeyFile,
    a: KeyFile,
    b: KeyFile,
}

impl Flow {
    /// Starts `points serve` on a fresh folder and makes the three keys.
    fn start() -> Flow {
        let tmp = tempfile::Builder::new()
            .prefix("points-cli-")
            .tempdir()
            .expect("temporary folder");
        let data = tmp.path().join("data");
        let server = ServeChild::start(&data, &tmp.path().join("logs"));
        let (stdout, _) = server.output();
        assert!(
            stdout.contains("Created a new ledger"),
            "first run announces the new ledger: {stdout}"
        );
        let issuer_path = data.join("issuer.key");
        let issuer_public = stdout
            .lines()
            .find_map(|l| l.strip_prefix("Issuer public key: "))
            .expect("serve prints the issuer public key")
            .trim()
            .to_string();
        let issuer = KeyFile {
            path: issuer_path,
            public: issuer_public,
        };
        let shown = run_points(&["wallet", "--key", issuer.arg(), "show"]).ok();
        assert_eq!(shown.stdout.trim(), issuer.public);
        let merchant = keygen(tmp.path(), "merchant");
        let a = keygen(tmp.path(), "member-a");
        let b = keygen(tmp.path(), "member-b");
        Flow {
            tmp,
            data,
            server: Some(server),
            issuer,
            merchant,
            a,
            b,
        }
    }

    fn server(&self) -> &ServeChild {
        self.server.as_ref().expect("the server is running")
    }

    fn addr(&self) -> SocketAddr {
        self.server().addr
    }

    /// `points wallet --key KEY --server URL ARGS…`
    fn wallet(&self, key: &KeyFile, args: &[&str]) -> Run {
        let url = self.server().url();
        let mut all = vec!["wallet", "--key", key.arg(), "--server", url.as_str()];
        all.extend_from_slice(args);
        run_points(&all)
    }

    /// A wallet command that must succeed and print JSON.
    fn wallet_json(&self, key: &KeyFile, args: &[&str]) -> Value {
        self.wallet(key, args).ok().json()
    }

    /// Balance of `account` read with `key`.
    fn balance(&self, key: &KeyFile, account: &str) -> u64 {
        let v = self.wallet_json(key, &["balance", account]);
        assert_eq!(v["account"], json!(account));
        v["balance"].as_u64().expect("balance is a number")
    }

    /// Balances of issuer, merchant, A and B, each read with its own key.
    fn balances(&self) -> [u64; 4] {
        [
            self.balance(&self.issuer, &self.issuer.public),
            self.balance(&self.merchant, &self.merchant.public),
            self.balance(&self.a, &self.a.public),
            self.balance(&self.b, &self.b.public),
        ]
    }

    /// Seqs and op types of an account's history, read with its own key.
    fn history(&self, key: &KeyFile) -> Vec<(u64, String)> {
        let page = self.wallet_json(key, &["history"]);
        assert!(page.get("next_after").is_none(), "one page holds it all");
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| {
                (
                    r["seq"].as_u64().expect("seq"),
                    r["op"]["envelope"]["op"]["type"]
                        .as_str()
                        .expect("op type")
                        .to_string(),
                )
            })
            .collect()
    }

    /// `GET /v1/info` over plain HTTP.
    fn info(&self) -> Value {
        info_at(self.addr())
    }

    /// Stops the server with SIGTERM; it must drain and exit 0.
    fn stop(&mut self) {
        let exited = self.server.take().expect("running").terminate();
        assert_eq!(exited.code, Some(0), "graceful stop exits 0: {exited:#?}");
        assert!(exited.stdout.contains("Stopped cleanly."), "{exited:#?}");
    }

    /// Kills the server with SIGKILL (a crash).
    fn crash(&mut self) {
        let exited = self.server.take().expect("running").kill();
        assert_eq!(exited.code, None, "killed by a signal: {exited:#?}");
    }

    /// Starts the server again on the same data folder; it must reopen, not create.
    fn reopen(&mut self) {
        assert!(self.server.is_none());
        let server = ServeChild::start(&self.data, &self.tmp.path().join("logs"));
        let (stdout, _) = server.output();
        assert!(stdout.contains("Opened ledger"), "reopen: {stdout}");
        assert!(
            !stdout.contains("Created"),
            "reopen must not create: {stdout}"
        );
        self.server = Some(server);
    }

    /// Issuer registers the merchant and mints 10000 into its float; the merchant awards
    /// 500 to A; A transfers 120 to B and burns 30.
    fn newcomer_ops(&self) -> Vec<Value> {
        let m = self.merchant.public.as_str();
        vec![
            self.wallet_json(
                &self.issuer,
                &[
                    "register-merchant",
                    "--merchant",
                    m,
                    "--name",
                    "Corner Coffee",
                    "--issue-rate",
                    "1/1",
                    "--redeem-rate",
                    "9/10",
                ],
            ),
            self.wallet_json(
                &self.issuer,
                &[
                    "mint",
                    "--to",
                    m,
                    "--amount",
                    "10000",
                    "--memo",
                    "inv-2024-001",
                ],
            ),
            self.wallet_json(
                &self.merchant,
                &[
                    "earn",
                    "--member",
                    &self.a.public,
                    "--amount",
                    "500",
                    "--reason",
                    "purchase",
                    "--reference",
                    "receipt-0001",
                ],
            ),
            self.wallet_json(
                &self.a,
                &[
                    "transfer",
                    "--to",
                    &self.b.public,
                    "--amount",
                    "120",
                    "--memo",
                    "lunch",
                ],
            ),
            self.wallet_json(&self.a, &["burn", "--amount", "30"]),
        ]
    }
}

fn info_at(addr: SocketAddr) -> Value {
    let (status, body) = http_get(addr, "/v1/info").expect("the server answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("info is JSON")
}

/// The state after the newcomer ops, asserted exactly.
fn assert_newcomer_state(flow: &Flow) {
    // issuer, merchant, A, B
    assert_eq!(flow.balances(), [0, 9500, 350, 120]);
    let info = flow.info();
    assert_eq!(info["size"], json!(6));
    assert_eq!(info["minted"], json!(10000));
    assert_eq!(info["burned"], json!(30));
    assert_eq!(info["supply"], json!(9970));
    assert_eq!(info["issuer"], json!(flow.issuer.public));

    let h = |key: &KeyFile| flow.history(key);
    let s = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
        v.iter().map(|(q, t)| (*q, t.to_string())).collect()
    };
    assert_eq!(
        h(&flow.issuer),
        s(&[(0, "genesis"), (1, "register_merchant"), (2, "mint")])
    );
    assert_eq!(
        h(&flow.merchant),
        s(&[(1, "register_merchant"), (2, "mint"), (3, "earn")])
    );
    assert_eq!(h(&flow.a), s(&[(3, "earn"), (4, "transfer"), (5, "burn")]));
    assert_eq!(h(&flow.b), s(&[(4, "transfer")]));

    // A may not read another account's wallet; the issuer may read any by naming it.
    let run = flow
        .wallet(&flow.a, &["balance", &flow.merchant.public])
        .failed();
    assert!(run.stderr.contains("forbidden"), "{run:#?}");
    let v = flow.wallet_json(&flow.issuer, &["balance", &flow.merchant.public]);
    assert_eq!(v["kind"], json!("merchant"));
    assert_eq!(v["merchant"]["name"], json!("Corner Coffee"));
    assert_eq!(v["merchant"]["status"], json!("active"));
    assert_eq!(
        v["merchant"]["redeem_rate"],
        json!({"minor_units": 9, "per_points": 10})
    );
    let v = flow.wallet_json(&flow.a, &["balance"]);
    assert_eq!(v["kind"], json!("member"));
    assert_eq!(v["balance"], json!(350));
    let v = flow.wallet_json(&flow.issuer, &["balance", &flow.issuer.public]);
    assert_eq!(v["kind"], json!("issuer"));

    // The earn in A's history carries the reason and the reference, as lowercase hex.
    let page = flow.wallet_json(&flow.a, &["history", "--limit", "1"]);
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(page["next_after"], json!(3));
    let earn = &items[0]["op"]["envelope"];
    assert_eq!(earn["signer"], json!(flow.merchant.public));
    assert_eq!(earn["op"]["member"], json!(flow.a.public));
    assert_eq!(earn["op"]["amount"], json!(500));
    assert_eq!(earn["op"]["reason"], json!("purchase"));
    assert_eq!(earn["op"]["reference"], json!(hex::encode("receipt-0001")));
    let rest = flow.wallet_json(&flow.a, &["history", "--after", "3", "--limit", "10"]);
    let seqs: Vec<u64> = rest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![4, 5]);
}

#[test]
fn newcomer_flow_with_the_real_binary() {
    let mut flow = Flow::start();
    let receipts = flow.newcomer_ops();

    // Each receipt is the entry it names, in order, signed by the right key.
    let expected = [
        (1, "register_merchant", &flow.issuer.public),
        (2, "mint", &flow.issuer.public),
        (3, "earn", &flow.merchant.public),
        (4, "transfer", &flow.a.public),
        (5, "burn", &flow.a.public),
    ];
    let chain_id = flow.info()["chain_id"].clone();
    for (r, (seq, kind, signer)) in receipts.iter().zip(expected) {
        assert_eq!(r["seq"], json!(seq), "{r}");
        assert_eq!(r["op"]["envelope"]["op"]["type"], json!(kind), "{r}");
        assert_eq!(r["op"]["envelope"]["signer"], json!(signer), "{r}");
        assert_eq!(r["op"]["envelope"]["chain_id"], chain_id, "{r}");
        assert_eq!(r["entry_hash"].as_str().expect("hash").len(), 64);
        let issuer = Keypair::read_file(&flow.issuer.path).expect("issuer key");
        let chain = chain_id.as_str().expect("chain id");
        let (status, body) = http_get_as(
            flow.addr(),
            &format!("/v1/entries/{seq}"),
            Some((&issuer, chain)),
        )
        .expect("entry");
        assert_eq!(status, 200, "{body}");
        let entry: Value = serde_json::from_str(&body).expect("entry JSON");
        assert_eq!(entry["entry_hash"], r["entry_hash"]);
        assert_eq!(entry["op"], r["op"]);
    }
    assert_eq!(
        receipts[4]["op"]["envelope"]["op"]["from"],
        json!(flow.a.public)
    );
    assert_eq!(
        receipts[4]["op"]["envelope"]["op"]["reason"],
        json!("voluntary")
    );
    assert_newcomer_state(&flow);

    // Graceful restart on the same folder: nothing changes, and the ledger goes on.
    let head = flow.info()["head"].clone();
    flow.stop();
    flow.reopen();
    assert_eq!(flow.info()["head"], head);
    assert_newcomer_state(&flow);
    let r = flow.wallet_json(
        &flow.a,
        &["transfer", "--to", &flow.b.public, "--amount", "50"],
    );
    assert_eq!(r["seq"], json!(6));
    assert_eq!(flow.balances(), [0, 9500, 300, 170]);

    // A crash (SIGKILL) and a reopen: every acknowledged op is still there.
    let before = flow.info();
    flow.crash();
    flow.reopen();
    let after = flow.info();
    for field in [
        "size", "head", "root", "supply", "minted", "burned", "chain_id",
    ] {
        assert_eq!(after[field], before[field], "{field} after a crash");
    }
    assert_eq!(flow.balances(), [0, 9500, 300, 170]);
    flow.stop();
}

#[test]
fn bad_input_gets_a_message_and_a_non_zero_exit() {
    let flow = Flow::start();
    flow.newcomer_ops();
    let info_before = flow.info();
    let balances_before = flow.balances();
    let a = &flow.a;
    let b = flow.b.public.as_str();

    // Refused by the ledger: the problem code is shown.
    let run = flow
        .wallet(a, &["transfer", "--to", b, "--amount", "100000"])
        .failed();
    assert!(run.stderr.contains("insufficient_funds"), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
    let run = flow
        .wallet(a, &["mint", "--to", b, "--amount", "5"])
        .failed();
    assert!(run.stderr.contains("not_authorized"), "{run:#?}");
    let run = flow
        .wallet(a, &["transfer", "--to", &a.public, "--amount", "5"])
        .failed();
    assert!(run.stderr.contains("self_transfer"), "{run:#?}");
    let run = flow
        .wallet(a, &["transfer", "--to", b, "--amount", "0"])
        .failed();
    assert!(run.stderr.contains("zero_amount"), "{run:#?}");
    let run = flow
        .wallet(a, &["burn", "--amount", "1", "--from", b])
        .failed();
    assert!(run.stderr.contains("not_authorized"), "{run:#?}");

    // Refused by the argument parser.
    let run = flow.wallet(a, &["frobnicate"]).failed();
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("frobnicate"), "{run:#?}");
    let run = flow
        .wallet(
            a,
            &["transfer", "--to", b, "--amount", "5", "--colour", "blue"],
        )
        .failed();
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(run.stderr.contains("--colour"), "{run:#?}");
    let run = flow.wallet(a, &["transfer", "--to", b]).failed();
    assert!(run.stderr.contains("--amount"), "{run:#?}");
    for amount in ["-5", "ten", "18446744073709551616"] {
        let run = flow
            .wallet(a, &["transfer", "--to", b, "--amount", amount])
            .failed();
        assert!(run.stderr.contains("--amount"), "{amount}: {run:#?}");
    }
    let run = run_points(&["frobnicate"]).failed();
    assert_eq!(run.code, Some(2), "{run:#?}");

    // Malformed public keys.
    let upper = b.to_ascii_uppercase();
    let short = &b[..63];
    for bad in ["not-a-key", upper.as_str(), short, ""] {
        let run = flow
            .wallet(a, &["transfer", "--to", bad, "--amount", "5"])
            .failed();
        assert!(run.stderr.contains("--to"), "key `{bad}`: {run:#?}");
    }
    let run = flow.wallet(a, &["balance", "zz"]).failed();
    assert!(run.stderr.contains("zz"), "{run:#?}");

    // A key file readable by others is refused before anything is sent.
    let loose = flow.tmp.path().join("loose.key");
    std::fs::copy(&a.path, &loose).expect("copying a key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let loose_key = KeyFile {
        path: loose.clone(),
        public: a.public.clone(),
    };
    for args in [
        &["show"][..],
        &["balance"][..],
        &["transfer", "--to", b, "--amount", "5"][..],
    ] {
        let run = flow.wallet(&loose_key, args).failed();
        assert!(run.stderr.contains("chmod 600"), "{run:#?}");
        assert!(run.stderr.contains("loose.key"), "{run:#?}");
    }

    // A missing key file.
    let missing = KeyFile {
        path: flow.tmp.path().join("nowhere.key"),
        public: String::new(),
    };
    let run = flow.wallet(&missing, &["balance"]).failed();
    assert!(run.stderr.contains("nowhere.key"), "{run:#?}");
    let run = run_points(&["wallet", "show"]).failed();
    assert!(run.stderr.contains("--key"), "{run:#?}");

    // A file that is not a key file.
    let junk = flow.tmp.path().join("junk.key");
    std::fs::write(&junk, "hello\n").expect("writing junk");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let junk_key = KeyFile {
        path: junk,
        public: String::new(),
    };
    let run = flow.wallet(&junk_key, &["show"]).failed();
    assert!(run.stderr.contains("malformed"), "{run:#?}");

    // keygen never overwrites.
    let run = run_points(&["keygen", "--out", a.arg()]).failed();
    assert!(run.stderr.contains("refusing to overwrite"), "{run:#?}");
    assert_eq!(
        run_points(&["wallet", "--key", a.arg(), "show"])
            .ok()
            .stdout
            .trim(),
        a.public
    );

    // No server there: port 1 (tcpmux) has no listener on a test machine, and no test
    // server can take it.
    let nobody = "http://127.0.0.1:1".to_string();
    let run = run_points(&["wallet", "--key", a.arg(), "--server", &nobody, "balance"]).failed();
    assert!(run.stderr.contains("cannot reach"), "{run:#?}");

    // None of this changed the ledger.
    let info_after = flow.info();
    for field in ["size", "head", "root", "supply", "minted", "burned"] {
        assert_eq!(info_after[field], info_before[field], "{field}");
    }
    assert_eq!(flow.balances(), balances_before);
}

#[test]
fn a_second_server_on_the_same_folder_is_refused_and_the_first_keeps_serving() {
    let flow = Flow::start();
    flow.newcomer_ops();
    let before = flow.info();

    // Port 0: the second server must refuse the folder before it binds anything.
    let listen = "127.0.0.1:0".to_string();
    let data = flow.data.to_str().expect("UTF-8 path");
    let run = run_points(&["serve", "--data", data, "--listen", &listen]).failed();
    assert!(run.stderr.contains("in use"), "{run:#?}");
    assert!(
        !run.stdout.contains("Listening"),
        "the second server must not listen: {run:#?}"
    );

    // The first server was not disturbed: it reads and it writes.
    let (status, _) = http_get(flow.addr(), "/healthz").expect("first server answers");
    assert_eq!(status, 200);
    let after = flow.info();
    for field in ["size", "head", "supply"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(flow.balances(), [0, 9500, 350, 120]);
    let r = flow.wallet_json(
        &flow.b,
        &["transfer", "--to", &flow.a.public, "--amount", "20"],
    );
    assert_eq!(r["seq"], json!(6));
    assert_eq!(flow.balances(), [0, 9500, 370, 100]);
    let mut flow = flow;
    assert!(flow.server.as_mut().expect("running").is_running());
    flow.stop();
}

#[test]
fn serve_refuses_an_invalid_chain_id_and_a_bad_listen_address() {
    let tmp = tempfile::tempdir().expect("temporary folder");
    let data = tmp.path().join("data");
    let data = data.to_str().expect("UTF-8 path");
    let listen = "127.0.0.1:0".to_string();
    let run = run_points(&[
        "serve",
        "--data",
        data,
        "--listen",
        &listen,
        "--chain-id",
        "Not Valid!",
    ])
    .failed();
    assert!(run.stderr.contains("chain id"), "{run:#?}");
    let run = run_points(&["serve", "--data", data, "--listen", "nowhere"]).failed();
    assert!(run.stderr.contains("--listen"), "{run:#?}");
}

/// `--op-id` is documented as "for retrying an op exactly once", so running the same
/// command twice with the same op id must land the op once and print the same receipt.
#[test]
fn retrying_a_cli_op_with_the_same_op_id_lands_it_once() {
    let flow = Flow::start();
    flow.newcomer_ops();
    let args = [
        "--op-id",
        "4242",
        "transfer",
        "--to",
        flow.b.public.as_str(),
        "--amount",
        "10",
    ];
    let first = flow.wallet_json(&flow.a, &args);
    let again = flow.wallet(&flow.a, &args);
    assert_eq!(again.code, Some(0), "the retry must succeed: {again:#?}");
    assert_eq!(again.json(), first);
    assert_eq!(flow.balances(), [0, 9500, 340, 130]);
}
