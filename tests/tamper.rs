//! Tamper tests: build a real ledger, corrupt it in each way an attacker or a failing disk
//! could, and show that the auditor and the member verifier catch every one.

use std::path::Path;

use points_ledger::audit::{self, AuditFailure};
use points_ledger::chain;
use points_ledger::checkpoint::Checkpoint;
use points_ledger::client::{random_op_id, sign_op, Client, DEFAULT_TTL_MS};
use points_ledger::codec;
use points_ledger::crypto::Keypair;
use points_ledger::export::{self, Frame};
use points_ledger::op::*;
use points_ledger::server::{self, ServeConfig};
use points_ledger::store::{Store, StoreConfig};
use points_ledger::verify::{self, TrustState, VerifyError};

struct Ledger {
    dir: tempfile::TempDir,
    issuer: Keypair,
    merchant: Keypair,
    members: Vec<Keypair>,
}

async fn submit(client: &Client, chain: &str, key: &Keypair, op: Op) {
    let signed = sign_op(
        key,
        chain,
        random_op_id(),
        points_ledger::client::now_ms() + DEFAULT_TTL_MS,
        op,
    );
    client.submit(&signed).await.expect("op accepted");
}

fn config(dir: &Path) -> ServeConfig {
    let mut c = ServeConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.chain_id = Some("points.test/tamper".into());
    c
}

/// A ledger with a merchant, three members and some history; the server is stopped.
async fn build() -> Ledger {
    let dir = tempfile::tempdir().unwrap();
    let running = server::start(config(dir.path())).await.unwrap();
    let client = Client::new(&running.url());
    let chain = running.chain_id.clone();
    let issuer = Keypair::read_file(&dir.path().join(server::ISSUER_KEY_FILE)).unwrap();
    let merchant = Keypair::from_seed([30; 32]);
    let members: Vec<Keypair> = (0..3).map(|i| Keypair::from_seed([40 + i; 32])).collect();
    let m = AccountId(merchant.public_key());
    submit(
        &client,
        &chain,
        &issuer,
        Op::RegisterMerchant(RegisterMerchant {
            merchant: m,
            name: "Shop".into(),
            issue_rate: Rate {
                minor_units: 1,
                per_points: 1,
            },
            redeem_rate: Rate {
                minor_units: 1,
                per_points: 1,
            },
        }),
    )
    .await;
    submit(
        &client,
        &chain,
        &issuer,
        Op::Mint(Mint {
            to: m,
            amount: Points(10_000),
            memo: Bytes::default(),
            expires_at_ms: None,
        }),
    )
    .await;
    for (i, member) in members.iter().enumerate() {
        submit(
            &client,
            &chain,
            &merchant,
            Op::Earn(Earn {
                member: AccountId(member.public_key()),
                amount: Points(100 * (i as u64 + 1)),
                reason: EarnReason::Purchase,
                reference: Bytes(format!("r{i}").into_bytes()),
                expires_at_ms: None,
                pending: None,
            }),
        )
        .await;
        // A checkpoint after every earn, so checkpoints of several sizes exist.
        let _: serde_json::Value = client.post_empty("/v1/checkpoint").await.unwrap();
    }
    submit(
        &client,
        &chain,
        &members[0],
        Op::Transfer(Transfer {
            to: AccountId(members[1].public_key()),
            amount: Points(50),
            memo: Bytes::default(),
        }),
    )
    .await;
    let _: serde_json::Value = client.post_empty("/v1/checkpoint").await.unwrap();
    running.shutdown().await.unwrap();
    Ledger {
        dir,
        issuer,
        merchant,
        members,
    }
}

fn export_bytes(data: &Path) -> Vec<u8> {
    let store = Store::open(&data.join(server::LEDGER_DIR), &StoreConfig::default()).unwrap();
    let mut out = Vec::new();
    audit::export_store(&store, &mut out).unwrap();
    out
}

fn frames(bytes: &[u8]) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut r = export::Reader::new(bytes).unwrap();
    let (mut cps, mut entries) = (Vec::new(), Vec::new());
    while let Some(f) = r.next_frame().unwrap() {
        match f {
            Frame::Checkpoint(n) => cps.push(n),
            Frame::Entry(e) => entries.push(e),
        }
    }
    (cps, entries)
}

fn rebuild(cps: &[String], entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    export::write_header(&mut out).unwrap();
    for c in cps {
        export::write_frame(&mut out, &Frame::Checkpoint(c.clone())).unwrap();
    }
    for e in entries {
        export::write_frame(&mut out, &Frame::Entry(e.clone())).unwrap();
    }
    export::write_end(&mut out).unwrap();
    out
}

fn audit_err(bytes: &[u8]) -> audit::AuditError {
    match audit::audit_export(bytes, 4, |_| {}) {
        Err(audit::AuditExportError::Audit(e)) => e,
        Err(other) => panic!("expected an audit failure, got {other}"),
        Ok(r) => panic!("tampered ledger passed the audit: {r:?}"),
    }
}

/// Re-links entries from `from` on, as an attacker who rewrites the tail would.
fn relink(entries: &mut [Vec<u8>], from: usize) {
    for i in from.max(1)..entries.len() {
        let prev = chain::entry_hash(&entries[i - 1]);
        let mut e = codec::decode_entry(&entries[i]).unwrap();
        e.prev_hash = prev;
        entries[i] = codec::encode_entry(&e);
    }
}

#[tokio::test]
async fn the_untouched_ledger_passes() {
    let l = build().await;
    let report = audit::audit_export(export_bytes(l.dir.path()).as_slice(), 3, |_| {}).unwrap();
    assert_eq!(report.entries, 7);
    assert_eq!(report.supply, 10_000);
    assert!(report.checkpoints_verified >= 4);
    let _ = (&l.issuer, &l.merchant, &l.members);
}

#[tokio::test]
async fn every_tampering_is_caught_with_its_seq() {
    let l = build().await;
    let (cps, entries) = frames(&export_bytes(l.dir.path()));

    // 1. A flipped byte inside entry 4's signed op: its signature fails at seq 4.
    let mut e = entries.clone();
    let n = e[4].len();
    e[4][n - 70] ^= 0x01;
    let err = audit_err(&rebuild(&cps, &e));
    assert_eq!(err.seq, Some(4), "{err}");

    // 2. A flipped bit in entry 4's timestamp (not signed): its hash no longer matches the
    // head signed in the checkpoint of size 5; without checkpoints, entry 5 no longer links.
    let mut e = entries.clone();
    let mut entry = codec::decode_entry(&e[4]).unwrap();
    entry.timestamp_ms ^= 1;
    e[4] = codec::encode_entry(&entry);
    let err = audit_err(&rebuild(&cps, &e));
    assert_eq!(err.seq, Some(4), "{err}");
    assert!(
        matches!(err.failure, AuditFailure::CheckpointHead { size: 5 }),
        "{err}"
    );
    let err = audit_err(&rebuild(&[], &e));
    assert_eq!(err.seq, Some(5), "{err}");
    assert!(matches!(err.failure, AuditFailure::Link(_)), "{err}");

    // 3. A dropped entry: a gap at its seq.
    let mut e = entries.clone();
    e.remove(3);
    let err = audit_err(&rebuild(&cps, &e));
    assert_eq!(err.seq, Some(3), "{err}");

    // 4. Two entries swapped.
    let mut e = entries.clone();
    e.swap(3, 4);
    let err = audit_err(&rebuild(&cps, &e));
    assert_eq!(err.seq, Some(3), "{err}");

    // 5. An amount changed and the whole chain re-hashed after it: the signature gives it away.
    let mut e = entries.clone();
    let mut entry = codec::decode_entry(&e[3]).unwrap();
    if let Op::Earn(earn) = &mut entry.signed_op.envelope.op {
        earn.amount = Points(9_000);
    } else {
        panic!("entry 3 is an earn");
    }
    e[3] = codec::encode_entry(&entry);
    relink(&mut e, 4);
    let err = audit_err(&rebuild(&cps, &e));
    assert_eq!(err.seq, Some(3), "{err}");
    assert_eq!(err.failure, AuditFailure::BadSignature);

    // 6. The same rewrite without the checkpoints (the attacker drops them): still caught.
    let err = audit_err(&rebuild(&[], &e));
    assert_eq!(err.seq, Some(3), "{err}");

    // 7. Dropping the tail but keeping the checkpoints: entries are missing.
    let e = entries[..5].to_vec();
    let err = audit_err(&rebuild(&cps, &e));
    assert!(
        matches!(err.failure, AuditFailure::CheckpointBeyondLog { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn forged_and_forked_checkpoints_are_caught() {
    let l = build().await;
    let (cps, entries) = frames(&export_bytes(l.dir.path()));
    let origin = "points.test/tamper";
    let last = cps.last().unwrap().clone();
    let body = last.split("\n\n").next().unwrap().to_string() + "\n";
    let cp = Checkpoint::parse_body(&body).unwrap();

    // Re-signed with another key (same name): refused.
    let mallory = Keypair::from_seed([66; 32]);
    let forged = cp.sign(origin, &mallory);
    let mut c = cps.clone();
    *c.last_mut().unwrap() = forged;
    let err = audit_err(&rebuild(&c, &entries));
    assert!(
        matches!(err.failure, AuditFailure::CheckpointSignature { .. }),
        "{err}"
    );

    // A fork: a second checkpoint of the same size with another root, signed by the real
    // log key (a misbehaving operator). The auditor recomputes the root and refuses it.
    let log_key = Keypair::read_file(&l.dir.path().join(server::LOG_KEY_FILE)).unwrap();
    let mut fork = cp.clone();
    fork.root[0] ^= 0xff;
    let mut c = cps.clone();
    c.push(fork.sign(origin, &log_key));
    let err = audit_err(&rebuild(&c, &entries));
    assert!(
        matches!(err.failure, AuditFailure::CheckpointRoot { .. }),
        "{err}"
    );

    // The member verifier refuses the forked checkpoint against the one it saw.
    let seen = TrustState {
        chain_id: origin.into(),
        checkpoint_verifier: String::new(),
        size: cp.size,
        root: Hash32(cp.root),
    };
    assert!(matches!(
        verify::check_consistency(&seen, &fork, None),
        Err(VerifyError::Inconsistent { .. })
    ));
    // And a rollback to an older checkpoint.
    let older_body = cps[0].split("\n\n").next().unwrap().to_string() + "\n";
    let older = Checkpoint::parse_body(&older_body).unwrap();
    assert!(matches!(
        verify::check_consistency(&seen, &older, None),
        Err(VerifyError::Rollback { .. })
    ));
}

/// A real fork: two servers continue the same ledger (same keys) in different ways. A member
/// who verified on one is told loudly when the other shows a different history.
#[tokio::test]
async fn member_verifier_catches_a_rewritten_history() {
    let l = build().await;
    let fork_dir = tempfile::tempdir().unwrap();
    copy_dir(l.dir.path(), fork_dir.path());

    let member = &l.members[0];
    let me = AccountId(member.public_key());

    // Honest server: one more earn for the member; the member verifies and keeps the state.
    let honest = server::start(config(l.dir.path())).await.unwrap();
    let client = Client::new(&honest.url()).with_key(member.clone());
    submit(
        &client,
        &honest.chain_id,
        &l.merchant,
        Op::Earn(Earn {
            member: me,
            amount: Points(7),
            reason: EarnReason::Task,
            reference: Bytes::default(),
            expires_at_ms: None,
            pending: None,
        }),
    )
    .await;
    let (report, trust) = verify::verify_wallet(&client, &me, None).await.unwrap();
    assert!(report.pinned_now);
    assert_eq!(report.balance, 100 - 50 + 7);
    honest.shutdown().await.unwrap();

    // Forked server: same keys, same start, a different op at the same position.
    let forked = server::start(config(fork_dir.path())).await.unwrap();
    let client = Client::new(&forked.url()).with_key(member.clone());
    submit(
        &client,
        &forked.chain_id,
        &l.merchant,
        Op::Earn(Earn {
            member: AccountId(l.members[2].public_key()),
            amount: Points(7),
            reason: EarnReason::Task,
            reference: Bytes::default(),
            expires_at_ms: None,
            pending: None,
        }),
    )
    .await;
    let err = verify::verify_wallet(&client, &me, Some(trust.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Inconsistent { .. }), "{err}");

    // Even after the fork grows past the size the member saw, the consistency proof fails.
    submit(
        &client,
        &forked.chain_id,
        &l.issuer,
        Op::Mint(Mint {
            to: AccountId(l.merchant.public_key()),
            amount: Points(1),
            memo: Bytes::default(),
            expires_at_ms: None,
        }),
    )
    .await;
    let err = verify::verify_wallet(&client, &me, Some(trust))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Inconsistent { .. }), "{err}");
    forked.shutdown().await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
