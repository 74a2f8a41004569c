//! Corruption on start: a damaged log is never served as if it were sound.
//!
//! Each test builds a small ledger with the real `points serve`, stops it, damages one
//! stored entry through the store's test hooks (`Store::raw_put_entry`,
//! `Store::raw_remove_entry`), and checks what an operator would see:
//!
//! - within the last 64 applied entries (the tail re-checked on every open), `points serve`
//!   refuses to start and names the damaged seq;
//! - anywhere in the log, `points audit --data DIR` fails and names it.
//!
//! An older entry is not re-hashed on start (that would make every start O(log size)); for
//! it, the test pins down that the service starts and that both the offline audit and the
//! live audit (`points audit --server URL --key ISSUER_KEY`) catch the damage.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use points_ledger::client::{self, DEFAULT_TTL_MS};
use points_ledger::codec;
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::server::{ISSUER_KEY_FILE, LEDGER_DIR};
use points_ledger::store::{Store, StoreConfig};
use tempfile::TempDir;

/// Earn ops in the fixture ledger: enough for the log to reach well past the 64-entry tail.
const EARNS: usize = 160;

/// A stopped ledger of a little over `EARNS` entries.
struct Fixture {
    _tmp: TempDir,
    data: PathBuf,
    logs: PathBuf,
    entries: u64,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::Builder::new()
        .prefix("points-corrupt-")
        .tempdir()
        .expect("temporary folder");
    let data = tmp.path().join("data");
    let logs = tmp.path().join("logs");
    let server = ServeChild::start(&data, &logs);
    let client = client_no_retry(&server.url());
    let chain_id = client.info().await.expect("GET /v1/info").chain_id;
    let issuer = Keypair::read_file(&data.join(ISSUER_KEY_FILE)).expect("issuer key");
    let merchant = Keypair::generate();
    let members = keys(8);
    let sign = |key: &Keypair, op: Op| {
        client::sign_op(
            key,
            &chain_id,
            client::random_op_id(),
            client::now_ms() + DEFAULT_TTL_MS,
            op,
        )
    };
    for op in [
        register_merchant_op(id(&merchant), "Corner Shop"),
        mint_op(id(&merchant), 1_000_000),
    ] {
        client.submit(&sign(&issuer, op)).await.expect("setup op");
    }
    for chunk in (0..EARNS).collect::<Vec<_>>().chunks(40) {
        let batch: Vec<SignedOp> = chunk
            .iter()
            .map(|i| {
                sign(
                    &merchant,
                    earn_op(id(&members[i % members.len()]), 1 + *i as u64, "r"),
                )
            })
            .collect();
        for item in client.submit_batch(&batch).await.expect("batch") {
            assert_eq!(item.status, "applied", "{item:?}");
        }
    }
    let entries = client.info().await.expect("GET /v1/info").size;
    let exited = server.terminate();
    assert_eq!(exited.code, Some(0), "{exited:#?}");
    run_points(&["audit", "--data", path_str(&data)]).ok();
    Fixture {
        _tmp: tmp,
        data,
        logs,
        entries,
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Opens the stopped ledger's store and hands entry `seq` to `damage`, which returns the
/// bytes to store instead (`None` deletes the entry).
fn damage(data: &Path, seq: u64, damage: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>) {
    let store = Store::open(&data.join(LEDGER_DIR), &StoreConfig::default()).expect("open");
    let bytes = store
        .entry_bytes(seq)
        .expect("read")
        .expect("the entry exists")
        .to_vec();
    match damage(bytes) {
        Some(b) => store.raw_put_entry(seq, &b).expect("overwrite"),
        None => store.raw_remove_entry(seq).expect("remove"),
    }
}

/// Re-encodes entry bytes after changing the decoded entry.
fn edit(bytes: Vec<u8>, change: impl FnOnce(&mut Entry)) -> Option<Vec<u8>> {
    let mut entry = codec::decode_entry(&bytes).expect("a sound entry");
    change(&mut entry);
    Some(codec::encode_entry(&entry))
}

/// Whether `text` names `seq` as `seq N` or `entry N` (not as a prefix of a longer number).
fn names_seq(text: &str, seq: u64) -> bool {
    ["seq ", "entry "].iter().any(|word| {
        let needle = format!("{word}{seq}");
        text.match_indices(&needle).any(|(at, _)| {
            !text[at + needle.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
    })
}

/// `points serve` must exit with an error naming `seq`.
fn serve_refuses(fx: &Fixture, seq: u64) {
    let run = run_points(&[
        "serve",
        "--data",
        path_str(&fx.data),
        "--listen",
        "127.0.0.1:0",
    ])
    .failed();
    assert!(
        run.stderr.contains("the log is corrupt") && names_seq(&run.stderr, seq),
        "serve must refuse naming seq {seq}: {run:#?}"
    );
}

/// `points audit --data` must fail naming `seq`.
fn audit_fails(fx: &Fixture, seq: u64) {
    let run = run_points(&["audit", "--data", path_str(&fx.data)]).failed();
    assert!(
        names_seq(&run.stderr, seq),
        "the audit must name entry {seq}: {run:#?}"
    );
}

fn change_amount(entry: &mut Entry) {
    match &mut entry.signed_op.envelope.op {
        Op::Earn(e) => e.amount.0 += 1,
        other => panic!("expected an earn, found {other:?}"),
    }
}

#[test]
fn names_seq_matches_whole_numbers_only() {
    assert!(names_seq("the log is corrupt at seq 12: x", 12));
    assert!(names_seq("entry 7", 7));
    assert!(!names_seq("entry 123", 12));
    assert!(!names_seq("seq 1", 12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_amount_in_the_tail_stops_serve_and_fails_the_audit() {
    let fx = fixture().await;
    let seq = fx.entries - 10;
    damage(&fx.data, seq, |b| edit(b, change_amount));
    serve_refuses(&fx, seq);
    audit_fails(&fx, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_last_entry_stops_serve_and_fails_the_audit() {
    let fx = fixture().await;
    let seq = fx.entries - 1;
    damage(&fx.data, seq, |mut b| {
        b.truncate(b.len() - 3);
        Some(b)
    });
    serve_refuses(&fx, seq);
    audit_fails(&fx, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_timestamp_is_named_although_the_signature_still_holds() {
    // The timestamp is the sequencer's, outside the signed envelope: only the hash chain
    // shows the change. Walking back from the recorded head, serve names the entry itself.
    // A forward audit sees entry seq+1 no longer link to it, and says so naming both.
    let fx = fixture().await;
    let seq = fx.entries - 30;
    damage(&fx.data, seq, |b| edit(b, |e| e.timestamp_ms += 1));
    serve_refuses(&fx, seq);
    audit_fails(&fx, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_entry_stops_serve_and_fails_the_audit() {
    let fx = fixture().await;
    let seq = fx.entries - 5;
    damage(&fx.data, seq, |_| None);
    serve_refuses(&fx, seq);
    audit_fails(&fx, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_older_than_the_tail_is_caught_by_both_audits() {
    // Documented limitation: start re-checks only the last 64 entries, so serve starts.
    let fx = fixture().await;
    let seq = 5;
    assert!(fx.entries > seq + 64 + 1);
    damage(&fx.data, seq, |b| edit(b, change_amount));
    let server = ServeChild::start(&fx.data, &fx.logs);
    let key = fx.data.join(ISSUER_KEY_FILE);
    let live = run_points(&["audit", "--server", &server.url(), "--key", path_str(&key)]).failed();
    assert!(
        names_seq(&live.stderr, seq),
        "the live audit must name entry {seq}: {live:#?}"
    );
    let exited = server.terminate();
    assert_eq!(exited.code, Some(0), "{exited:#?}");
    audit_fails(&fx, seq);
}
