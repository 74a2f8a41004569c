//! End-to-end tests of the loyalty program (`ledger-spec/loyalty.md`) on a real server, as a
//! member, a merchant, the issuer and an auditor would use it: an expiring lot burned by
//! Expire, a pending award released after its window, reversals after returns (pending, and
//! released then partly spent), a tier upgrade and a downgrade as old growth leaves the
//! window, restart and reindex reproducing everything, and the `earn-batch` CLI. Every
//! resulting ledger is accepted by the auditor, and members' own verification passes.

mod common;

use std::time::Duration;

use common::*;
use points_ledger::api::dto::Page;
use points_ledger::audit;
use points_ledger::client::{now_ms, Client};
use points_ledger::crypto::Keypair;
use points_ledger::loyalty::{EarnRecord, EarnStatus, LotsView, TierConfig, TierStatus};
use points_ledger::op::*;
use points_ledger::settlement::Statement;
use serde_json::Value;

fn earn(
    member: AccountId,
    amount: u64,
    expires_at_ms: Option<u64>,
    pending: Option<Pending>,
) -> Op {
    Op::Earn(Earn {
        member,
        amount: Points(amount),
        reason: EarnReason::Purchase,
        reference: Bytes(b"receipt".to_vec()),
        expires_at_ms,
        pending,
    })
}

fn until(ms: u64) -> Option<Pending> {
    Some(Pending {
        release_at_ms: Some(ms),
    })
}

fn until_confirmed() -> Option<Pending> {
    Some(Pending {
        release_at_ms: None,
    })
}

fn expire(account: AccountId, as_of_ms: u64, amount: u64) -> Op {
    Op::Expire(Expire {
        account,
        as_of_ms,
        amount: Points(amount),
    })
}

fn reverse(earn_id: u64) -> Op {
    Op::ReverseEarn(ReverseEarn {
        earn_id,
        reason: Bytes(b"return".to_vec()),
    })
}

fn confirm(earn_id: u64) -> Op {
    Op::ConfirmEarn(ConfirmEarn { earn_id })
}

async fn lots(srv: &TestServer, a: &AccountId) -> LotsView {
    srv.client
        .get_json(&format!("/v1/wallets/{a}/lots"))
        .await
        .expect("GET lots")
}

async fn tier(srv: &TestServer, a: &AccountId) -> TierStatus {
    srv.client
        .get_json(&format!("/v1/wallets/{a}/tier"))
        .await
        .expect("GET tier")
}

async fn earn_record(srv: &TestServer, id: u64) -> EarnRecord {
    srv.client
        .get_json(&format!("/v1/earns/{id}"))
        .await
        .expect("GET earn")
}

async fn earn_status(srv: &TestServer, id: u64) -> EarnStatus {
    let v: Value = srv
        .client
        .get_json(&format!("/v1/earns/{id}"))
        .await
        .expect("GET earn");
    serde_json::from_value(v["status"].clone()).unwrap()
}

fn lot_pairs(v: &LotsView) -> Vec<(Option<u64>, u64)> {
    v.lots.iter().map(|l| (l.expires_at_ms, l.points)).collect()
}

async fn sleep_until(ms: u64) {
    let now = now_ms();
    if ms > now {
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
    }
}

async fn audit_live(srv: &TestServer) -> audit::AuditReport {
    let mut bytes = Vec::new();
    srv.client.export_to(&mut bytes).await.expect("export");
    audit::audit_export(&bytes[..], 16, |_| {}).expect("the auditor accepts the log")
}

/// A server with a merchant holding a float of 100000.
async fn with_merchant() -> (TestServer, Keypair) {
    let srv = TestServer::start().await;
    let merchant = Keypair::generate();
    srv.register_merchant(&merchant, "Tea House").await;
    srv.mint(&id(&merchant), 100_000).await;
    (srv, merchant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_lot_is_spent_first_then_expires_and_is_burned_by_expire() {
    let (srv, merchant) = with_merchant().await;
    let (alice, bob) = (Keypair::generate(), Keypair::generate());
    let (a, b) = (id(&alice), id(&bob));
    let exp = now_ms() + 1_500;
    srv.ok(&merchant, earn(a, 300, Some(exp), None)).await;
    srv.ok(&merchant, earn(a, 200, None, None)).await;
    let v = lots(&srv, &a).await;
    assert_eq!(lot_pairs(&v), vec![(Some(exp), 300), (None, 200)]);
    assert_eq!((v.available, v.expiring_soon, v.balance), (500, 300, 500));
    assert!(v.lots[0].expiring_soon && !v.lots[0].expired);

    // Spending takes the lot that expires first; it keeps its expiry at the member's.
    srv.ok(&alice, transfer_op(b, 100)).await;
    assert_eq!(
        lot_pairs(&lots(&srv, &a).await),
        vec![(Some(exp), 200), (None, 200)]
    );
    assert_eq!(lot_pairs(&lots(&srv, &b).await), vec![(Some(exp), 100)]);

    sleep_until(exp + 100).await;
    let v = lots(&srv, &a).await;
    assert_eq!((v.available, v.expired, v.balance), (200, 200, 400));
    assert!(v.lots[0].expired);
    // An expired lot cannot be spent any more.
    srv.refused(&alice, transfer_op(b, 201), "insufficient_funds")
        .await;

    // Expire must name exactly the expired lots.
    let issuer = &srv.issuer;
    srv.refused(issuer, expire(a, exp, 199), "expiry_mismatch")
        .await;
    srv.refused(&merchant, expire(a, exp, 200), "not_authorized")
        .await;
    let before = srv.info().await;
    srv.ok(issuer, expire(a, exp, 200)).await;
    let after = srv.info().await;
    assert_eq!(after.supply, before.supply - 200);
    assert_eq!(after.burned, before.burned + 200);
    assert_eq!(srv.balance(&a).await, 200);
    assert_eq!(lot_pairs(&lots(&srv, &a).await), vec![(None, 200)]);

    // The CLI computes the amount from the server's view of Bob's lots.
    let key = srv.data().join(points_ledger::server::ISSUER_KEY_FILE);
    run_points(&[
        "wallet",
        "--key",
        key.to_str().unwrap(),
        "--server",
        &srv.url(),
        "expire",
        "--account",
        &b.to_hex(),
    ])
    .ok();
    assert_eq!(srv.balance(&b).await, 0);
    assert_eq!(srv.info().await.burned, before.burned + 300);

    let report = audit_live(&srv).await;
    assert_eq!(report.supply, srv.info().await.supply);
}

#[tokio::test]
async fn a_pending_award_is_counted_but_not_spendable_until_its_window_ends() {
    let (srv, merchant) = with_merchant().await;
    let (alice, bob) = (Keypair::generate(), Keypair::generate());
    let (a, b) = (id(&alice), id(&bob));
    let release = now_ms() + 1_500;
    let r = srv.ok(&merchant, earn(a, 500, None, until(release))).await;
    let v = lots(&srv, &a).await;
    assert_eq!((v.balance, v.available, v.pending), (500, 0, 500));
    assert_eq!(v.pending_awards.len(), 1);
    assert_eq!(v.pending_awards[0].earn_id, r.seq);
    assert_eq!(v.pending_awards[0].release_at_ms, Some(release));
    // The balance includes it (the member's history adds up to it); spending does not.
    assert_eq!(srv.balance(&a).await, 500);
    assert_eq!(earn_status(&srv, r.seq).await, EarnStatus::Pending);
    srv.refused(&alice, transfer_op(b, 1), "insufficient_funds")
        .await;

    sleep_until(release + 100).await;
    // Read APIs show it released once its time has come...
    let v = lots(&srv, &a).await;
    assert_eq!((v.available, v.pending), (500, 0));
    assert_eq!(earn_status(&srv, r.seq).await, EarnStatus::Released);
    // ...and the rules release it at the member's next entry, so it can be spent.
    srv.ok(&alice, transfer_op(b, 500)).await;
    assert_eq!(srv.balances(&[a, b]).await, vec![0, 500]);

    // The merchant cannot confirm what is already released.
    srv.refused(&merchant, confirm(r.seq), "earn_closed").await;
    audit_live(&srv).await;
}

#[tokio::test]
async fn reversals_after_returns_cancel_pending_awards_and_claw_back_released_ones() {
    let (srv, merchant) = with_merchant().await;
    let other = Keypair::generate();
    srv.register_merchant(&other, "Other Shop").await;
    let (alice, bob) = (Keypair::generate(), Keypair::generate());
    let (a, b, m) = (id(&alice), id(&bob), id(&merchant));

    // A pending award, returned before it was confirmed: cancelled, back to the float.
    let pending = srv
        .ok(&merchant, earn(a, 400, None, until_confirmed()))
        .await;
    assert_eq!(srv.balance(&m).await, 99_600);
    srv.refused(&other, reverse(pending.seq), "not_authorized")
        .await;
    srv.refused(&alice, reverse(pending.seq), "not_authorized")
        .await;
    srv.ok(&merchant, reverse(pending.seq)).await;
    assert_eq!(srv.balances(&[a, m]).await, vec![0, 100_000]);
    let rec = earn_record(&srv, pending.seq).await;
    assert_eq!((rec.returned, rec.unrecovered), (Points(400), Points(0)));
    assert_eq!(earn_status(&srv, pending.seq).await, EarnStatus::Reversed);
    srv.refused(&merchant, confirm(pending.seq), "earn_closed")
        .await;
    srv.refused(&merchant, reverse(pending.seq), "earn_closed")
        .await;

    // A released award the member partly spent: what is left comes back, never below 0.
    let released = srv.ok(&merchant, earn(a, 1_000, None, None)).await;
    srv.ok(&alice, transfer_op(b, 700)).await;
    srv.ok(&merchant, reverse(released.seq)).await;
    assert_eq!(srv.balances(&[a, b, m]).await, vec![0, 700, 99_300]);
    let rec = earn_record(&srv, released.seq).await;
    assert_eq!((rec.returned, rec.unrecovered), (Points(300), Points(700)));
    srv.refused(&merchant, reverse(released.seq), "earn_closed")
        .await;
    srv.refused(&merchant, confirm(999), "unknown_earn").await;

    // The merchant's statement records both reversals and what was not recovered.
    let st: Statement = srv
        .client
        .get_json(&format!("/v1/merchants/{m}/statement"))
        .await
        .unwrap();
    assert_eq!(st.totals.points_awarded, 1_400);
    assert_eq!(st.totals.points_reversed, 700);
    assert_eq!(st.totals.points_unrecovered, 700);
    let page: Page<Value> = srv
        .client
        .get_json(&format!("/v1/merchants/{m}/earns"))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);

    // Alice verifies her own history (the reversals need their award records).
    let member = Client::new(&srv.url()).with_key(alice.clone());
    let (report, _) = points_ledger::verify::verify_wallet(&member, &a, None)
        .await
        .expect("the member's verification passes");
    assert_eq!(report.balance, 0);
    let merchant_client = Client::new(&srv.url()).with_key(merchant.clone());
    let (report, _) = points_ledger::verify::verify_wallet(&merchant_client, &m, None)
        .await
        .expect("the merchant's verification passes");
    assert_eq!(report.balance, 99_300);
    // Another member may not read Alice's award.
    let nosy = Client::new(&srv.url()).with_key(bob.clone());
    let err = nosy
        .get_json::<Value>(&format!("/v1/earns/{}", released.seq))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("forbidden"));
    audit_live(&srv).await;
}

#[tokio::test]
async fn tiers_go_up_with_released_growth_and_down_when_it_leaves_the_window() {
    let (srv, merchant) = with_merchant().await;
    let alice = Keypair::generate();
    let a = id(&alice);
    let window_ms = 4_000;
    let tiers = SetTiers {
        tiers: vec![
            Tier {
                name: "Member".into(),
                min_growth: 0,
            },
            Tier {
                name: "Silver".into(),
                min_growth: 100,
            },
            Tier {
                name: "Gold".into(),
                min_growth: 1_000,
            },
        ],
        window_ms,
        growth_per_point: Rate {
            minor_units: 1,
            per_points: 1,
        },
        reason_rates: vec![],
    };
    srv.refused(&merchant, Op::SetTiers(tiers.clone()), "not_authorized")
        .await;
    srv.ok(&srv.issuer, Op::SetTiers(tiers)).await;
    let config: TierConfig = srv.client.get_json("/v1/tiers").await.unwrap();
    assert_eq!(config.window_ms, window_ms);

    let t = tier(&srv, &a).await;
    assert_eq!((t.tier.as_deref(), t.growth), (Some("Member"), 0));

    let first = srv.ok(&merchant, earn(a, 150, None, None)).await;
    let t = tier(&srv, &a).await;
    assert_eq!((t.tier.as_deref(), t.growth), (Some("Silver"), 150));
    assert_eq!(t.next_tier.as_deref(), Some("Gold"));
    assert_eq!(t.growth_to_next_tier, Some(850));
    assert_eq!(t.tier_held_until_ms, Some(first.timestamp_ms + window_ms));

    // Pending growth counts once released: here by the merchant's confirmation.
    let big = srv
        .ok(&merchant, earn(a, 900, None, until_confirmed()))
        .await;
    let t = tier(&srv, &a).await;
    assert_eq!((t.growth, t.pending_growth), (150, 900));
    srv.ok(&merchant, confirm(big.seq)).await;
    let t = tier(&srv, &a).await;
    assert_eq!((t.tier.as_deref(), t.growth), (Some("Gold"), 1_050));

    // A reversal removes the growth its award gave.
    srv.ok(&merchant, reverse(first.seq)).await;
    let t = tier(&srv, &a).await;
    assert_eq!((t.tier.as_deref(), t.growth), (Some("Silver"), 900));

    // Downgrade: once the confirmed award's growth leaves the window, back to Member.
    let confirmed_at = earn_record(&srv, big.seq).await.confirmed_at_ms.unwrap();
    sleep_until(confirmed_at + window_ms + 100).await;
    let t = tier(&srv, &a).await;
    assert_eq!((t.tier.as_deref(), t.growth), (Some("Member"), 0));
    audit_live(&srv).await;
}

/// Everything the loyalty routes show, minus the time of the request.
async fn loyalty_views(srv: &TestServer, accounts: &[AccountId]) -> Vec<Value> {
    let mut out = Vec::new();
    for a in accounts {
        let mut v: Value = srv
            .client
            .get_json(&format!("/v1/wallets/{a}/lots"))
            .await
            .unwrap();
        v["as_of_ms"] = Value::Null;
        out.push(v);
        let mut t: Value = srv
            .client
            .get_json(&format!("/v1/wallets/{a}/tier"))
            .await
            .unwrap();
        t["as_of_ms"] = Value::Null;
        out.push(t);
        let e: Value = srv
            .client
            .get_json(&format!("/v1/wallets/{a}/earns"))
            .await
            .unwrap();
        out.push(e);
    }
    out.push(srv.client.get_json("/v1/tiers").await.unwrap());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_reindex_reproduce_lots_awards_and_tiers() {
    let (mut srv, merchant) = with_merchant().await;
    let (alice, bob) = (Keypair::generate(), Keypair::generate());
    let (a, b) = (id(&alice), id(&bob));
    let far = now_ms() + 3_600_000;
    srv.ok(
        &srv.issuer,
        Op::SetTiers(SetTiers {
            tiers: vec![
                Tier {
                    name: "Member".into(),
                    min_growth: 0,
                },
                Tier {
                    name: "Silver".into(),
                    min_growth: 100,
                },
            ],
            window_ms: 365 * 86_400_000,
            growth_per_point: Rate {
                minor_units: 1,
                per_points: 2,
            },
            reason_rates: vec![],
        }),
    )
    .await;
    srv.ok(&merchant, earn(a, 600, Some(far), None)).await;
    srv.ok(&merchant, earn(a, 300, None, until(far))).await;
    let c = srv
        .ok(&merchant, earn(b, 250, None, until_confirmed()))
        .await;
    srv.ok(&alice, transfer_op(b, 100)).await;
    srv.ok(&merchant, confirm(c.seq)).await;
    let r = srv.ok(&merchant, earn(b, 40, Some(far), None)).await;
    srv.ok(&bob, transfer_op(a, 120)).await;
    srv.ok(&merchant, reverse(r.seq)).await;
    // An open order keeps the lots it took, to give them back if it is cancelled.
    let item = srv
        .ok(
            &merchant,
            Op::ListItem(ListItem {
                title: "Tea".into(),
                description: String::new(),
                price: Points(50),
                stock: 10,
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
            &alice,
            Op::Redeem(Redeem {
                item_id: item.seq,
                quantity: 1,
                max_unit_price: Points(50),
            }),
        )
        .await;
    let accounts = [a, b, id(&merchant)];
    let before = loyalty_views(&srv, &accounts).await;

    srv.restart().await;
    assert_eq!(
        loyalty_views(&srv, &accounts).await,
        before,
        "after restart"
    );

    srv.shutdown().await;
    run_points(&["reindex", "--data", srv.data().to_str().unwrap()]).ok();
    srv.restart().await;
    assert_eq!(
        loyalty_views(&srv, &accounts).await,
        before,
        "after reindex"
    );

    // The order's lots survived too: cancelling gives back the expiring lot it took.
    srv.ok(
        &alice,
        Op::CancelOrder(CancelOrder {
            order_id: order.seq,
            reason: Bytes::default(),
        }),
    )
    .await;
    let v = lots(&srv, &a).await;
    assert_eq!(v.lots[0].expires_at_ms, Some(far));
    assert_eq!(v.lots[0].points, 620);
    audit_live(&srv).await;
}

fn write_key(dir: &std::path::Path, name: &str, key: &Keypair) -> String {
    let path = dir.join(name);
    key.write_file(&path).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earn_batch_signs_every_row_sends_batches_of_256_and_never_awards_twice() {
    let (srv, merchant) = with_merchant().await;
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "merchant.key", &merchant);
    let members: Vec<AccountId> = (0..300).map(|_| id(&Keypair::generate())).collect();
    let exp = now_ms() + 86_400_000;
    let mut csv = String::from("member,amount,reason,reference,expires_at_ms\n");
    for (i, m) in members.iter().enumerate() {
        let amount = if i == 150 { 0 } else { 10 + i as u64 };
        let expires = if i % 2 == 0 {
            exp.to_string()
        } else {
            String::new()
        };
        let reason = if i % 3 == 0 { "task" } else { "purchase" };
        csv.push_str(&format!("{m},{amount},{reason},r-{i},{expires}\n"));
    }
    let file = dir.path().join("awards.csv");
    std::fs::write(&file, &csv).unwrap();
    let args = [
        "wallet",
        "--key",
        &key,
        "--server",
        &srv.url(),
        "earn-batch",
        "--csv",
        file.to_str().unwrap(),
    ];
    let size_before = srv.info().await.size;
    let run = run_points(&args).failed();
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 300);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["line"], i + 2);
        if i == 150 {
            assert_eq!(r["status"], "rejected");
            assert_eq!(r["code"], "zero_amount");
        } else {
            assert_eq!(r["status"], "applied", "{r}");
            assert!(r["seq"].as_u64().unwrap() >= size_before);
        }
    }
    assert!(
        run.stderr.contains("299 applied, 1 rejected"),
        "{}",
        run.stderr
    );
    assert_eq!(srv.info().await.size, size_before + 299);
    assert_eq!(srv.balance(&members[0]).await, 10);
    assert_eq!(srv.balance(&members[299]).await, 309);
    assert_eq!(
        lots(&srv, &members[0]).await.lots[0].expires_at_ms,
        Some(exp)
    );
    assert_eq!(lots(&srv, &members[1]).await.lots[0].expires_at_ms, None);

    // The same file again awards nobody twice: every row's op id is already used.
    let again = run_points(&args).failed();
    let rows: Vec<Value> = again
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows
        .iter()
        .enumerate()
        .all(|(i, r)| r["status"] == "rejected"
            && r["code"]
                == if i == 150 {
                    "zero_amount"
                } else {
                    "duplicate_op_id"
                }));
    assert_eq!(srv.info().await.size, size_before + 299);
    assert_eq!(srv.balance(&members[299]).await, 309);

    // A clean file succeeds with exit code 0.
    let small = dir.path().join("small.csv");
    std::fs::write(&small, format!("{},5,campaign,bonus\n", members[0])).unwrap();
    run_points(&[
        "wallet",
        "--key",
        &key,
        "--server",
        &srv.url(),
        "earn-batch",
        "--csv",
        small.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(srv.balance(&members[0]).await, 15);
    audit_live(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_awards_pending_points_confirms_reverses_and_shows_lots_and_tiers() {
    let (srv, merchant) = with_merchant().await;
    let dir = tempfile::tempdir().unwrap();
    let mkey = write_key(dir.path(), "merchant.key", &merchant);
    let alice = Keypair::generate();
    let akey = write_key(dir.path(), "alice.key", &alice);
    let ikey = srv
        .data()
        .join(points_ledger::server::ISSUER_KEY_FILE)
        .to_str()
        .unwrap()
        .to_string();
    let url = srv.url();
    let wallet = |key: &str, rest: &[&str]| {
        let mut args = vec!["wallet", "--key", key, "--server", &url];
        args.extend_from_slice(rest);
        run_points(&args).ok()
    };
    wallet(
        &ikey,
        &[
            "set-tiers",
            "--tier",
            "Member:0",
            "--tier",
            "Silver:100",
            "--reason-rate",
            "adjustment=0/1",
        ],
    );
    let a = id(&alice).to_hex();
    let r = wallet(
        &mkey,
        &[
            "earn",
            "--member",
            &a,
            "--amount",
            "120",
            "--pending-until-confirmed",
        ],
    )
    .json();
    let earn_id = r["seq"].as_u64().unwrap().to_string();
    let v = wallet(&akey, &["lots"]).json();
    assert_eq!(v["pending"], 120);
    assert_eq!(v["available"], 0);
    wallet(&mkey, &["confirm-earn", &earn_id]);
    let v = wallet(&akey, &["lots"]).json();
    assert_eq!(v["available"], 120);
    let t = wallet(&akey, &["tier"]).json();
    assert_eq!(t["tier"], "Silver");
    let exp = (now_ms() + 86_400_000).to_string();
    wallet(
        &mkey,
        &[
            "earn",
            "--member",
            &a,
            "--amount",
            "30",
            "--expires-at-ms",
            &exp,
        ],
    );
    let v = wallet(&akey, &["lots"]).json();
    assert_eq!(
        v["lots"][0]["expires_at_ms"].as_u64().unwrap().to_string(),
        exp
    );
    assert_eq!(v["expiring_soon"], 30);
    wallet(&mkey, &["reverse-earn", &earn_id, "--reason", "return-9"]);
    let e = wallet(&akey, &["earns"]).json();
    assert_eq!(e["items"][0]["status"], "reversed");
    let t = wallet(&akey, &["tier"]).json();
    assert_eq!(t["tier"], "Member");
    assert_eq!(t["growth"], 30);
    audit_live(&srv).await;
}
