//! Many clients at once against one in-process server: racing spenders of one balance (one
//! op per request and in batches), and a shutdown while ops are in flight followed by a
//! reopen of the same data folder.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use points_ledger::api::dto::EntryView;
use points_ledger::client::ClientError;
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::store::Receipt;
use tokio::sync::{Barrier, Notify};

/// Concurrent clients in every race.
const CLIENTS: usize = 48;

/// A ledger with a merchant holding a large float.
async fn ledger_with_merchant() -> (TestServer, Keypair) {
    let srv = TestServer::start().await;
    let merchant = Keypair::generate();
    srv.register_merchant(&merchant, "Racing Retail").await;
    srv.mint(&id(&merchant), 10_000_000).await;
    (srv, merchant)
}

/// Checks Σ balances over `accounts` = supply = minted − burned, and that no other account
/// holds points (every account in the log is among `accounts`).
async fn assert_books_balance(srv: &TestServer, accounts: &[AccountId]) {
    let info = srv.info().await;
    let balances = srv.balances(accounts).await;
    let sum: u64 = balances.iter().sum();
    assert_eq!(sum, info.supply, "Σ balances = supply");
    assert_eq!(info.minted - info.burned, info.supply);

    let known: BTreeSet<AccountId> = accounts.iter().copied().collect();
    let mut after = None;
    loop {
        let page = srv.client.entries(after, 1000).await.expect("entries");
        for e in &page.items {
            for who in touched(e) {
                assert!(
                    known.contains(&who),
                    "entry {} touches an unexpected account",
                    e.seq
                );
            }
        }
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
}

/// Accounts whose balance an entry of the kinds used here can change.
fn touched(e: &EntryView) -> Vec<AccountId> {
    let env = &e.op.envelope;
    let mut out = vec![env.signer];
    match &env.op {
        Op::Transfer(t) => out.push(t.to),
        Op::Earn(x) => out.push(x.member),
        Op::Mint(m) => out.push(m.to),
        Op::Burn(b) => out.push(b.from),
        Op::RegisterMerchant(r) => out.push(r.merchant),
        _ => {}
    }
    out
}

/// `CLIENTS` tasks, each with its own HTTP client, submit one pre-signed op each at the same
/// moment. Results in task order.
async fn race(srv: &TestServer, ops: Vec<SignedOp>) -> Vec<Result<Receipt, ClientError>> {
    let barrier = Arc::new(Barrier::new(ops.len()));
    let url = srv.url();
    let mut tasks = Vec::new();
    for op in ops {
        let barrier = barrier.clone();
        let client = client_no_retry(&url);
        tasks.push(tokio::spawn(async move {
            // Warm the connection so the race is about the ledger, not about connecting.
            client.health().await.expect("healthz");
            barrier.wait().await;
            client.submit(&op).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_spenders_of_one_balance_only_k_succeed() {
    let (srv, merchant) = ledger_with_merchant().await;
    let mut accounts = vec![srv.issuer_id(), id(&merchant)];
    // (balance, amount per spend): k = balance / amount of the 48 spends can land.
    for (balance, amount) in [(1000u64, 75u64), (100, 3), (47, 1), (10, 11), (4800, 100)] {
        let k = (balance / amount).min(CLIENTS as u64) as usize;
        let member = Keypair::generate();
        srv.ok(&merchant, earn_op(id(&member), balance, "top-up"))
            .await;
        let recipients = keys(CLIENTS);
        accounts.push(id(&member));
        accounts.extend(recipients.iter().map(id));
        let ops: Vec<SignedOp> = recipients
            .iter()
            .map(|r| srv.sign(&member, transfer_op(id(r), amount)))
            .collect();
        let before = srv.info().await;

        let results = race(&srv, ops.clone()).await;

        let mut seqs = BTreeSet::new();
        let mut landed = 0;
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(receipt) => {
                    landed += 1;
                    assert_eq!(receipt.signed_op, ops[i]);
                    assert!(seqs.insert(receipt.seq), "seq {} given twice", receipt.seq);
                    assert_eq!(srv.balance(&id(&recipients[i])).await, amount);
                }
                Err(e) => {
                    assert_eq!(e.code(), Some("insufficient_funds"), "spend {i}: {e}");
                    assert_eq!(srv.balance(&id(&recipients[i])).await, 0);
                }
            }
        }
        assert_eq!(landed, k, "balance {balance}, spends of {amount}");
        let after = srv.info().await;
        assert_eq!(after.size, before.size + k as u64);
        assert_eq!(
            seqs.into_iter().collect::<Vec<_>>(),
            (before.size..after.size).collect::<Vec<_>>(),
            "the accepted spends are exactly the new entries"
        );
        assert_eq!(after.supply, before.supply);
        assert_eq!(srv.balance(&id(&member)).await, balance - k as u64 * amount);
        // The member's history: the top-up and exactly the spends that landed.
        let history = srv.full_history(&id(&member), 10).await;
        assert_eq!(history.len(), 1 + k);
    }
    assert_books_balance(&srv, &accounts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_batches_of_one_balance_only_k_succeed() {
    let (srv, merchant) = ledger_with_merchant().await;
    let member = Keypair::generate();
    let balance = 1000;
    let amount = 25;
    let per_batch = 4;
    let k = (balance / amount) as usize; // 40 of the 48 × 4 spends
    srv.ok(&merchant, earn_op(id(&member), balance, "top-up"))
        .await;
    let recipients = keys(CLIENTS);
    let mut accounts = vec![srv.issuer_id(), id(&merchant), id(&member)];
    accounts.extend(recipients.iter().map(id));
    let before = srv.info().await;
    let merchant_before = srv.balance(&id(&merchant)).await;

    // Each batch: 4 spends from the contended member, then an earn from the merchant that
    // must land whatever happened to the spends before it.
    let batches: Vec<Vec<SignedOp>> = recipients
        .iter()
        .map(|r| {
            let mut ops: Vec<SignedOp> = (0..per_batch)
                .map(|_| srv.sign(&member, transfer_op(id(r), amount)))
                .collect();
            ops.push(srv.sign(&merchant, earn_op(id(r), 1, "bonus")));
            ops
        })
        .collect();
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for ops in batches.clone() {
        let barrier = barrier.clone();
        let client = client_no_retry(&srv.url());
        tasks.push(tokio::spawn(async move {
            client.health().await.expect("healthz");
            barrier.wait().await;
            client.submit_batch(&ops).await
        }));
    }
    let mut spent = 0;
    let mut per_recipient = Vec::new();
    let mut seqs = BTreeSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let results = t.await.expect("task").expect("the batch is answered");
        assert_eq!(results.len(), per_batch + 1);
        let mut landed_here = 0;
        for (j, item) in results.iter().enumerate() {
            if item.status == "applied" {
                let r = item.receipt.as_ref().expect("receipt");
                assert_eq!(r.signed_op, batches[i][j]);
                assert!(seqs.insert(r.seq), "seq {} given twice", r.seq);
                if j < per_batch {
                    landed_here += 1;
                }
            } else {
                assert_eq!(item.status, "rejected");
                assert!(j < per_batch, "the merchant's earn always lands: {item:?}");
                let code = item.problem.as_ref().map(|p| p.code.as_str());
                assert_eq!(code, Some("insufficient_funds"), "{item:?}");
            }
        }
        spent += landed_here;
        per_recipient.push(landed_here);
    }
    assert_eq!(spent, k);
    let after = srv.info().await;
    assert_eq!(after.size, before.size + (k + CLIENTS) as u64);
    assert_eq!(
        seqs.into_iter().collect::<Vec<_>>(),
        (before.size..after.size).collect::<Vec<_>>()
    );
    for (r, n) in recipients.iter().zip(per_recipient) {
        assert_eq!(srv.balance(&id(r)).await, n as u64 * amount + 1);
    }
    assert_eq!(srv.balance(&id(&member)).await, 0);
    assert_eq!(
        srv.balance(&id(&merchant)).await,
        merchant_before - CLIENTS as u64
    );
    assert_books_balance(&srv, &accounts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_op_survives_a_shutdown_in_flight() {
    const WRITERS: usize = 32;
    const BEFORE_SHUTDOWN: usize = 200;
    let mut srv = TestServer::start().await;
    let holders = keys(8);
    let url = srv.url();
    let acked = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());

    // Writers mint 1 point at a time into the holders, as fast as they can, until the server
    // stops answering; each keeps the receipts it got.
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = client_no_retry(&url);
        let issuer = Keypair::from_seed(srv.issuer.seed());
        let chain_id = srv.chain_id.clone();
        let to = id(&holders[w % holders.len()]);
        let (acked, finished, progress) = (acked.clone(), finished.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            let failure = loop {
                let op = points_ledger::client::sign_op(
                    &issuer,
                    &chain_id,
                    points_ledger::client::random_op_id(),
                    points_ledger::client::now_ms() + points_ledger::client::DEFAULT_TTL_MS,
                    mint_op(to, 1),
                );
                match client.submit(&op).await {
                    Ok(r) => {
                        assert_eq!(r.signed_op, op);
                        receipts.push(r);
                        acked.fetch_add(1, Ordering::SeqCst);
                        progress.notify_one();
                    }
                    Err(e) => break e,
                }
            };
            finished.fetch_add(1, Ordering::SeqCst);
            progress.notify_one();
            (receipts, failure)
        }));
    }
    while acked.load(Ordering::SeqCst) < BEFORE_SHUTDOWN
        && finished.load(Ordering::SeqCst) < WRITERS
    {
        progress.notified().await;
    }
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "no writer may fail before the shutdown"
    );
    srv.shutdown().await;

    let mut receipts = Vec::new();
    for t in tasks {
        let (mine, failure) = t.await.expect("writer task");
        // After the shutdown a writer sees the connection go away, or a 503; never a
        // rejection or a server error.
        match &failure {
            ClientError::Transport(_) => {}
            ClientError::Problem(p) => assert_eq!(p.status, 503, "{p:?}"),
            other => panic!("unexpected failure after shutdown: {other}"),
        }
        receipts.extend(mine);
    }
    assert!(receipts.len() >= BEFORE_SHUTDOWN);

    srv.restart().await;
    let info = srv.info().await;
    let by_seq: BTreeMap<u64, &Receipt> = receipts.iter().map(|r| (r.seq, r)).collect();
    assert_eq!(
        by_seq.len(),
        receipts.len(),
        "every receipt has its own seq"
    );
    let max_seq = *by_seq.keys().last().expect("receipts");
    assert!(
        info.size > max_seq,
        "size {} but seq {max_seq} was acknowledged",
        info.size
    );

    // Every acknowledged op is in the reopened log, at its seq, with its hash.
    let mut after = None;
    let mut entries = Vec::new();
    loop {
        let page = srv.client.entries(after, 1000).await.expect("entries");
        entries.extend(page.items);
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(entries.len() as u64, info.size);
    for w in entries.windows(2) {
        assert_eq!(
            w[1].prev_hash, w[0].entry_hash,
            "the chain links at {}",
            w[1].seq
        );
    }
    for r in &receipts {
        let e = &entries[r.seq as usize];
        assert_eq!(e.seq, r.seq);
        assert_eq!(e.entry_hash, r.entry_hash, "entry {}", r.seq);
        assert_eq!(e.timestamp_ms, r.timestamp_ms);
        assert_eq!(e.op, r.signed_op);
    }
    // Resubmitting an acknowledged op after the reopen gives back its original receipt.
    for r in receipts.iter().step_by(17) {
        let again = srv
            .client
            .submit(&r.signed_op)
            .await
            .expect("idempotent retry");
        assert_eq!(&again, r);
    }
    assert_eq!(srv.info().await.size, info.size);

    // Every mint in the log is 1 point: supply = mints, and the holders hold all of it.
    let mints = entries
        .iter()
        .filter(|e| matches!(e.op.envelope.op, Op::Mint(_)))
        .count() as u64;
    assert!(mints >= receipts.len() as u64);
    assert_eq!(info.supply, mints);
    let mut accounts = vec![srv.issuer_id()];
    accounts.extend(holders.iter().map(id));
    assert_books_balance(&srv, &accounts).await;

    // And the reopened ledger takes new ops.
    srv.mint(&id(&holders[0]), 5).await;
    eprintln!(
        "shutdown in flight: {} acknowledged, {} in the log, restart waited for the folder: {}",
        receipts.len(),
        mints,
        srv.restart_waits
    );
}
