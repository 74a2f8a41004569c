//! The redemption mall end to end, over real HTTP against an in-process server with a real
//! sled store: a merchant lists goods, members redeem them, the merchant fulfils or either
//! side cancels; every refusal of the mall with its exact problem code (and the ledger,
//! the balances and the catalog unchanged after it); the catalog and order lists with
//! their filters and cursors; and 200 members racing for 50 units.
//!
//! The numbers of `ledger-spec/mall.md` §9 (the worked example) are reproduced exactly by
//! `the_worked_example_of_the_spec`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use points_ledger::api::dto::{Page, WalletResponse};
use points_ledger::client::{self, ClientError};
use points_ledger::crypto::Keypair;
use points_ledger::mall::{ItemRecord, OrderRecord, OrderStatus};
use points_ledger::op::*;
use points_ledger::store::Receipt;
use serde::de::DeserializeOwned;
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------------------
// Reads: every GET of this file goes through `read`, so that signing read requests (should
// wallet, order and statement reads become holder-only) is a change in one place.
// ---------------------------------------------------------------------------------------

/// GETs `path` (starting with `/`) as JSON.
async fn read<T: DeserializeOwned>(srv: &TestServer, path: &str) -> Result<T, ClientError> {
    srv.client.get_json(path).await
}

async fn item(srv: &TestServer, item_id: u64) -> ItemRecord {
    read(srv, &format!("/v1/mall/items/{item_id}"))
        .await
        .unwrap_or_else(|e| panic!("GET item {item_id}: {e}"))
}

async fn order(srv: &TestServer, order_id: u64) -> OrderRecord {
    read(srv, &format!("/v1/mall/orders/{order_id}"))
        .await
        .unwrap_or_else(|e| panic!("GET order {order_id}: {e}"))
}

async fn balance(srv: &TestServer, account: &AccountId) -> u64 {
    match read::<WalletResponse>(srv, &format!("/v1/wallets/{account}")).await {
        Ok(w) => w.balance,
        Err(e) if e.code() == Some("unknown_account") => 0,
        Err(e) => panic!("GET wallet {account}: {e}"),
    }
}

/// Every page of a cursor-paginated list at `path` (which has no query yet, or ends in one
/// to which `&limit=…&after=…` is appended), checking the cursor contract on the way.
async fn walk<T: DeserializeOwned>(
    srv: &TestServer,
    path: &str,
    limit: u32,
    id_of: impl Fn(&T) -> u64,
) -> Vec<T> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out: Vec<T> = Vec::new();
    let mut after: Option<u64> = None;
    for _ in 0..10_000 {
        let mut p = format!("{path}{sep}limit={limit}");
        if let Some(a) = after {
            p.push_str(&format!("&after={a}"));
        }
        let page: Page<T> = read(srv, &p)
            .await
            .unwrap_or_else(|e| panic!("GET {p}: {e}"));
        assert!(page.items.len() <= limit as usize, "{p}: page too long");
        for it in &page.items {
            let id = id_of(it);
            if let Some(prev) = out.last() {
                assert!(id > id_of(prev), "{p}: ids must grow across pages");
            }
            if let Some(a) = after {
                assert!(id > a, "{p}: an id at or before the cursor");
            }
        }
        let last = page.items.last().map(&id_of);
        out.extend(page.items);
        match page.next_after {
            Some(n) => {
                assert_eq!(Some(n), last, "{p}: next_after is the last id of the page");
                after = Some(n);
            }
            None => return out,
        }
    }
    panic!("{path}: the cursor never ended");
}

// ---------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------

fn listing(title: &str, price: u64, stock: u64) -> ListItem {
    ListItem {
        title: title.to_string(),
        description: format!("{title}, one unit"),
        price: Points(price),
        stock,
        limit_per_order: 0,
        limit_per_member: 0,
        available_from_ms: 0,
        available_until_ms: None,
        active: true,
    }
}

fn no_change(item_id: u64) -> UpdateItem {
    UpdateItem {
        item_id,
        title: None,
        description: None,
        price: None,
        stock_delta: 0,
        limit_per_order: None,
        limit_per_member: None,
        available_from_ms: None,
        available_until_ms: None,
        active: None,
    }
}

fn redeem(item_id: u64, quantity: u64, max_unit_price: u64) -> Op {
    Op::Redeem(Redeem {
        item_id,
        quantity,
        max_unit_price: Points(max_unit_price),
    })
}

fn fulfill(order_id: u64, reference: &str) -> Op {
    Op::FulfillOrder(FulfillOrder {
        order_id,
        reference: Bytes(reference.as_bytes().to_vec()),
    })
}

fn cancel(order_id: u64, reason: &str) -> Op {
    Op::CancelOrder(CancelOrder {
        order_id,
        reason: Bytes(reason.as_bytes().to_vec()),
    })
}

// ---------------------------------------------------------------------------------------
// The ledger under test
// ---------------------------------------------------------------------------------------

/// Two merchants (floats of 100_000 each) and three members: Alice and Bob hold 1_000
/// each, Carol holds 50.
struct Mall {
    srv: TestServer,
    shop: Keypair,
    rival: Keypair,
    alice: Keypair,
    bob: Keypair,
    carol: Keypair,
}

impl Mall {
    async fn new() -> Mall {
        let srv = TestServer::start().await;
        let (shop, rival) = (Keypair::generate(), Keypair::generate());
        let (alice, bob, carol) = (
            Keypair::generate(),
            Keypair::generate(),
            Keypair::generate(),
        );
        srv.register_merchant(&shop, "Corner Shop").await;
        srv.register_merchant(&rival, "Rival Goods").await;
        srv.mint(&id(&shop), 100_000).await;
        srv.mint(&id(&rival), 100_000).await;
        srv.ok(&shop, earn_op(id(&alice), 1_000, "r-alice")).await;
        srv.ok(&shop, earn_op(id(&bob), 1_000, "r-bob")).await;
        srv.ok(&rival, earn_op(id(&carol), 50, "r-carol")).await;
        Mall {
            srv,
            shop,
            rival,
            alice,
            bob,
            carol,
        }
    }

    fn accounts(&self) -> Vec<AccountId> {
        vec![
            self.srv.issuer_id(),
            id(&self.shop),
            id(&self.rival),
            id(&self.alice),
            id(&self.bob),
            id(&self.carol),
        ]
    }

    async fn balances(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for a in self.accounts() {
            out.push(balance(&self.srv, &a).await);
        }
        out
    }

    /// Σ balances of every account there is = supply = minted − burned.
    async fn assert_conserved(&self) {
        let info = self.srv.info().await;
        let sum: u64 = self.balances().await.iter().sum();
        assert_eq!(sum, info.supply, "Σ balances = supply");
        assert_eq!(info.minted - info.burned, info.supply);
    }

    /// The whole catalog, in id order.
    async fn catalog(&self) -> Vec<ItemRecord> {
        walk(&self.srv, "/v1/mall/items", 1000, |i: &ItemRecord| {
            i.item_id
        })
        .await
    }

    /// Every order of both merchants, in id order.
    async fn all_orders(&self) -> Vec<OrderRecord> {
        let mut out = Vec::new();
        for m in [&self.shop, &self.rival] {
            out.extend(
                walk(
                    &self.srv,
                    &format!("/v1/merchants/{}/orders", id(m)),
                    1000,
                    |o: &OrderRecord| o.order_id,
                )
                .await,
            );
        }
        out.sort_by_key(|o| o.order_id);
        out
    }

    async fn list(&self, key: &Keypair, l: ListItem) -> u64 {
        self.srv.ok(key, Op::ListItem(l)).await.seq
    }

    async fn ok(&self, key: &Keypair, op: Op) -> Receipt {
        self.srv.ok(key, op).await
    }

    /// Submits an op that must be refused with `code`, and checks that nothing changed:
    /// the tip, the totals, every balance, every item and every order.
    async fn refused(&self, key: &Keypair, op: Op, code: &str) {
        let (balances, catalog, orders) = (
            self.balances().await,
            self.catalog().await,
            self.all_orders().await,
        );
        self.srv.refused(key, op, code).await;
        assert_eq!(self.balances().await, balances, "`{code}` moved points");
        assert_eq!(
            self.catalog().await,
            catalog,
            "`{code}` changed the catalog"
        );
        assert_eq!(self.all_orders().await, orders, "`{code}` changed an order");
    }
}

// ---------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_redeem_fulfil_and_cancel_with_exact_refunds() {
    let m = Mall::new().await;
    let srv = &m.srv;
    let (shop, alice, bob) = (id(&m.shop), id(&m.alice), id(&m.bob));

    // The merchant lists: the item id is the seq of the ListItem entry.
    let receipt = srv.ok(&m.shop, Op::ListItem(listing("Mug", 30, 5))).await;
    let mug = receipt.seq;
    let it = item(srv, mug).await;
    assert_eq!(
        (
            it.item_id,
            it.merchant,
            it.price,
            it.stock,
            it.units_redeemed,
            it.active
        ),
        (mug, shop, Points(30), 5, 0, true)
    );
    assert_eq!(it.updated_seq, mug);

    // Alice redeems two: the order id is the seq of the Redeem entry.
    let r = m.ok(&m.alice, redeem(mug, 2, 30)).await;
    let o1 = r.seq;
    let o = order(srv, o1).await;
    assert_eq!(
        (o.order_id, o.item_id, o.merchant, o.member, o.quantity),
        (o1, mug, shop, alice, 2)
    );
    assert_eq!(
        (o.unit_price, o.total, o.status),
        (Points(30), Points(60), OrderStatus::Open)
    );
    assert_eq!(o.closed_seq, None);
    assert_eq!(
        o.redeem_rate,
        Rate {
            minor_units: 1,
            per_points: 1
        }
    );
    assert_eq!(balance(srv, &alice).await, 940);
    assert_eq!(balance(srv, &shop).await, 100_000 - 2_000 + 60);
    let it = item(srv, mug).await;
    assert_eq!((it.stock, it.units_redeemed), (3, 2));

    // Only the merchant fulfils; then the order is closed for good.
    m.refused(&m.alice, fulfill(o1, "x"), "not_authorized")
        .await;
    m.refused(&m.rival, fulfill(o1, "x"), "not_authorized")
        .await;
    let f = m.ok(&m.shop, fulfill(o1, "parcel-1")).await;
    let o = order(srv, o1).await;
    assert_eq!(o.status, OrderStatus::Fulfilled);
    assert_eq!(o.closed_seq, Some(f.seq));
    assert_eq!(o.fulfilment_reference, Bytes(b"parcel-1".to_vec()));
    m.refused(&m.shop, fulfill(o1, "again"), "order_closed")
        .await;
    m.refused(&m.shop, cancel(o1, "too late"), "order_closed")
        .await;
    m.refused(&m.alice, cancel(o1, "too late"), "order_closed")
        .await;
    // Fulfilling changes no balance and no stock.
    assert_eq!(balance(srv, &alice).await, 940);
    assert_eq!(item(srv, mug).await.stock, 3);

    // Alice cancels her own open order: points and stock come back exactly.
    let before = (balance(srv, &alice).await, balance(srv, &shop).await);
    let o2 = m.ok(&m.alice, redeem(mug, 3, 30)).await.seq;
    assert_eq!(item(srv, mug).await.stock, 0);
    assert_eq!(balance(srv, &alice).await, before.0 - 90);
    m.refused(&m.bob, cancel(o2, "not mine"), "not_authorized")
        .await;
    m.refused(&m.rival, cancel(o2, "not mine"), "not_authorized")
        .await;
    let c = m.ok(&m.alice, cancel(o2, "changed my mind")).await;
    let o = order(srv, o2).await;
    assert_eq!(o.status, OrderStatus::Cancelled);
    assert_eq!((o.closed_seq, o.cancelled_by), (Some(c.seq), Some(alice)));
    assert_eq!(
        (balance(srv, &alice).await, balance(srv, &shop).await),
        before,
        "the refund restores both balances exactly"
    );
    let it = item(srv, mug).await;
    assert_eq!((it.stock, it.units_redeemed, it.updated_seq), (3, 2, c.seq));
    m.refused(&m.alice, cancel(o2, "again"), "order_closed")
        .await;
    m.refused(&m.shop, cancel(o2, "again"), "order_closed")
        .await;
    m.refused(&m.shop, fulfill(o2, "after all"), "order_closed")
        .await;

    // The merchant cancels Bob's open order.
    let o3 = m.ok(&m.bob, redeem(mug, 1, 30)).await.seq;
    assert_eq!(balance(srv, &bob).await, 970);
    let c = m.ok(&m.shop, cancel(o3, "out of colour")).await;
    let o = order(srv, o3).await;
    assert_eq!(
        (o.status, o.cancelled_by),
        (OrderStatus::Cancelled, Some(shop))
    );
    assert_eq!(o.closed_seq, Some(c.seq));
    assert_eq!(balance(srv, &bob).await, 1_000);
    assert_eq!(item(srv, mug).await.stock, 3);
    m.refused(&m.bob, cancel(o3, "again"), "order_closed").await;

    // The lists agree with the records.
    let alice_orders = walk(
        srv,
        &format!("/v1/wallets/{alice}/orders"),
        1,
        |o: &OrderRecord| o.order_id,
    )
    .await;
    assert_eq!(
        alice_orders
            .iter()
            .map(|o| (o.order_id, o.status))
            .collect::<Vec<_>>(),
        vec![(o1, OrderStatus::Fulfilled), (o2, OrderStatus::Cancelled)]
    );
    let shop_orders = m.all_orders().await;
    assert_eq!(
        shop_orders.iter().map(|o| o.order_id).collect::<Vec<_>>(),
        vec![o1, o2, o3]
    );
    for (status, want) in [
        ("open", vec![]),
        ("fulfilled", vec![o1]),
        ("cancelled", vec![o2, o3]),
    ] {
        let got = walk(
            srv,
            &format!("/v1/merchants/{shop}/orders?status={status}"),
            2,
            |o: &OrderRecord| o.order_id,
        )
        .await;
        assert_eq!(
            got.iter().map(|o| o.order_id).collect::<Vec<_>>(),
            want,
            "{status}"
        );
    }
    // The member's history shows every mall entry of theirs.
    let seqs: BTreeSet<u64> = srv
        .full_history(&alice, 100)
        .await
        .iter()
        .map(|r| r.seq)
        .collect();
    for s in [o1, f.seq, o2] {
        assert!(seqs.contains(&s), "entry {s} is in Alice's history");
    }
    m.assert_conserved().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_example_of_the_spec() {
    // ledger-spec/mall.md §9, step by step, with the same numbers.
    let m = Mall::new().await;
    let srv = &m.srv;
    let (shop, alice, bob) = (id(&m.shop), id(&m.alice), id(&m.bob));
    let shop0 = balance(srv, &shop).await; // 98_000 after awarding 2 × 1_000
    assert_eq!(shop0, 98_000);

    // 1. Lantern: 120 points, 10 units, at most 3 per order and 4 per member.
    let lantern = m
        .list(
            &m.shop,
            ListItem {
                limit_per_order: 3,
                limit_per_member: 4,
                ..listing("Lantern", 120, 10)
            },
        )
        .await;
    // 2. Alice redeems 3: pays 360, stock 7.
    let a1 = m.ok(&m.alice, redeem(lantern, 3, 120)).await.seq;
    assert_eq!(
        (balance(srv, &alice).await, item(srv, lantern).await.stock),
        (640, 7)
    );
    // 3. Alice asks for 2 more: 3 + 2 > 4 per member.
    m.refused(&m.alice, redeem(lantern, 2, 120), "limit_exceeded")
        .await;
    // 4. The merchant raises the price to 150 and adds 5 units: stock 12.
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            price: Some(Points(150)),
            stock_delta: 5,
            ..no_change(lantern)
        }),
    )
    .await;
    assert_eq!(item(srv, lantern).await.stock, 12);
    // 5. Bob still agrees to 120 only.
    m.refused(&m.bob, redeem(lantern, 1, 120), "price_above_max")
        .await;
    // 6. Bob redeems 2 at 150: pays 300.
    let b1 = m.ok(&m.bob, redeem(lantern, 2, 150)).await.seq;
    assert_eq!(order(srv, b1).await.total, Points(300));
    // 7. Alice cancels her order: 360 back, stock 10 + 3 = 13, she holds 0 again.
    m.ok(&m.alice, cancel(a1, "")).await;
    assert_eq!(balance(srv, &alice).await, 1_000);
    // 8. Now 2 more are within her limit: at the new price, 300.
    let a2 = m.ok(&m.alice, redeem(lantern, 2, 150)).await.seq;
    assert_eq!(balance(srv, &alice).await, 700);
    // 9. The merchant fulfils Bob's order.
    m.ok(&m.shop, fulfill(b1, "parcel-77")).await;
    let it = item(srv, lantern).await;
    assert_eq!((it.stock, it.units_redeemed), (11, 4));
    assert_eq!(it.stock + it.units_redeemed, 10 + 5, "initial + restocks");
    assert_eq!(balance(srv, &bob).await, 700);
    assert_eq!(balance(srv, &shop).await, shop0 + 300 + 300);
    assert_eq!(order(srv, a2).await.status, OrderStatus::Open);
    assert_eq!(order(srv, b1).await.status, OrderStatus::Fulfilled);
    m.assert_conserved().await;
}

// ---------------------------------------------------------------------------------------
// Every refusal
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mall_refusal_has_its_code_and_changes_nothing() {
    let m = Mall::new().await;
    let srv = &m.srv;
    let mug = m.list(&m.shop, listing("Mug", 30, 5)).await;

    // unknown_item / unknown_order.
    m.refused(&m.alice, redeem(999_999, 1, 30), "unknown_item")
        .await;
    m.refused(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            price: Some(Points(1)),
            ..no_change(999_999)
        }),
        "unknown_item",
    )
    .await;
    m.refused(&m.shop, fulfill(999_999, ""), "unknown_order")
        .await;
    m.refused(&m.alice, cancel(999_999, ""), "unknown_order")
        .await;
    // An item id is not an order id.
    m.refused(&m.shop, fulfill(mug, ""), "unknown_order").await;

    // zero_amount: no units, or a free item.
    m.refused(&m.alice, redeem(mug, 0, 30), "zero_amount").await;
    m.refused(&m.shop, Op::ListItem(listing("Free", 0, 5)), "zero_amount")
        .await;
    m.refused(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            price: Some(Points(0)),
            ..no_change(mug)
        }),
        "zero_amount",
    )
    .await;

    // self_transfer: a merchant cannot redeem its own item.
    m.refused(&m.shop, redeem(mug, 1, 30), "self_transfer")
        .await;

    // item_inactive.
    let hidden = m
        .list(
            &m.shop,
            ListItem {
                active: false,
                ..listing("Hidden", 10, 5)
            },
        )
        .await;
    m.refused(&m.alice, redeem(hidden, 1, 10), "item_inactive")
        .await;
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            active: Some(true),
            ..no_change(hidden)
        }),
    )
    .await;
    m.ok(&m.alice, redeem(hidden, 1, 10)).await;
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            active: Some(false),
            ..no_change(hidden)
        }),
    )
    .await;
    m.refused(&m.alice, redeem(hidden, 1, 10), "item_inactive")
        .await;

    // not_available: before the window opens, and after it closed (the end is exclusive).
    let later = client::now_ms() + 86_400_000;
    let soon = m
        .list(
            &m.shop,
            ListItem {
                available_from_ms: later,
                ..listing("Soon", 10, 5)
            },
        )
        .await;
    m.refused(&m.alice, redeem(soon, 1, 10), "not_available")
        .await;
    let gone = m
        .list(
            &m.shop,
            ListItem {
                available_until_ms: Some(1),
                ..listing("Gone", 10, 5)
            },
        )
        .await;
    m.refused(&m.alice, redeem(gone, 1, 10), "not_available")
        .await;
    // Moving the window to now makes both redeemable.
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            available_from_ms: Some(0),
            ..no_change(soon)
        }),
    )
    .await;
    m.ok(&m.alice, redeem(soon, 1, 10)).await;
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            available_until_ms: Some(None),
            ..no_change(gone)
        }),
    )
    .await;
    m.ok(&m.alice, redeem(gone, 1, 10)).await;

    // limit_exceeded, per order.
    let capped = m
        .list(
            &m.shop,
            ListItem {
                limit_per_order: 2,
                ..listing("Capped", 5, 100)
            },
        )
        .await;
    m.refused(&m.alice, redeem(capped, 3, 5), "limit_exceeded")
        .await;
    m.ok(&m.alice, redeem(capped, 2, 5)).await;
    m.ok(&m.alice, redeem(capped, 2, 5)).await; // the per-order limit is per order

    // price_above_max: the price was raised after the member looked at it.
    let shown = item(srv, mug).await.price.0;
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            price: Some(Points(35)),
            ..no_change(mug)
        }),
    )
    .await;
    m.refused(&m.alice, redeem(mug, 1, shown), "price_above_max")
        .await;
    // A lower price is paid, not the maximum.
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            price: Some(Points(25)),
            ..no_change(mug)
        }),
    )
    .await;
    let o = m.ok(&m.alice, redeem(mug, 1, shown)).await.seq;
    assert_eq!(
        (order(srv, o).await.unit_price, order(srv, o).await.total),
        (Points(25), Points(25))
    );

    // out_of_stock.
    let rare = m.list(&m.shop, listing("Rare", 10, 1)).await;
    m.refused(&m.alice, redeem(rare, 2, 10), "out_of_stock")
        .await;
    let sold_out = m.list(&m.shop, listing("Sold out", 10, 0)).await;
    m.refused(&m.alice, redeem(sold_out, 1, 10), "out_of_stock")
        .await;

    // insufficient_funds: Carol holds 50; a key that never held points holds 0.
    let dear = m.list(&m.shop, listing("Dear", 60, 10)).await;
    m.refused(&m.carol, redeem(dear, 1, 60), "insufficient_funds")
        .await;
    m.refused(
        &Keypair::generate(),
        redeem(dear, 1, 60),
        "insufficient_funds",
    )
    .await;

    // not_authorized: another merchant's item or order; a member acting as a merchant.
    m.refused(
        &m.rival,
        Op::UpdateItem(UpdateItem {
            price: Some(Points(1)),
            ..no_change(mug)
        }),
        "not_authorized",
    )
    .await;
    m.refused(
        &m.alice,
        Op::ListItem(listing("Fake", 1, 1)),
        "not_authorized",
    )
    .await;
    m.refused(
        &m.alice,
        Op::UpdateItem(UpdateItem {
            price: Some(Points(1)),
            ..no_change(mug)
        }),
        "not_authorized",
    )
    .await;
    let open = m.ok(&m.bob, redeem(mug, 1, 25)).await.seq;
    m.refused(&m.rival, fulfill(open, ""), "not_authorized")
        .await;
    m.refused(&m.bob, fulfill(open, ""), "not_authorized").await;
    m.refused(&srv.issuer, fulfill(open, ""), "not_authorized")
        .await;
    m.refused(&m.rival, cancel(open, ""), "not_authorized")
        .await;
    m.refused(&m.alice, cancel(open, ""), "not_authorized")
        .await;

    // invalid_field.
    m.refused(&m.shop, Op::ListItem(listing("", 1, 1)), "invalid_field")
        .await;
    m.refused(
        &m.shop,
        Op::ListItem(listing(&"t".repeat(81), 1, 1)),
        "invalid_field",
    )
    .await;
    m.refused(
        &m.shop,
        Op::ListItem(listing("Tab\there", 1, 1)),
        "invalid_field",
    )
    .await;
    m.refused(
        &m.shop,
        Op::ListItem(ListItem {
            description: "d".repeat(281),
            ..listing("Long", 1, 1)
        }),
        "invalid_field",
    )
    .await;
    m.refused(
        &m.shop,
        Op::ListItem(ListItem {
            available_from_ms: 10,
            available_until_ms: Some(10),
            ..listing("Empty window", 1, 1)
        }),
        "invalid_field",
    )
    .await;
    m.refused(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            stock_delta: -1_000,
            ..no_change(mug)
        }),
        "invalid_field",
    )
    .await;
    m.refused(&m.shop, fulfill(open, &"r".repeat(65)), "invalid_field")
        .await;
    m.refused(&m.bob, cancel(open, &"r".repeat(65)), "invalid_field")
        .await;

    // merchant_suspended: a suspended merchant's items cannot be redeemed, and it signs
    // nothing in the mall until reactivated.
    let rival_item = m.list(&m.rival, listing("Rival mug", 10, 10)).await;
    let rival_order = m.ok(&m.alice, redeem(rival_item, 1, 10)).await.seq;
    m.ok(
        &srv.issuer,
        merchant_status_op(id(&m.rival), MerchantStatus::Suspended),
    )
    .await;
    m.refused(&m.alice, redeem(rival_item, 1, 10), "merchant_suspended")
        .await;
    m.refused(
        &m.rival,
        Op::ListItem(listing("More", 1, 1)),
        "merchant_suspended",
    )
    .await;
    m.refused(
        &m.rival,
        Op::UpdateItem(UpdateItem {
            stock_delta: 1,
            ..no_change(rival_item)
        }),
        "merchant_suspended",
    )
    .await;
    m.refused(&m.rival, fulfill(rival_order, ""), "merchant_suspended")
        .await;
    m.refused(&m.rival, cancel(rival_order, ""), "merchant_suspended")
        .await;
    m.refused(&m.rival, redeem(mug, 1, 25), "merchant_suspended")
        .await;
    // The member can still get their points back from a suspended merchant.
    let before = balance(srv, &id(&m.alice)).await;
    m.ok(&m.alice, cancel(rival_order, "merchant suspended"))
        .await;
    assert_eq!(balance(srv, &id(&m.alice)).await, before + 10);
    m.ok(
        &srv.issuer,
        merchant_status_op(id(&m.rival), MerchantStatus::Active),
    )
    .await;
    m.ok(&m.alice, redeem(rival_item, 1, 10)).await;
    m.assert_conserved().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_member_limit_counts_open_and_fulfilled_units_net_of_cancellations() {
    let m = Mall::new().await;
    let limited = m
        .list(
            &m.shop,
            ListItem {
                limit_per_member: 3,
                ..listing("Limited", 10, 100)
            },
        )
        .await;
    let o1 = m.ok(&m.alice, redeem(limited, 2, 10)).await.seq;
    m.refused(&m.alice, redeem(limited, 2, 10), "limit_exceeded")
        .await;
    let o2 = m.ok(&m.alice, redeem(limited, 1, 10)).await.seq;
    m.refused(&m.alice, redeem(limited, 1, 10), "limit_exceeded")
        .await;
    // Bob has his own allowance.
    m.ok(&m.bob, redeem(limited, 3, 10)).await;
    // A cancelled order gives its units back to the allowance.
    m.ok(&m.alice, cancel(o1, "")).await;
    let o3 = m.ok(&m.alice, redeem(limited, 2, 10)).await.seq;
    m.refused(&m.alice, redeem(limited, 1, 10), "limit_exceeded")
        .await;
    // A fulfilled order keeps counting.
    m.ok(&m.shop, fulfill(o2, "")).await;
    m.ok(&m.shop, fulfill(o3, "")).await;
    m.refused(&m.alice, redeem(limited, 1, 10), "limit_exceeded")
        .await;
    // Raising the limit lets her buy again.
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            limit_per_member: Some(4),
            ..no_change(limited)
        }),
    )
    .await;
    m.ok(&m.alice, redeem(limited, 1, 10)).await;
    let it = item(&m.srv, limited).await;
    assert_eq!((it.stock, it.units_redeemed), (100 - 7, 7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeem_checks_run_in_the_documented_order() {
    // ledger-spec/mall.md §5.3: each pair below fails two checks; the earlier one wins.
    let m = Mall::new().await;
    let srv = &m.srv;
    let later = client::now_ms() + 86_400_000;
    let everything_wrong = m
        .list(
            &m.shop,
            ListItem {
                active: false,
                available_from_ms: later,
                limit_per_order: 1,
                ..listing("Wrong", 500, 1)
            },
        )
        .await;
    // quantity 0 before not-the-merchant.
    m.refused(&m.shop, redeem(everything_wrong, 0, 1), "zero_amount")
        .await;
    // self before inactive.
    m.refused(&m.shop, redeem(everything_wrong, 5, 1), "self_transfer")
        .await;
    // inactive before window, limits, price, stock, funds.
    m.refused(&m.carol, redeem(everything_wrong, 5, 1), "item_inactive")
        .await;
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            active: Some(true),
            ..no_change(everything_wrong)
        }),
    )
    .await;
    // inactive before merchant suspended.
    m.ok(
        &srv.issuer,
        merchant_status_op(id(&m.shop), MerchantStatus::Suspended),
    )
    .await;
    m.refused(
        &m.carol,
        redeem(everything_wrong, 5, 1),
        "merchant_suspended",
    )
    .await;
    m.ok(
        &srv.issuer,
        merchant_status_op(id(&m.shop), MerchantStatus::Active),
    )
    .await;
    // window before limits.
    m.refused(&m.carol, redeem(everything_wrong, 5, 1), "not_available")
        .await;
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            available_from_ms: Some(0),
            ..no_change(everything_wrong)
        }),
    )
    .await;
    // per-order limit before price.
    m.refused(&m.carol, redeem(everything_wrong, 5, 1), "limit_exceeded")
        .await;
    // price before stock and funds.
    m.refused(&m.carol, redeem(everything_wrong, 1, 1), "price_above_max")
        .await;
    m.ok(
        &m.shop,
        Op::UpdateItem(UpdateItem {
            limit_per_order: Some(0),
            ..no_change(everything_wrong)
        }),
    )
    .await;
    // stock before funds.
    m.refused(&m.carol, redeem(everything_wrong, 2, 500), "out_of_stock")
        .await;
    m.refused(
        &m.carol,
        redeem(everything_wrong, 1, 500),
        "insufficient_funds",
    )
    .await;

    // Fulfil and cancel: unknown order, then authority, then suspension, then closed.
    let o = m.ok(&m.alice, redeem(everything_wrong, 1, 500)).await.seq;
    m.ok(&m.shop, fulfill(o, "")).await;
    m.refused(&m.rival, fulfill(o, ""), "not_authorized").await;
    m.ok(
        &srv.issuer,
        merchant_status_op(id(&m.shop), MerchantStatus::Suspended),
    )
    .await;
    m.refused(&m.shop, fulfill(o, ""), "merchant_suspended")
        .await;
    m.refused(&m.shop, cancel(o, ""), "merchant_suspended")
        .await;
    m.refused(&m.alice, cancel(o, ""), "order_closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_needs_the_merchant_to_hold_the_points() {
    // The refund of a cancelled order comes out of the merchant's balance; a merchant that
    // has given its float (and the redeemed points) away cannot cancel until it holds them.
    let m = Mall::new().await;
    let srv = &m.srv;
    let shop = id(&m.shop);
    let tv = m.list(&m.shop, listing("TV", 900, 1)).await;
    let o = m.ok(&m.alice, redeem(tv, 1, 900)).await.seq;
    let all = balance(srv, &shop).await;
    m.ok(&m.shop, transfer_op(id(&m.rival), all - 100)).await;
    m.refused(&m.alice, cancel(o, ""), "insufficient_funds")
        .await;
    m.ok(&m.rival, transfer_op(shop, 800)).await;
    m.ok(&m.alice, cancel(o, "")).await;
    assert_eq!(balance(srv, &id(&m.alice)).await, 1_000);
    assert_eq!(balance(srv, &shop).await, 0);
    m.assert_conserved().await;
}

// ---------------------------------------------------------------------------------------
// Lists, filters, cursors
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_and_order_lists_filter_and_page_through_everything_once() {
    let m = Mall::new().await;
    let srv = &m.srv;
    // 30 items over two merchants, prices 5..=150, every third one inactive.
    let mut listed: Vec<(u64, AccountId, u64, bool)> = Vec::new();
    let mut ops = Vec::new();
    for i in 0..30u64 {
        let key = if i % 2 == 0 { &m.shop } else { &m.rival };
        let price = 5 * (i + 1);
        let active = i % 3 != 0;
        ops.push(srv.sign(
            key,
            Op::ListItem(ListItem {
                active,
                ..listing(&format!("Item {i}"), price, 10)
            }),
        ));
        listed.push((0, id(key), price, active));
    }
    let results = srv.client.submit_batch(&ops).await.expect("batch");
    for (r, l) in results.iter().zip(listed.iter_mut()) {
        assert_eq!(r.status, "applied", "{:?}", r.problem);
        l.0 = r.receipt.as_ref().expect("receipt").seq;
    }

    type Listed = (u64, AccountId, u64, bool);
    type Filter<'a> = (String, Box<dyn Fn(&Listed) -> bool + 'a>);
    let filters: Vec<Filter<'_>> = vec![
        (String::new(), Box::new(|_| true)),
        (
            format!("merchant={}", id(&m.shop)),
            Box::new(|l| l.1 == id(&m.shop)),
        ),
        (
            format!("merchant={}", id(&m.rival)),
            Box::new(|l| l.1 == id(&m.rival)),
        ),
        ("active=true".into(), Box::new(|l| l.3)),
        ("active=false".into(), Box::new(|l| !l.3)),
        ("min_price=40".into(), Box::new(|l| l.2 >= 40)),
        ("max_price=40".into(), Box::new(|l| l.2 <= 40)),
        (
            "min_price=35&max_price=90".into(),
            Box::new(|l| (35..=90).contains(&l.2)),
        ),
        (
            format!(
                "merchant={}&active=true&min_price=20&max_price=120",
                id(&m.rival)
            ),
            Box::new(|l| l.1 == id(&m.rival) && l.3 && (20..=120).contains(&l.2)),
        ),
        ("min_price=1000".into(), Box::new(|_| false)),
    ];
    for (query, keep) in &filters {
        let want: Vec<u64> = listed.iter().filter(|l| keep(l)).map(|l| l.0).collect();
        for limit in [1, 4, 7, 1000] {
            let path = if query.is_empty() {
                "/v1/mall/items".to_string()
            } else {
                format!("/v1/mall/items?{query}")
            };
            let got = walk(srv, &path, limit, |i: &ItemRecord| i.item_id).await;
            assert_eq!(
                got.iter().map(|i| i.item_id).collect::<Vec<_>>(),
                want,
                "{query} limit {limit}"
            );
            for i in &got {
                let l = listed.iter().find(|l| l.0 == i.item_id).expect("listed");
                assert_eq!((i.merchant, i.price.0, i.active), (l.1, l.2, l.3));
            }
        }
    }
    // A cursor in the middle starts after it.
    let mid = listed[10].0;
    let page: Page<ItemRecord> = read(srv, &format!("/v1/mall/items?after={mid}&limit=3"))
        .await
        .expect("page");
    assert_eq!(
        page.items.iter().map(|i| i.item_id).collect::<Vec<_>>(),
        listed[11..14].iter().map(|l| l.0).collect::<Vec<_>>()
    );

    // Orders: Alice and Bob each redeem from several items; both lists page through.
    let actives: Vec<&(u64, AccountId, u64, bool)> =
        listed.iter().filter(|l| l.3 && l.2 <= 60).collect();
    let mut by_member: BTreeMap<AccountId, Vec<u64>> = BTreeMap::new();
    let mut by_merchant: BTreeMap<AccountId, Vec<u64>> = BTreeMap::new();
    for (n, l) in actives.iter().enumerate() {
        let who = if n % 2 == 0 { &m.alice } else { &m.bob };
        let o = m.ok(who, redeem(l.0, 1, l.2)).await.seq;
        by_member.entry(id(who)).or_default().push(o);
        by_merchant.entry(l.1).or_default().push(o);
    }
    let first_alice = by_member[&id(&m.alice)][0];
    m.ok(&m.alice, cancel(first_alice, "")).await;
    for (who, want) in &by_member {
        for limit in [1, 2, 1000] {
            let got = walk(
                srv,
                &format!("/v1/wallets/{who}/orders"),
                limit,
                |o: &OrderRecord| o.order_id,
            )
            .await;
            assert_eq!(&got.iter().map(|o| o.order_id).collect::<Vec<_>>(), want);
            assert!(got.iter().all(|o| o.member == *who));
        }
    }
    let open: Vec<OrderRecord> = walk(
        srv,
        &format!("/v1/wallets/{}/orders?status=open", id(&m.alice)),
        1,
        |o: &OrderRecord| o.order_id,
    )
    .await;
    assert_eq!(
        open.iter().map(|o| o.order_id).collect::<Vec<_>>(),
        by_member[&id(&m.alice)][1..].to_vec()
    );
    for (merchant, want) in &by_merchant {
        let got = walk(
            srv,
            &format!("/v1/merchants/{merchant}/orders"),
            3,
            |o: &OrderRecord| o.order_id,
        )
        .await;
        assert_eq!(&got.iter().map(|o| o.order_id).collect::<Vec<_>>(), want);
    }
    // Unknown ids are 404 problems.
    let e = read::<ItemRecord>(srv, "/v1/mall/items/999999")
        .await
        .expect_err("404");
    assert_eq!(e.code(), Some("unknown_item"));
    let e = read::<OrderRecord>(srv, "/v1/mall/orders/999999")
        .await
        .expect_err("404");
    assert_eq!(e.code(), Some("unknown_order"));
}

// ---------------------------------------------------------------------------------------
// The race
// ---------------------------------------------------------------------------------------

const RACERS: usize = 200;
const UNITS: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_members_race_for_fifty_units() {
    let srv = TestServer::start().await;
    let shop = Keypair::generate();
    srv.register_merchant(&shop, "Flash Sale").await;
    srv.mint(&id(&shop), 100 * RACERS as u64).await;
    let members: Vec<Keypair> = (0..RACERS).map(|_| Keypair::generate()).collect();
    let earns: Vec<SignedOp> = members
        .iter()
        .enumerate()
        .map(|(i, k)| srv.sign(&shop, earn_op(id(k), 100, &format!("fund-{i}"))))
        .collect();
    for r in srv
        .client
        .submit_batch(&earns)
        .await
        .expect("funding batch")
    {
        assert_eq!(r.status, "applied", "{:?}", r.problem);
    }
    let sale = srv
        .ok(&shop, Op::ListItem(listing("Flash", 10, UNITS)))
        .await
        .seq;

    // Every member signs one redeem; all are submitted at once, each over its own client.
    let barrier = Arc::new(Barrier::new(RACERS));
    let url = srv.url();
    let mut tasks = Vec::new();
    for k in &members {
        let op = srv.sign(k, redeem(sale, 1, 10));
        let barrier = barrier.clone();
        let client = client_no_retry(&url);
        tasks.push(tokio::spawn(async move {
            client.health().await.expect("healthz");
            barrier.wait().await;
            client.submit(&op).await
        }));
    }
    let mut winners = BTreeSet::new();
    let mut losers = BTreeSet::new();
    let mut order_ids = BTreeSet::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(r) => {
                winners.insert(i);
                order_ids.insert(r.seq);
            }
            Err(e) => {
                assert_eq!(e.code(), Some("out_of_stock"), "member {i}: {e}");
                losers.insert(i);
            }
        }
    }
    assert_eq!(
        winners.len() as u64,
        UNITS,
        "exactly as many orders as units"
    );
    assert_eq!(losers.len(), RACERS - UNITS as usize);

    let it = item(&srv, sale).await;
    assert_eq!((it.stock, it.units_redeemed), (0, UNITS));
    let orders = walk(
        &srv,
        &format!("/v1/merchants/{}/orders", id(&shop)),
        17,
        |o: &OrderRecord| o.order_id,
    )
    .await;
    assert_eq!(
        orders.iter().map(|o| o.order_id).collect::<BTreeSet<_>>(),
        order_ids
    );
    assert!(orders
        .iter()
        .all(|o| o.status == OrderStatus::Open && o.quantity == 1 && o.total == Points(10)));
    let winner_keys: BTreeSet<AccountId> = winners.iter().map(|&i| id(&members[i])).collect();
    assert_eq!(
        orders.iter().map(|o| o.member).collect::<BTreeSet<_>>(),
        winner_keys
    );

    let mut sum = 0u64;
    for (i, k) in members.iter().enumerate() {
        let b = balance(&srv, &id(k)).await;
        assert_eq!(b, if winners.contains(&i) { 90 } else { 100 }, "member {i}");
        sum += b;
    }
    let float = balance(&srv, &id(&shop)).await;
    assert_eq!(float, 10 * UNITS);
    sum += float + balance(&srv, &srv.issuer_id()).await;
    let info = srv.info().await;
    assert_eq!(sum, info.supply, "Σ balances = supply");
    assert_eq!(info.supply, 100 * RACERS as u64);
    assert_eq!(info.minted - info.burned, info.supply);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_suspended_merchant_cannot_cancel() {
    // A suspended merchant was refused FulfillOrder but could still sign CancelOrder, though
    // a suspended merchant is "refused for every op it signs". The member may still cancel.
    let m = Mall::new().await;
    let srv = &m.srv;
    let mug = m.list(&m.shop, listing("Mug", 30, 5)).await;
    let o1 = m.ok(&m.alice, redeem(mug, 1, 30)).await.seq;
    let o2 = m.ok(&m.bob, redeem(mug, 1, 30)).await.seq;
    m.ok(
        &srv.issuer,
        merchant_status_op(id(&m.shop), MerchantStatus::Suspended),
    )
    .await;
    m.refused(&m.shop, cancel(o1, "suspended"), "merchant_suspended")
        .await;
    m.ok(&m.alice, cancel(o1, "")).await;
    assert_eq!(balance(srv, &id(&m.alice)).await, 1_000);
    m.ok(
        &srv.issuer,
        merchant_status_op(id(&m.shop), MerchantStatus::Active),
    )
    .await;
    m.ok(&m.shop, cancel(o2, "reactivated")).await;
    assert_eq!(balance(srv, &id(&m.bob)).await, 1_000);
}

#[test]
fn the_spec_byte_examples() {
    // ledger-spec/mall.md §3: the op bytes (tag and body) of four mall ops.
    use points_ledger::codec;
    let hex_of = |op: &Op| hex::encode(codec::encode_record(op));
    let compact = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(
        hex_of(&redeem(5, 3, 37)),
        compact("0a000000 0500000000000000 0300000000000000 2500000000000000")
    );
    assert_eq!(
        hex_of(&cancel(7, "")),
        compact("0c000000 0700000000000000 0000000000000000")
    );
    assert_eq!(
        hex_of(&Op::UpdateItem(UpdateItem {
            price: Some(Points(150)),
            stock_delta: 5,
            available_until_ms: Some(None),
            ..no_change(5)
        })),
        compact(
            "09000000 0500000000000000 00 00 01 9600000000000000 0500000000000000 \
             00 00 00 0100 00"
        )
    );
    assert_eq!(
        hex_of(&Op::UpdateItem(UpdateItem {
            stock_delta: -2,
            ..no_change(5)
        })),
        compact("09000000 0500000000000000 00 00 00 feffffffffffffff 00 00 00 00 00")
    );
}
