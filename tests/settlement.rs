//! Merchant settlement end to end: books, statements, the two-party Settle op, the burn,
//! the settlement records, cancellations before and after a settlement, rate changes in
//! the middle of a period, the auditor recomputing every Settle, every way a Settle is
//! refused, the `points settle draft → countersign → submit` flow with the real binary,
//! and the rounding rule on hand-computed examples.
//!
//! `the_worked_example_of_the_spec` reproduces `ledger-spec/settlement.md` §10 number for
//! number; `rounding_is_half_up_once_per_rate_group` checks the examples of §7.

mod common;

use std::collections::BTreeMap;

use common::*;
use points_ledger::api::dto::{Page, WalletResponse};
use points_ledger::audit;
use points_ledger::client::ClientError;
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::settlement::{
    self, BookEvent, MerchantBook, SettleBody, SettlementRecord, Statement, StatementLine,
    StatementTotals,
};
use points_ledger::store::Receipt;
use serde::de::DeserializeOwned;

// ---------------------------------------------------------------------------------------
// Reads: every GET of this file goes through `read` (one place to sign read requests).
// ---------------------------------------------------------------------------------------

/// GETs `path` (starting with `/`) as JSON.
async fn read<T: DeserializeOwned>(srv: &TestServer, path: &str) -> Result<T, ClientError> {
    srv.client.get_json(path).await
}

async fn balance(srv: &TestServer, account: &AccountId) -> u64 {
    match read::<WalletResponse>(srv, &format!("/v1/wallets/{account}")).await {
        Ok(w) => w.balance,
        Err(e) if e.code() == Some("unknown_account") => 0,
        Err(e) => panic!("GET wallet {account}: {e}"),
    }
}

/// The draft statement of `merchant` up to `to` (the latest entry if `None`).
async fn statement(srv: &TestServer, merchant: &AccountId, to: Option<u64>) -> Statement {
    let mut path = format!("/v1/merchants/{merchant}/statement");
    if let Some(t) = to {
        path.push_str(&format!("?to={t}"));
    }
    read(srv, &path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn settlements(srv: &TestServer, merchant: &AccountId) -> Vec<SettlementRecord> {
    let page: Page<SettlementRecord> = read(
        srv,
        &format!("/v1/merchants/{merchant}/settlements?limit=1000"),
    )
    .await
    .expect("settlements");
    assert!(page.next_after.is_none());
    page.items
}

// ---------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------

fn rate(minor_units: u64, per_points: u64) -> Rate {
    Rate {
        minor_units,
        per_points,
    }
}

fn register(merchant: AccountId, name: &str, issue_rate: Rate, redeem_rate: Rate) -> Op {
    Op::RegisterMerchant(RegisterMerchant {
        merchant,
        name: name.into(),
        issue_rate,
        redeem_rate,
    })
}

fn rates(merchant: AccountId, issue_rate: Option<Rate>, redeem_rate: Option<Rate>) -> Op {
    Op::UpdateMerchant(UpdateMerchant {
        merchant,
        name: None,
        issue_rate,
        redeem_rate,
        status: None,
    })
}

fn list(title: &str, price: u64, stock: u64) -> Op {
    Op::ListItem(ListItem {
        title: title.into(),
        description: String::new(),
        price: Points(price),
        stock,
        limit_per_order: 0,
        limit_per_member: 0,
        available_from_ms: 0,
        available_until_ms: None,
        active: true,
    })
}

fn redeem(item_id: u64, quantity: u64, max: u64) -> Op {
    Op::Redeem(Redeem {
        item_id,
        quantity,
        max_unit_price: Points(max),
    })
}

fn cancel(order_id: u64) -> Op {
    Op::CancelOrder(CancelOrder {
        order_id,
        reason: Bytes::default(),
    })
}

fn fulfill(order_id: u64) -> Op {
    Op::FulfillOrder(FulfillOrder {
        order_id,
        reference: Bytes::default(),
    })
}

/// The Settle op for `st`, countersigned by `merchant` for `chain_id`.
fn settle_op(chain_id: &str, merchant: &Keypair, st: &Statement) -> Op {
    Op::Settle(Settle {
        merchant: st.merchant,
        from_seq: st.from_seq,
        to_seq: st.to_seq,
        totals: st.totals,
        merchant_signature: settlement::countersign(chain_id, merchant, st),
    })
}

/// A Settle whose fields are given one by one, countersigned by `signer` over `body`.
fn settle_raw(
    merchant: AccountId,
    from_seq: u64,
    to_seq: u64,
    totals: StatementTotals,
    signer: &Keypair,
    body: &SettleBody,
) -> Op {
    Op::Settle(Settle {
        merchant,
        from_seq,
        to_seq,
        totals,
        merchant_signature: Signature(signer.sign(&settlement::countersign_payload(body))),
    })
}

fn body(chain_id: &str, st: &Statement) -> SettleBody {
    SettleBody {
        chain_id: chain_id.into(),
        merchant: st.merchant,
        from_seq: st.from_seq,
        to_seq: st.to_seq,
        totals: st.totals,
    }
}

/// Drafts, countersigns and submits the settlement of `merchant` up to `to`; checks the
/// burn, the balance, the record, the list and where the next period starts. Returns the
/// statement and the settlement id.
async fn settle(
    srv: &TestServer,
    merchant: &Keypair,
    to: Option<u64>,
) -> (Statement, SettlementRecord) {
    let m = id(merchant);
    let st = statement(srv, &m, to).await;
    let before_info = srv.info().await;
    let before_balance = balance(srv, &m).await;
    let before_list = settlements(srv, &m).await;
    let receipt = srv
        .ok(&srv.issuer, settle_op(&srv.chain_id, merchant, &st))
        .await;
    let info = srv.info().await;
    let burn = st.totals.points_to_burn;
    assert_eq!(
        info.burned,
        before_info.burned + burn,
        "Settle burns points_to_burn"
    );
    assert_eq!(info.supply, before_info.supply - burn);
    assert_eq!(
        balance(srv, &m).await,
        before_balance - burn,
        "…from the merchant"
    );
    let rec: SettlementRecord = read(srv, &format!("/v1/settlements/{}", receipt.seq))
        .await
        .expect("settlement record");
    assert_eq!(
        rec,
        SettlementRecord {
            settlement_id: receipt.seq,
            merchant: m,
            from_seq: st.from_seq,
            to_seq: st.to_seq,
            totals: st.totals,
        }
    );
    let mut want = before_list;
    want.push(rec.clone());
    assert_eq!(settlements(srv, &m).await, want);
    // The next statement starts right after the settled period.
    let next = statement(srv, &m, None).await;
    assert_eq!(next.from_seq, st.to_seq);
    assert_eq!(next.to_seq, receipt.seq);
    (st, rec)
}

/// Streams `/v1/export` and audits it completely; returns the report.
async fn audit_live(srv: &TestServer) -> audit::AuditReport {
    let mut bytes = Vec::new();
    srv.client.export_to(&mut bytes).await.expect("export");
    let report = audit::audit_export(&bytes[..], 64, |_| {}).expect("the auditor accepts the log");
    let info = srv.info().await;
    assert!(report.entries >= info.size);
    report
}

fn line(category: &str, r: Rate, points: u64, amount: u64) -> StatementLine {
    StatementLine {
        category: category.into(),
        rate: r,
        points,
        amount,
    }
}

// ---------------------------------------------------------------------------------------
// The worked example of ledger-spec/settlement.md §10
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_example_of_the_spec() {
    let srv = TestServer::start().await;
    let issuer = &srv.issuer;
    let (tea_house, alice, bob) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let (m, a, b) = (id(&tea_house), id(&alice), id(&bob));
    let seq = |r: Receipt| r.seq;

    // Period 1: (0, 11].
    assert_eq!(
        seq(srv
            .ok(issuer, register(m, "Tea House", rate(9, 10), rate(2, 3)))
            .await),
        1
    );
    assert_eq!(seq(srv.ok(issuer, mint_op(m, 1_001)).await), 2);
    assert_eq!(seq(srv.ok(&tea_house, earn_op(a, 500, "t-1")).await), 3);
    assert_eq!(seq(srv.ok(&tea_house, earn_op(b, 301, "t-2")).await), 4);
    assert_eq!(seq(srv.ok(&tea_house, list("Tea", 37, 100)).await), 5);
    assert_eq!(seq(srv.ok(&alice, redeem(5, 3, 37)).await), 6);
    assert_eq!(seq(srv.ok(&bob, redeem(5, 1, 37)).await), 7);
    assert_eq!(
        seq(srv
            .ok(issuer, rates(m, Some(rate(2, 3)), Some(rate(1, 3))))
            .await),
        8
    );
    assert_eq!(seq(srv.ok(issuer, mint_op(m, 250)).await), 9);
    assert_eq!(seq(srv.ok(&alice, redeem(5, 5, 37)).await), 10);
    assert_eq!(seq(srv.ok(&bob, cancel(7)).await), 11);
    assert_eq!(balance(&srv, &m).await, 746);

    let st = statement(&srv, &m, None).await;
    assert_eq!((st.from_seq, st.to_seq), (0, 11));
    assert_eq!(
        st.lines,
        vec![
            line("purchase", rate(2, 3), 250, 167),
            line("purchase", rate(9, 10), 1_001, 901),
            line("redemption", rate(1, 3), 185, 62),
            line("redemption", rate(2, 3), 148, 99),
            line("refund", rate(2, 3), 37, 25),
        ]
    );
    let p1 = StatementTotals {
        points_purchased: 1_251,
        purchase_amount: 1_068,
        points_awarded: 801,
        points_redeemed: 333,
        redemption_amount: 161,
        points_refunded: 37,
        refund_amount: 25,
        points_to_burn: 296,
        due_from_merchant: 932,
        ..StatementTotals::default()
    };
    assert_eq!(st.totals, p1);
    let (_, rec) = settle(&srv, &tea_house, None).await;
    assert_eq!(rec.settlement_id, 12);
    assert_eq!(balance(&srv, &m).await, 450);

    // Period 2: (11, 17]. Both cancellations concern orders settled in period 1.
    assert_eq!(seq(srv.ok(&alice, cancel(6)).await), 13);
    assert_eq!(
        seq(srv.ok(issuer, rates(m, Some(rate(1, 2)), None)).await),
        14
    );
    assert_eq!(seq(srv.ok(&bob, redeem(5, 3, 37)).await), 15);
    assert_eq!(seq(srv.ok(&tea_house, cancel(10)).await), 16);
    assert_eq!(seq(srv.ok(issuer, mint_op(m, 99)).await), 17);
    let st = statement(&srv, &m, None).await;
    assert_eq!((st.from_seq, st.to_seq), (11, 17));
    assert_eq!(
        st.lines,
        vec![
            line("purchase", rate(1, 2), 99, 50),
            line("redemption", rate(1, 3), 111, 37),
            line("clawback", rate(1, 3), 185, 62),
            line("clawback", rate(2, 3), 111, 74),
            line("float_credit", rate(1, 2), 185, 93),
            line("float_credit", rate(2, 3), 111, 74),
        ]
    );
    let p2 = StatementTotals {
        points_purchased: 99,
        purchase_amount: 50,
        points_redeemed: 111,
        redemption_amount: 37,
        points_refunded_after_settlement: 296,
        clawback_amount: 136,
        float_credit_amount: 167,
        points_to_burn: 111,
        due_to_merchant: 18,
        ..StatementTotals::default()
    };
    assert_eq!(st.totals, p2);
    let (_, rec) = settle(&srv, &tea_house, None).await;
    assert_eq!(rec.settlement_id, 18);
    assert_eq!(balance(&srv, &m).await, 253);

    // Period 3: (17, 20]. Bob's order 19 is cancelled at 21, after the period's end but
    // before the Settle (22) is appended: period 3 still pays for it.
    assert_eq!(seq(srv.ok(&bob, redeem(5, 1, 37)).await), 19);
    assert_eq!(seq(srv.ok(&alice, redeem(5, 1, 37)).await), 20);
    assert_eq!(seq(srv.ok(&bob, cancel(19)).await), 21);
    let st = statement(&srv, &m, Some(20)).await;
    assert_eq!(st.lines, vec![line("redemption", rate(1, 3), 74, 25)]);
    let p3 = StatementTotals {
        points_redeemed: 74,
        redemption_amount: 25,
        points_to_burn: 74,
        due_to_merchant: 25,
        ..StatementTotals::default()
    };
    assert_eq!(st.totals, p3);
    let (_, rec) = settle(&srv, &tea_house, Some(20)).await;
    assert_eq!(rec.settlement_id, 22);
    assert_eq!(balance(&srv, &m).await, 216);

    // Period 4: (20, 22]. The cancellation at 21 is a refund after settlement.
    let st = statement(&srv, &m, None).await;
    assert_eq!((st.from_seq, st.to_seq), (20, 22));
    assert_eq!(
        st.lines,
        vec![
            line("clawback", rate(1, 3), 37, 12),
            line("float_credit", rate(1, 2), 37, 19),
        ]
    );
    let p4 = StatementTotals {
        points_refunded_after_settlement: 37,
        clawback_amount: 12,
        float_credit_amount: 19,
        due_to_merchant: 7,
        ..StatementTotals::default()
    };
    assert_eq!(st.totals, p4);
    let (_, rec) = settle(&srv, &tea_house, None).await;
    assert_eq!(rec.settlement_id, 23);

    // Where everyone ends up.
    assert_eq!(
        (
            balance(&srv, &a).await,
            balance(&srv, &b).await,
            balance(&srv, &m).await
        ),
        (463, 190, 216)
    );
    let info = srv.info().await;
    assert_eq!((info.minted, info.burned, info.supply), (1_350, 481, 869));
    let report = audit_live(&srv).await;
    assert_eq!(
        (report.entries, report.burned, report.supply),
        (24, 481, 869)
    );
}

// ---------------------------------------------------------------------------------------
// Several merchants, several periods, against an independent model
// ---------------------------------------------------------------------------------------

/// What the test itself records of each merchant's money-relevant events.
#[derive(Debug, Clone)]
enum Ev {
    Purchased(u64, Rate),
    Awarded(u64),
    Redeemed(u64, Rate),
    /// (order id, points, the order's redeem rate, issue rate at cancellation)
    Refunded(u64, u64, Rate, Rate),
    In(u64),
    Out(u64),
    Burned(u64),
}

#[derive(Debug, Default)]
struct ModelMerchant {
    settled_to: u64,
    events: Vec<(u64, Ev)>,
}

/// `(points × minor_units + ⌊per_points / 2⌋) div per_points`, written independently.
fn money(points: u64, r: Rate) -> u64 {
    let x = u128::from(points) * u128::from(r.minor_units);
    let pp = u128::from(r.per_points);
    u64::try_from((x + pp / 2) / pp).expect("fits")
}

/// The statement totals the model expects for `(settled_to, to]`.
fn model_totals(mm: &ModelMerchant, to: u64) -> StatementTotals {
    let mut t = StatementTotals::default();
    let mut groups: BTreeMap<(u8, u64, u64), u64> = BTreeMap::new();
    let mut g = |cat: u8, r: Rate, p: u64| {
        *groups
            .entry((cat, r.minor_units, r.per_points))
            .or_default() += p;
    };
    for (seq, ev) in &mm.events {
        if *seq <= mm.settled_to || *seq > to {
            continue;
        }
        match ev {
            Ev::Purchased(p, r) => {
                t.points_purchased += p;
                g(0, *r, *p);
            }
            Ev::Awarded(p) => t.points_awarded += p,
            Ev::Redeemed(p, r) => {
                t.points_redeemed += p;
                g(1, *r, *p);
            }
            Ev::Refunded(order, p, rr, ir) => {
                if *order <= mm.settled_to {
                    t.points_refunded_after_settlement += p;
                    g(3, *rr, *p);
                    g(4, *ir, *p);
                } else {
                    t.points_refunded += p;
                    g(2, *rr, *p);
                }
            }
            Ev::In(p) => t.transfers_in += p,
            Ev::Out(p) => t.transfers_out += p,
            Ev::Burned(p) => t.points_burned += p,
        }
    }
    for ((cat, mu, pp), p) in groups {
        let a = money(p, rate(mu, pp));
        match cat {
            0 => t.purchase_amount += a,
            1 => t.redemption_amount += a,
            2 => t.refund_amount += a,
            3 => t.clawback_amount += a,
            _ => t.float_credit_amount += a,
        }
    }
    t.points_to_burn = t.points_redeemed - t.points_refunded;
    let net = i128::from(t.redemption_amount) - i128::from(t.refund_amount)
        + i128::from(t.float_credit_amount)
        - i128::from(t.purchase_amount)
        - i128::from(t.clawback_amount);
    t.due_to_merchant = u64::try_from(net.max(0)).expect("fits");
    t.due_from_merchant = u64::try_from((-net).max(0)).expect("fits");
    t
}

/// A small deterministic generator (xorshift64*), so the scenario is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Shop {
    key: Keypair,
    issue: Rate,
    redeem: Rate,
    item: u64,
    price: u64,
    model: ModelMerchant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_merchants_settle_several_periods_and_the_auditor_agrees() {
    let srv = TestServer::start().await;
    let issuer = &srv.issuer;
    let mut rng = Rng(0x5eed_0f5e_771e);
    let members: Vec<Keypair> = (0..4).map(|_| Keypair::generate()).collect();
    let mut shops: Vec<Shop> = Vec::new();
    for (i, (issue, redeem_r, price)) in [
        (rate(9, 10), rate(1, 3), 37),
        (rate(1, 1), rate(2, 3), 11),
        (rate(7, 8), rate(5, 7), 23),
    ]
    .into_iter()
    .enumerate()
    {
        let key = Keypair::generate();
        srv.ok(
            issuer,
            register(id(&key), &format!("Shop {i}"), issue, redeem_r),
        )
        .await;
        let r = srv.ok(issuer, mint_op(id(&key), 5_000)).await;
        let mut model = ModelMerchant::default();
        model.events.push((r.seq, Ev::Purchased(5_000, issue)));
        let item = srv
            .ok(&key, list(&format!("Goods {i}"), price, 1_000_000))
            .await
            .seq;
        shops.push(Shop {
            key,
            issue,
            redeem: redeem_r,
            item,
            price,
            model,
        });
    }
    // Open orders: (order id, shop, member, total, redeem rate when placed).
    let mut open: Vec<(u64, usize, usize, u64, Rate)> = Vec::new();
    let mut fulfilled = 0;
    let mut refunds_after_settlement = 0;
    let mut settled_ids = 0;

    for period in 0..3 {
        for _ in 0..45 {
            let s = rng.below(shops.len() as u64) as usize;
            let who = rng.below(members.len() as u64) as usize;
            let m_id = id(&shops[s].key);
            match rng.below(9) {
                0 => {
                    let amount = 1 + rng.below(400);
                    let r = srv.ok(issuer, mint_op(m_id, amount)).await;
                    let ir = shops[s].issue;
                    shops[s]
                        .model
                        .events
                        .push((r.seq, Ev::Purchased(amount, ir)));
                }
                1 | 2 => {
                    let amount = 1 + rng.below(150);
                    if balance(&srv, &m_id).await >= amount {
                        let r = srv
                            .ok(&shops[s].key, earn_op(id(&members[who]), amount, "e"))
                            .await;
                        shops[s].model.events.push((r.seq, Ev::Awarded(amount)));
                    }
                }
                3 | 4 => {
                    let q = 1 + rng.below(3);
                    let total = q * shops[s].price;
                    if balance(&srv, &id(&members[who])).await >= total {
                        let r = srv
                            .ok(&members[who], redeem(shops[s].item, q, shops[s].price))
                            .await;
                        let rr = shops[s].redeem;
                        shops[s].model.events.push((r.seq, Ev::Redeemed(total, rr)));
                        open.push((r.seq, s, who, total, rr));
                    }
                }
                5 if !open.is_empty() => {
                    // Cancel an open order, by the member or by the merchant.
                    let i = rng.below(open.len() as u64) as usize;
                    let (order, os, ow, total, rr) = open[i];
                    if balance(&srv, &id(&shops[os].key)).await >= total {
                        open.remove(i);
                        let signer = if rng.below(2) == 0 {
                            &members[ow]
                        } else {
                            &shops[os].key
                        };
                        let r = srv.ok(signer, cancel(order)).await;
                        if order <= shops[os].model.settled_to {
                            refunds_after_settlement += 1;
                        }
                        let ir = shops[os].issue;
                        shops[os]
                            .model
                            .events
                            .push((r.seq, Ev::Refunded(order, total, rr, ir)));
                    }
                }
                6 if !open.is_empty() => {
                    let i = rng.below(open.len() as u64) as usize;
                    let o = open.remove(i);
                    srv.ok(&shops[o.1].key, fulfill(o.0)).await;
                    fulfilled += 1;
                }
                7 => {
                    // Merchant to merchant transfer, or a voluntary burn of float.
                    let amount = 1 + rng.below(50);
                    if balance(&srv, &m_id).await >= amount {
                        let t = (s + 1) % shops.len();
                        if rng.below(2) == 0 {
                            let r = srv
                                .ok(&shops[s].key, transfer_op(id(&shops[t].key), amount))
                                .await;
                            shops[s].model.events.push((r.seq, Ev::Out(amount)));
                            shops[t].model.events.push((r.seq, Ev::In(amount)));
                        } else {
                            let r = srv.ok(&shops[s].key, burn_op(m_id, amount)).await;
                            shops[s].model.events.push((r.seq, Ev::Burned(amount)));
                        }
                    }
                }
                _ => {
                    // A rate change in the middle of the period.
                    let new = rate(1 + rng.below(9), 1 + rng.below(9));
                    if rng.below(2) == 0 {
                        srv.ok(issuer, rates(m_id, Some(new), None)).await;
                        shops[s].issue = new;
                    } else {
                        srv.ok(issuer, rates(m_id, None, Some(new))).await;
                        shops[s].redeem = new;
                    }
                }
            }
        }
        // Settle every shop. Shop 2 settles only up to the middle of what happened since
        // its last settlement, so its later events (and cancellations of orders it settles
        // now) carry over.
        for (s, shop) in shops.iter_mut().enumerate() {
            let tip = srv.info().await.size - 1;
            let m_id = id(&shop.key);
            let to = if s == 2 {
                let from = shop.model.settled_to;
                from + (tip - from) / 2
            } else {
                tip
            };
            let expected = model_totals(&shop.model, to);
            let st = statement(&srv, &m_id, Some(to)).await;
            assert_eq!(
                st.from_seq, shop.model.settled_to,
                "period {period} shop {s}"
            );
            assert_eq!(st.totals, expected, "period {period} shop {s}");
            if balance(&srv, &m_id).await < expected.points_to_burn {
                // Top the float up so the burn is covered.
                let r = srv.ok(issuer, mint_op(m_id, expected.points_to_burn)).await;
                let ir = shop.issue;
                shop.model
                    .events
                    .push((r.seq, Ev::Purchased(expected.points_to_burn, ir)));
            }
            let (_, rec) = settle(&srv, &shop.key, Some(to)).await;
            assert_eq!(rec.totals, expected);
            shop.model.settled_to = to;
            settled_ids += 1;
        }
        // Cancel some orders that are now settled: refunds after settlement.
        for _ in 0..3 {
            if open.is_empty() {
                break;
            }
            let (order, os, ow, total, rr) = open[0];
            if balance(&srv, &id(&shops[os].key)).await < total {
                break;
            }
            open.remove(0);
            let r = srv.ok(&members[ow], cancel(order)).await;
            if order <= shops[os].model.settled_to {
                refunds_after_settlement += 1;
            }
            let ir = shops[os].issue;
            shops[os]
                .model
                .events
                .push((r.seq, Ev::Refunded(order, total, rr, ir)));
        }
    }
    // Every kind of event occurred at least once somewhere, so the model was exercised.
    let kinds: std::collections::BTreeSet<&str> = shops
        .iter()
        .flat_map(|s| s.model.events.iter())
        .map(|(_, e)| match e {
            Ev::Purchased(..) => "purchased",
            Ev::Awarded(_) => "awarded",
            Ev::Redeemed(..) => "redeemed",
            Ev::Refunded(..) => "refunded",
            Ev::In(_) => "in",
            Ev::Out(_) => "out",
            Ev::Burned(_) => "burned",
        })
        .collect();
    assert_eq!(kinds.len(), 7, "every kind of book event occurs: {kinds:?}");
    assert!(refunds_after_settlement > 0 && fulfilled > 0);
    assert_eq!(settled_ids, 9);

    // Σ balances = supply, and the auditor replays everything, Settles included.
    let mut sum = 0;
    for k in members.iter().chain(shops.iter().map(|s| &s.key)) {
        sum += balance(&srv, &id(k)).await;
    }
    sum += balance(&srv, &srv.issuer_id()).await;
    let info = srv.info().await;
    assert_eq!(sum, info.supply);
    let report = audit_live(&srv).await;
    assert_eq!((report.supply, report.burned), (info.supply, info.burned));
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

/// Adds 1 to field `i` (0..16) of the totals.
fn bump(t: &mut StatementTotals, i: usize) -> &'static str {
    let (name, f) = match i {
        0 => ("points_purchased", &mut t.points_purchased),
        1 => ("purchase_amount", &mut t.purchase_amount),
        2 => ("points_awarded", &mut t.points_awarded),
        3 => ("points_redeemed", &mut t.points_redeemed),
        4 => ("redemption_amount", &mut t.redemption_amount),
        5 => ("points_refunded", &mut t.points_refunded),
        6 => ("refund_amount", &mut t.refund_amount),
        7 => (
            "points_refunded_after_settlement",
            &mut t.points_refunded_after_settlement,
        ),
        8 => ("clawback_amount", &mut t.clawback_amount),
        9 => ("float_credit_amount", &mut t.float_credit_amount),
        10 => ("transfers_in", &mut t.transfers_in),
        11 => ("transfers_out", &mut t.transfers_out),
        12 => ("points_burned", &mut t.points_burned),
        13 => ("points_to_burn", &mut t.points_to_burn),
        14 => ("due_to_merchant", &mut t.due_to_merchant),
        _ => ("due_from_merchant", &mut t.due_from_merchant),
    };
    *f += 1;
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_settle_is_refused_with_its_code_and_changes_nothing() {
    let srv = TestServer::start().await;
    let issuer = &srv.issuer;
    let (shop, other, alice) = (
        Keypair::generate(),
        Keypair::generate(),
        Keypair::generate(),
    );
    let m = id(&shop);
    srv.ok(issuer, register(m, "Shop", rate(9, 10), rate(2, 3)))
        .await;
    srv.ok(
        issuer,
        register(id(&other), "Other", rate(1, 1), rate(1, 1)),
    )
    .await;
    srv.ok(issuer, mint_op(m, 1_000)).await;
    srv.ok(&shop, earn_op(id(&alice), 400, "e")).await;
    srv.ok(&shop, transfer_op(id(&other), 5)).await;
    let item = srv.ok(&shop, list("Cup", 25, 10)).await.seq;
    let o = srv.ok(&alice, redeem(item, 3, 25)).await.seq;
    srv.ok(&alice, redeem(item, 1, 25)).await;
    srv.ok(&alice, cancel(o)).await;
    srv.ok(&shop, burn_op(m, 7)).await;

    let st = statement(&srv, &m, None).await;
    let chain = srv.chain_id.clone();
    let good = body(&chain, &st);
    assert!(st.totals.points_to_burn > 0);

    // What every refusal must leave alone (besides the tip and totals `refused` checks).
    let before = (statement(&srv, &m, None).await, settlements(&srv, &m).await);
    // Signed by anyone but the issuer.
    for who in [&shop, &other, &alice] {
        srv.refused(who, settle_op(&chain, &shop, &st), "not_authorized")
            .await;
    }
    // For a key that is not a merchant.
    let not_merchant = Statement {
        merchant: id(&alice),
        ..st.clone()
    };
    srv.refused(
        issuer,
        settle_op(&chain, &alice, &not_merchant),
        "unknown_merchant",
    )
    .await;
    // Wrong periods, each correctly countersigned so that only the period is wrong.
    let size = srv.info().await.size;
    for (from, to) in [(1, st.to_seq), (0, size), (0, size + 10), (0, 0)] {
        let p = Statement {
            from_seq: from,
            to_seq: to,
            ..st.clone()
        };
        srv.refused(issuer, settle_op(&chain, &shop, &p), "period_mismatch")
            .await;
    }
    // Countersignatures: by another key, over other totals, for another chain, over
    // another period, or none at all.
    srv.refused(
        issuer,
        settle_raw(m, st.from_seq, st.to_seq, st.totals, &other, &good),
        "bad_countersignature",
    )
    .await;
    let mut other_totals = good.clone();
    other_totals.totals.points_redeemed += 1;
    srv.refused(
        issuer,
        settle_raw(m, st.from_seq, st.to_seq, st.totals, &shop, &other_totals),
        "bad_countersignature",
    )
    .await;
    let other_chain = SettleBody {
        chain_id: "test.points.local/another".into(),
        ..good.clone()
    };
    srv.refused(
        issuer,
        settle_raw(m, st.from_seq, st.to_seq, st.totals, &shop, &other_chain),
        "bad_countersignature",
    )
    .await;
    let shorter = SettleBody {
        to_seq: st.to_seq - 1,
        ..good.clone()
    };
    srv.refused(
        issuer,
        settle_raw(m, st.from_seq, st.to_seq, st.totals, &shop, &shorter),
        "bad_countersignature",
    )
    .await;
    srv.refused(
        issuer,
        Op::Settle(Settle {
            merchant: m,
            from_seq: st.from_seq,
            to_seq: st.to_seq,
            totals: st.totals,
            merchant_signature: Signature([0; 64]),
        }),
        "bad_countersignature",
    )
    .await;
    // Any wrong total, countersigned as it is: the totals differ from the chain's.
    for i in 0..16 {
        let mut wrong = st.clone();
        let field = bump(&mut wrong.totals, i);
        let p = srv.sign(issuer, settle_op(&chain, &shop, &wrong));
        let problem = srv.refused_signed(&p, "statement_mismatch").await;
        assert!(!problem.detail.is_empty(), "{field}");
    }
    // The merchant cannot cover the burn.
    let float = balance(&srv, &m).await;
    let keep = st.totals.points_to_burn - 1;
    srv.ok(&shop, transfer_op(id(&other), float - keep)).await;
    let st_now = statement(&srv, &m, Some(st.to_seq)).await;
    assert_eq!(st_now, st);
    srv.refused(issuer, settle_op(&chain, &shop, &st), "insufficient_funds")
        .await;
    srv.ok(&other, transfer_op(m, float - keep)).await;
    assert_eq!(
        (
            statement(&srv, &m, Some(st.to_seq)).await,
            settlements(&srv, &m).await
        ),
        (before.0.clone(), before.1.clone())
    );

    // The good one goes through once; the same countersigned statement never again.
    let (_, rec) = settle(&srv, &shop, Some(st.to_seq)).await;
    srv.refused(issuer, settle_op(&chain, &shop, &st), "period_mismatch")
        .await;
    // After a settlement: from must be its to_seq, and to after from.
    let next = statement(&srv, &m, None).await;
    assert_eq!(next.from_seq, rec.to_seq);
    let back = Statement {
        to_seq: rec.to_seq,
        ..next.clone()
    };
    srv.refused(issuer, settle_op(&chain, &shop, &back), "period_mismatch")
        .await;
    let before_last = Statement {
        from_seq: rec.to_seq,
        to_seq: rec.to_seq - 1,
        ..next.clone()
    };
    srv.refused(
        issuer,
        settle_op(&chain, &shop, &before_last),
        "period_mismatch",
    )
    .await;
    audit_live(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_refund_cancelled_between_period_end_and_settle() {
    // An order redeemed in a period and cancelled after the period's end, but before the
    // Settle of that period was appended, was booked as an ordinary refund of the next
    // period: that period then refunded more points than it redeemed, its statement
    // overflowed (`points_to_burn` < 0) and the merchant could never settle again.
    let srv = TestServer::start().await;
    let issuer = &srv.issuer;
    let (shop, alice) = (Keypair::generate(), Keypair::generate());
    let m = id(&shop);
    srv.ok(issuer, register(m, "Shop", rate(1, 2), rate(3, 4)))
        .await;
    srv.ok(issuer, mint_op(m, 1_000)).await;
    srv.ok(&shop, earn_op(id(&alice), 100, "e")).await;
    let item = srv.ok(&shop, list("Pen", 9, 10)).await.seq;
    let order = srv.ok(&alice, redeem(item, 1, 9)).await.seq;
    let period_end = order;
    srv.ok(&alice, cancel(order)).await;
    let (st, _) = settle(&srv, &shop, Some(period_end)).await;
    assert_eq!(st.totals.points_to_burn, 9);
    // The next period: the refund is a refund after settlement (9 × 3/4 = 6.75 → 7 back
    // from the merchant, 9 × 1/2 = 4.5 → 5 float credit to it).
    let next = statement(&srv, &m, None).await;
    assert_eq!(
        next.totals,
        StatementTotals {
            points_refunded_after_settlement: 9,
            clawback_amount: 7,
            float_credit_amount: 5,
            due_from_merchant: 2,
            ..StatementTotals::default()
        }
    );
    settle(&srv, &shop, None).await;
    audit_live(&srv).await;
}

// ---------------------------------------------------------------------------------------
// Rounding
// ---------------------------------------------------------------------------------------

fn book(events: Vec<BookEvent>) -> MerchantBook {
    MerchantBook {
        settled_to: 0,
        settlements: 0,
        events: events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (i as u64 + 1, e))
            .collect(),
    }
}

#[test]
fn rounding_is_half_up_once_per_rate_group() {
    // ledger-spec/settlement.md §7: amount = (points × minor_units + ⌊per_points / 2⌋)
    // div per_points, once per (category, rate) group. Every expected amount below is
    // worked out by hand.
    let m = AccountId([7; 32]);
    let redeemed = |order_id: u64, points: u64, r: Rate| BookEvent::Redeemed {
        order_id,
        points,
        rate: r,
    };
    // (the events of a book, the lines expected: category, rate, points, amount)
    type Case = (Vec<BookEvent>, Vec<(&'static str, Rate, u64, u64)>);
    let cases: Vec<Case> = vec![
        // 9/10: 7 × 9 = 63 → 6.3 → 6; 15 × 9 = 135 → 13.5 → 14 (a half goes up).
        (
            vec![redeemed(1, 7, rate(9, 10))],
            vec![("redemption", rate(9, 10), 7, 6)],
        ),
        (
            vec![redeemed(1, 15, rate(9, 10))],
            vec![("redemption", rate(9, 10), 15, 14)],
        ),
        // 1/3: 1 → 0.33 → 0; 2 → 0.67 → 1; 5 → 1.67 → 2; 7 → 2.33 → 2.
        (
            vec![redeemed(1, 1, rate(1, 3))],
            vec![("redemption", rate(1, 3), 1, 0)],
        ),
        (
            vec![redeemed(1, 2, rate(1, 3))],
            vec![("redemption", rate(1, 3), 2, 1)],
        ),
        (
            vec![redeemed(1, 5, rate(1, 3))],
            vec![("redemption", rate(1, 3), 5, 2)],
        ),
        (
            vec![redeemed(1, 7, rate(1, 3))],
            vec![("redemption", rate(1, 3), 7, 2)],
        ),
        // 2/3: 1 → 0.67 → 1; 5 → 3.33 → 3; 7 → 4.67 → 5.
        (
            vec![redeemed(1, 1, rate(2, 3))],
            vec![("redemption", rate(2, 3), 1, 1)],
        ),
        (
            vec![redeemed(1, 5, rate(2, 3))],
            vec![("redemption", rate(2, 3), 5, 3)],
        ),
        (
            vec![redeemed(1, 7, rate(2, 3))],
            vec![("redemption", rate(2, 3), 7, 5)],
        ),
        // Once per group, not per event: three orders of 1 point at 1/3 are 3 points
        // → 1, not 0 + 0 + 0; five of 1 point at 9/10 are 5 → 4.5 → 5, not 5 × 1.
        (
            vec![
                redeemed(1, 1, rate(1, 3)),
                redeemed(2, 1, rate(1, 3)),
                redeemed(3, 1, rate(1, 3)),
            ],
            vec![("redemption", rate(1, 3), 3, 1)],
        ),
        (
            (1..=5).map(|o| redeemed(o, 1, rate(9, 10))).collect(),
            vec![("redemption", rate(9, 10), 5, 5)],
        ),
        // Different rates are different groups, each rounded on its own:
        // 5 at 1/3 → 1.67 → 2 and 5 at 2/3 → 3.33 → 3.
        (
            vec![redeemed(1, 5, rate(1, 3)), redeemed(2, 5, rate(2, 3))],
            vec![
                ("redemption", rate(1, 3), 5, 2),
                ("redemption", rate(2, 3), 5, 3),
            ],
        ),
        // Equal fractions written differently are different groups: 1 at 1/2 → 1 and
        // 1 at 2/4 → 1, where 2 points at 1/2 would be 1.
        (
            vec![redeemed(1, 1, rate(1, 2)), redeemed(2, 1, rate(2, 4))],
            vec![
                ("redemption", rate(1, 2), 1, 1),
                ("redemption", rate(2, 4), 1, 1),
            ],
        ),
        // Categories round apart: 3 points redeemed at 1/2 → 1.5 → 2, 1 of them refunded
        // → 0.5 → 1; the net is 2 − 1 = 1 (the exact 1.0).
        (
            vec![
                redeemed(1, 3, rate(1, 2)),
                BookEvent::Refunded {
                    order_id: 1,
                    points: 1,
                    redeem_rate: rate(1, 2),
                    issue_rate: rate(1, 1),
                    after_settlement: false,
                },
            ],
            vec![
                ("redemption", rate(1, 2), 3, 2),
                ("refund", rate(1, 2), 1, 1),
            ],
        ),
        // Purchases at 9/10 and 2/3 with odd points: 11 → 9.9 → 10; 13 → 8.67 → 9.
        (
            vec![
                BookEvent::Purchased {
                    points: 11,
                    rate: rate(9, 10),
                },
                BookEvent::Purchased {
                    points: 13,
                    rate: rate(2, 3),
                },
            ],
            vec![
                ("purchase", rate(2, 3), 13, 9),
                ("purchase", rate(9, 10), 11, 10),
            ],
        ),
        // A rate of 0 minor units is worth nothing; 1/1 is exact.
        (
            vec![redeemed(1, 999, rate(0, 7)), redeemed(2, 999, rate(1, 1))],
            vec![
                ("redemption", rate(0, 7), 999, 0),
                ("redemption", rate(1, 1), 999, 999),
            ],
        ),
    ];
    for (events, want) in cases {
        let b = book(events.clone());
        let st = settlement::statement(m, &b, u64::MAX).expect("statement");
        let want: Vec<StatementLine> = want
            .into_iter()
            .map(|(c, r, p, a)| line(c, r, p, a))
            .collect();
        assert_eq!(st.lines, want, "{events:?}");
        for l in &st.lines {
            assert_eq!(l.amount, money(l.points, l.rate), "model agrees: {l:?}");
        }
    }
    // Huge values use 128-bit intermediates: (2^64 − 1) points at 3/4.
    let max = u64::MAX;
    let b = book(vec![redeemed(1, max, rate(3, 4))]);
    let st = settlement::statement(m, &b, 1).expect("fits");
    let exact = (u128::from(max) * 3 + 2) / 4;
    assert_eq!(u128::from(st.totals.redemption_amount), exact);
    // …and an amount that does not fit in a u64 is an overflow, not a wrap.
    let b = book(vec![redeemed(1, max, rate(2, 1))]);
    assert_eq!(
        settlement::statement(m, &b, 1).map(|s| s.totals),
        Err(points_ledger::rules::Rejection::Overflow)
    );
}

#[test]
fn the_net_goes_one_way_only() {
    let m = AccountId([7; 32]);
    // Redemptions worth 100, purchases worth 100: nothing is due either way.
    let b = book(vec![
        BookEvent::Purchased {
            points: 100,
            rate: rate(1, 1),
        },
        BookEvent::Redeemed {
            order_id: 2,
            points: 100,
            rate: rate(1, 1),
        },
    ]);
    let t = settlement::statement(m, &b, 10).expect("statement").totals;
    assert_eq!((t.due_to_merchant, t.due_from_merchant), (0, 0));
    // A statement up to a seq leaves out later events.
    let t = settlement::statement(m, &b, 1).expect("statement").totals;
    assert_eq!((t.points_redeemed, t.due_from_merchant), (0, 100));
}

// ---------------------------------------------------------------------------------------
// The CLI flow with the real binary
// ---------------------------------------------------------------------------------------

#[test]
fn settle_draft_countersign_submit_with_the_real_binary() {
    let tmp = tempfile::Builder::new()
        .prefix("points-settle-")
        .tempdir()
        .expect("temporary folder");
    let data = tmp.path().join("data");
    let server = ServeChild::start(&data, &tmp.path().join("logs"));
    let url = server.url();
    let issuer = data.join("issuer.key");
    let issuer = issuer.to_str().expect("UTF-8");
    let keygen = |name: &str| -> (String, String) {
        let path = tmp.path().join(format!("{name}.key"));
        let p = path.to_str().expect("UTF-8").to_string();
        let run = run_points(&["keygen", "--out", &p]).ok();
        let public = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Public key: "))
            .expect("keygen prints the public key")
            .trim()
            .to_string();
        (p, public)
    };
    let (shop, shop_pk) = keygen("shop");
    let (alice, alice_pk) = keygen("alice");
    let wallet = |key: &str, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["wallet", "--key", key, "--server", url.as_str()];
        all.extend_from_slice(args);
        run_points(&all).ok().json()
    };
    let mall = |key: &str, args: &[&str]| -> serde_json::Value {
        let mut all = vec!["mall", "--key", key, "--server", url.as_str()];
        all.extend_from_slice(args);
        run_points(&all).ok().json()
    };
    let settle_cmd = |key: &str, args: &[&str]| -> Run {
        let mut all = vec!["settle", "--key", key, "--server", url.as_str()];
        all.extend_from_slice(args);
        run_points(&all)
    };

    wallet(
        issuer,
        &[
            "register-merchant",
            "--merchant",
            &shop_pk,
            "--name",
            "Tea House",
            "--issue-rate",
            "9/10",
            "--redeem-rate",
            "2/3",
        ],
    );
    wallet(issuer, &["mint", "--to", &shop_pk, "--amount", "1001"]);
    wallet(&shop, &["earn", "--member", &alice_pk, "--amount", "500"]);
    let item = mall(
        &shop,
        &["add", "--title", "Tea", "--price", "37", "--stock", "100"],
    )["seq"]
        .as_u64()
        .expect("item id");
    let order = mall(&alice, &["redeem", &item.to_string(), "--quantity", "3"])["seq"]
        .as_u64()
        .expect("order id");
    mall(&alice, &["redeem", &item.to_string(), "--quantity", "1"]);
    mall(&alice, &["cancel", &order.to_string()]);

    // Draft (issuer), countersign (merchant), submit (issuer).
    let draft = tmp.path().join("draft.json");
    let draft_s = draft.to_str().expect("UTF-8");
    let run = settle_cmd(issuer, &["draft", "--merchant", &shop_pk, "--out", draft_s]).ok();
    let st: Statement = serde_json::from_str(&run.stdout).expect("draft on stdout");
    assert_eq!(
        st,
        serde_json::from_slice(&std::fs::read(&draft).expect("draft")).expect("JSON")
    );
    // 1001 at 9/10 → 901; 148 redeemed at 2/3 → 99; 111 refunded at 2/3 → 74.
    assert_eq!(
        st.totals,
        StatementTotals {
            points_purchased: 1_001,
            purchase_amount: 901,
            points_awarded: 500,
            points_redeemed: 148,
            redemption_amount: 99,
            points_refunded: 111,
            refund_amount: 74,
            points_to_burn: 37,
            due_from_merchant: 876,
            ..StatementTotals::default()
        }
    );

    // A doctored draft is not countersigned.
    let doctored = tmp.path().join("doctored.json");
    let mut bad = st.clone();
    bad.totals.due_from_merchant -= 100;
    std::fs::write(&doctored, serde_json::to_vec(&bad).expect("JSON")).expect("write");
    let out = tmp.path().join("doctored-signed.json");
    settle_cmd(
        &shop,
        &[
            "countersign",
            "--statement",
            doctored.to_str().expect("UTF-8"),
            "--out",
            out.to_str().expect("UTF-8"),
        ],
    )
    .failed();
    assert!(!out.exists());
    // Nor by someone else than the merchant.
    settle_cmd(
        &alice,
        &[
            "countersign",
            "--statement",
            draft_s,
            "--out",
            out.to_str().expect("UTF-8"),
        ],
    )
    .failed();

    let signed = tmp.path().join("signed.json");
    let signed_s = signed.to_str().expect("UTF-8");
    settle_cmd(
        &shop,
        &["countersign", "--statement", draft_s, "--out", signed_s],
    )
    .ok();

    // A countersigned file whose totals were changed afterwards is refused by the ledger.
    let mut tampered: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&signed).expect("signed")).expect("JSON");
    tampered["statement"]["totals"]["due_from_merchant"] = serde_json::json!(1);
    let tampered_path = tmp.path().join("tampered.json");
    std::fs::write(&tampered_path, serde_json::to_vec(&tampered).expect("JSON")).expect("write");
    let run = settle_cmd(
        issuer,
        &[
            "submit",
            "--countersigned",
            tampered_path.to_str().expect("UTF-8"),
        ],
    )
    .failed();
    assert!(run.stderr.contains("bad_countersignature"), "{run:#?}");

    // Only the issuer submits.
    let run = settle_cmd(&shop, &["submit", "--countersigned", signed_s]).failed();
    assert!(run.stderr.contains("not_authorized"), "{run:#?}");

    let receipt: Receipt = serde_json::from_str(
        &settle_cmd(issuer, &["submit", "--countersigned", signed_s])
            .ok()
            .stdout,
    )
    .expect("receipt");
    let Op::Settle(s) = &receipt.signed_op.envelope.op else {
        panic!("a Settle op: {receipt:?}");
    };
    assert_eq!((s.from_seq, s.to_seq, s.totals), (0, st.to_seq, st.totals));
    // Submitting it again is a new op for the same period: refused.
    let run = settle_cmd(issuer, &["submit", "--countersigned", signed_s]).failed();
    assert!(run.stderr.contains("period_mismatch"), "{run:#?}");

    // `settle list` shows it; the liability report and the auditor agree.
    let list = settle_cmd(issuer, &["list", "--merchant", &shop_pk])
        .ok()
        .json();
    assert_eq!(
        list["items"][0]["settlement_id"],
        serde_json::json!(receipt.seq)
    );
    assert_eq!(
        list["items"][0]["totals"]["points_to_burn"],
        serde_json::json!(37)
    );
    let report = run_points(&["report", "liability", "--server", &url, "--key", issuer])
        .ok()
        .json();
    assert_eq!(report["burned"], serde_json::json!(37));
    assert_eq!(report["supply"], serde_json::json!(1_001 - 37));
    assert_eq!(
        report["merchants"][0]["settled_to"],
        serde_json::json!(st.to_seq)
    );
    let audit = run_points(&["audit", "--server", &url, "--key", issuer, "--json"])
        .ok()
        .json();
    assert_eq!(audit["burned"], serde_json::json!(37));
    drop(server);
}
