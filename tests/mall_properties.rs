//! Property tests of the mall rules: random interleavings of ListItem, UpdateItem, Redeem,
//! FulfillOrder, CancelOrder and merchant suspensions, signed by deterministic keys and
//! applied straight through `rules::apply` (no server, no store), checked after every op
//! against a small independent model:
//!
//! - a refused op changes nothing (state and op-id index);
//! - points are conserved (`State::check_invariants`), and every balance equals its
//!   funding minus what it paid for live orders plus what it was paid for them;
//! - stock never goes "below zero": for every item, stock + units in open or fulfilled
//!   orders = initial stock + restocks − withdrawals;
//! - the units a member holds are exactly those of their open or fulfilled orders;
//! - an order reaches at most one terminal state, keeps it, and is refunded at most once;
//! - replaying the applied entries from scratch gives the same state.
//!
//! Every failing case is replayable from proptest's seed (`PROPTEST_CASES`, the
//! regressions file).

use std::collections::{BTreeMap, HashMap};

use points_ledger::client::sign_op;
use points_ledger::crypto::Keypair;
use points_ledger::mall::OrderStatus;
use points_ledger::op::*;
use points_ledger::rules::{self, Ctx, OpIdRecord, Outcome, Rejection, State, VerifiedOp};
use proptest::prelude::*;

const CHAIN: &str = "test.points.local/mall-properties";
const MERCHANTS: usize = 2;
const MEMBERS: usize = 3;
const FLOAT: u64 = 10_000;
const FUNDING: [u64; MEMBERS] = [400, 150, 30];
const T0: u64 = 1_700_000_000_000;

fn key(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}

/// Party `i`: 0..MERCHANTS are merchants, then the members, then the issuer.
fn party(i: usize) -> Keypair {
    key(10 + i as u8)
}

fn issuer() -> Keypair {
    key(1)
}

type OpIds = HashMap<(AccountId, OpId), OpIdRecord>;

/// The ledger under test plus the log of what was applied.
struct Ledger {
    state: State,
    op_ids: OpIds,
    seq: u64,
    next_op_id: u128,
    log: Vec<(Ctx, VerifiedOp)>,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            state: State::new(),
            op_ids: HashMap::new(),
            seq: 0,
            next_op_id: 1,
            log: Vec::new(),
        }
    }

    /// Signs `op` with `key` and applies it at the next seq (timestamps grow by 1 ms).
    fn apply(&mut self, key: &Keypair, op: Op) -> Result<u64, Rejection> {
        let signed = sign_op(key, CHAIN, OpId(self.next_op_id), u64::MAX, op);
        self.next_op_id += 1;
        let verified = VerifiedOp::verify(signed).expect("our own signature verifies");
        let ctx = Ctx {
            seq: self.seq,
            timestamp_ms: T0 + self.seq,
        };
        match rules::apply(&mut self.state, &mut self.op_ids, ctx, &verified)? {
            Outcome::Applied(_) => {}
            Outcome::Duplicate { .. } => panic!("fresh op ids are never duplicates"),
        }
        self.log.push((ctx, verified));
        self.seq += 1;
        Ok(ctx.seq)
    }

    fn ok(&mut self, key: &Keypair, op: Op) -> u64 {
        let kind = op.kind();
        self.apply(key, op)
            .unwrap_or_else(|r| panic!("{kind} refused: {}", r.code()))
    }
}

/// Genesis, two merchants (1/1 rates) with a float each, three funded members.
fn setup() -> Ledger {
    let mut l = Ledger::new();
    l.ok(
        &issuer(),
        Op::Genesis(Genesis {
            currency: "CNY".into(),
            minor_unit_digits: 2,
            checkpoint_key: AccountId(key(2).public_key()),
        }),
    );
    let one = Rate {
        minor_units: 1,
        per_points: 1,
    };
    for m in 0..MERCHANTS {
        l.ok(
            &issuer(),
            Op::RegisterMerchant(RegisterMerchant {
                merchant: AccountId(party(m).public_key()),
                name: format!("Merchant {m}"),
                issue_rate: one,
                redeem_rate: one,
            }),
        );
        l.ok(
            &issuer(),
            Op::Mint(Mint {
                to: AccountId(party(m).public_key()),
                amount: Points(FLOAT),
                memo: Bytes::default(),
                expires_at_ms: None,
            }),
        );
    }
    for (i, amount) in FUNDING.iter().enumerate() {
        l.ok(
            &party(i % MERCHANTS),
            Op::Earn(Earn {
                member: AccountId(party(MERCHANTS + i).public_key()),
                amount: Points(*amount),
                reason: EarnReason::Purchase,
                reference: Bytes::default(),
                expires_at_ms: None,
                pending: None,
            }),
        );
    }
    l
}

/// A signer index at or above this means "the party whose role fits": the item's merchant
/// for UpdateItem and FulfillOrder; for CancelOrder the order's merchant (`PROPER`) or
/// member (`PROPER + 1`). Below it, a signer is `party(signer)`, right or wrong.
const PROPER: usize = 100;

/// One step of a scenario. Indexes pick among what exists (modulo), so every step is
/// meaningful whatever came before; a few deliberately name nothing.
#[derive(Debug, Clone)]
enum Action {
    List {
        merchant: usize,
        price: u64,
        stock: u64,
        limit_per_order: u64,
        limit_per_member: u64,
        active: bool,
    },
    Update {
        signer: usize,
        item: usize,
        price: Option<u64>,
        stock_delta: i64,
        limit_per_member: Option<u64>,
        active: Option<bool>,
    },
    Redeem {
        signer: usize,
        item: usize,
        quantity: u64,
        max_unit_price: u64,
    },
    Fulfill {
        signer: usize,
        order: usize,
    },
    Cancel {
        signer: usize,
        order: usize,
    },
    Suspend {
        merchant: usize,
        suspended: bool,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let parties = MERCHANTS + MEMBERS;
    prop_oneof![
        2 => (0..MERCHANTS, 1..60u64, 0..12u64, 0..4u64, 0..6u64, prop::bool::weighted(0.85))
            .prop_map(|(merchant, price, stock, limit_per_order, limit_per_member, active)| {
                Action::List { merchant, price, stock, limit_per_order, limit_per_member, active }
            }),
        2 => (
            prop_oneof![1 => 0..parties, 2 => Just(PROPER)],
            0..16usize,
            prop::option::weighted(0.3, 1..60u64),
            -8..8i64,
            prop::option::weighted(0.2, 0..6u64),
            prop::option::weighted(0.2, prop::bool::weighted(0.7)),
        )
            .prop_map(|(signer, item, price, stock_delta, limit_per_member, active)| {
                Action::Update { signer, item, price, stock_delta, limit_per_member, active }
            }),
        6 => (
            prop_oneof![4 => MERCHANTS..parties, 1 => 0..MERCHANTS],
            0..16usize,
            prop_oneof![1 => Just(0u64), 7 => 1..5u64],
            0..70u64,
        )
            .prop_map(
            |(signer, item, quantity, max_unit_price)| Action::Redeem {
                signer,
                item,
                quantity,
                max_unit_price
            }
        ),
        2 => (prop_oneof![1 => 0..parties, 3 => Just(PROPER)], 0..24usize)
            .prop_map(|(signer, order)| Action::Fulfill { signer, order }),
        3 => (prop_oneof![1 => 0..parties, 3 => PROPER..PROPER + 2], 0..24usize)
            .prop_map(|(signer, order)| Action::Cancel { signer, order }),
        1 => (0..MERCHANTS, prop::bool::weighted(0.3))
            .prop_map(|(merchant, suspended)| Action::Suspend { merchant, suspended }),
    ]
}

/// What the model remembers of an item.
#[derive(Debug, Clone)]
struct ModelItem {
    id: u64,
    /// Initial stock + every applied stock_delta.
    net_stock_in: i128,
}

/// What the model remembers of an order.
#[derive(Debug, Clone)]
struct ModelOrder {
    id: u64,
    item: u64,
    merchant: AccountId,
    member: AccountId,
    quantity: u64,
    total: u64,
    /// Terminal status and the seq that set it.
    closed: Option<(OrderStatus, u64)>,
    refunds: u32,
}

/// The party index of an account.
fn index_of(account: &AccountId) -> usize {
    ids()
        .iter()
        .position(|a| a == account)
        .expect("one of the parties")
}

fn ids() -> Vec<AccountId> {
    (0..MERCHANTS + MEMBERS)
        .map(|i| AccountId(party(i).public_key()))
        .collect()
}

/// Checks every property of the module doc against the model.
fn check(l: &Ledger, items: &[ModelItem], orders: &[ModelOrder]) -> Result<(), TestCaseError> {
    l.state
        .check_invariants()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let accounts = ids();
    // Balances: funding − paid for live orders + received for live orders.
    for (i, a) in accounts.iter().enumerate() {
        let funded: i128 = if i < MERCHANTS {
            let awarded: u64 = FUNDING
                .iter()
                .enumerate()
                .filter(|(j, _)| j % MERCHANTS == i)
                .map(|(_, f)| *f)
                .sum();
            i128::from(FLOAT - awarded)
        } else {
            i128::from(FUNDING[i - MERCHANTS])
        };
        let live = |o: &&ModelOrder| o.closed.is_none_or(|(s, _)| s == OrderStatus::Fulfilled);
        let paid: i128 = orders
            .iter()
            .filter(live)
            .filter(|o| o.member == *a)
            .map(|o| i128::from(o.total))
            .sum();
        let received: i128 = orders
            .iter()
            .filter(live)
            .filter(|o| o.merchant == *a)
            .map(|o| i128::from(o.total))
            .sum();
        prop_assert_eq!(
            i128::from(l.state.balance(a)),
            funded - paid + received,
            "balance of party {}",
            i
        );
    }
    // Stock accounting, per item.
    for it in items {
        let rec = l.state.item(it.id).expect("a listed item exists");
        let live_units: u64 = orders
            .iter()
            .filter(|o| {
                o.item == it.id && o.closed.is_none_or(|(s, _)| s != OrderStatus::Cancelled)
            })
            .map(|o| o.quantity)
            .sum();
        prop_assert_eq!(rec.units_redeemed, live_units, "units of item {}", it.id);
        prop_assert_eq!(
            i128::from(rec.stock) + i128::from(rec.units_redeemed),
            it.net_stock_in,
            "stock + units of item {} = initial + restocks − withdrawals",
            it.id
        );
        for m in &accounts {
            let held: u64 = orders
                .iter()
                .filter(|o| {
                    o.item == it.id
                        && o.member == *m
                        && o.closed.is_none_or(|(s, _)| s != OrderStatus::Cancelled)
                })
                .map(|o| o.quantity)
                .sum();
            prop_assert_eq!(l.state.held(m, it.id), held);
        }
    }
    // Orders: the recorded status is the model's, terminal states never change.
    for o in orders {
        let rec = l.state.order(o.id).expect("an order exists");
        prop_assert!(o.refunds <= 1, "order {} refunded twice", o.id);
        match o.closed {
            None => {
                prop_assert_eq!(rec.status, OrderStatus::Open);
                prop_assert_eq!(rec.closed_seq, None);
            }
            Some((status, seq)) => {
                prop_assert_eq!(rec.status, status);
                prop_assert_eq!(rec.closed_seq, Some(seq));
                prop_assert_eq!(
                    u32::from(status == OrderStatus::Cancelled),
                    o.refunds,
                    "a cancelled order is refunded exactly once"
                );
            }
        }
        prop_assert_eq!(rec.total.0, o.total);
        prop_assert_eq!(rec.quantity, o.quantity);
    }
    Ok(())
}

/// Runs a scenario; returns how often each outcome (`applied` or a refusal code) occurred.
fn run(actions: Vec<Action>) -> Result<BTreeMap<&'static str, u32>, TestCaseError> {
    let mut l = setup();
    let accounts = ids();
    let mut items: Vec<ModelItem> = Vec::new();
    let mut orders: Vec<ModelOrder> = Vec::new();
    // Each merchant starts with one plain item, so early redeems have something to buy.
    for m in 0..MERCHANTS {
        let seq = l.ok(
            &party(m),
            Op::ListItem(ListItem {
                title: "Starter".into(),
                description: String::new(),
                price: Points(10),
                stock: 10,
                limit_per_order: 0,
                limit_per_member: 0,
                available_from_ms: 0,
                available_until_ms: None,
                active: true,
            }),
        );
        items.push(ModelItem {
            id: seq,
            net_stock_in: 10,
        });
    }
    let mut codes: BTreeMap<&'static str, u32> = BTreeMap::new();
    for action in actions {
        let before = (l.state.clone(), l.op_ids.clone());
        let pick_item = |i: usize| -> u64 {
            // One index in eight names no item at all.
            if items.is_empty() || i % 8 == 7 {
                999_999
            } else {
                items[i % items.len()].id
            }
        };
        let pick_order = |i: usize| -> Option<usize> {
            (!orders.is_empty() && i % 8 != 7).then(|| i % orders.len())
        };
        let result = match &action {
            Action::List {
                merchant,
                price,
                stock,
                limit_per_order,
                limit_per_member,
                active,
            } => {
                let r = l.apply(
                    &party(*merchant),
                    Op::ListItem(ListItem {
                        title: "Item".into(),
                        description: String::new(),
                        price: Points(*price),
                        stock: *stock,
                        limit_per_order: *limit_per_order,
                        limit_per_member: *limit_per_member,
                        available_from_ms: 0,
                        available_until_ms: None,
                        active: *active,
                    }),
                );
                if let Ok(seq) = r {
                    items.push(ModelItem {
                        id: seq,
                        net_stock_in: i128::from(*stock),
                    });
                }
                r.map(|_| ())
            }
            Action::Update {
                signer,
                item,
                price,
                stock_delta,
                limit_per_member,
                active,
            } => {
                let item_id = pick_item(*item);
                let signer = if *signer >= PROPER {
                    before.0.item(item_id).map_or(0, |i| index_of(&i.merchant))
                } else {
                    *signer
                };
                let r = l.apply(
                    &party(signer),
                    Op::UpdateItem(UpdateItem {
                        item_id,
                        title: None,
                        description: None,
                        price: price.map(Points),
                        stock_delta: *stock_delta,
                        limit_per_order: None,
                        limit_per_member: *limit_per_member,
                        available_from_ms: None,
                        available_until_ms: None,
                        active: *active,
                    }),
                );
                if r.is_ok() {
                    let it = items.iter_mut().find(|i| i.id == item_id).expect("known");
                    it.net_stock_in += i128::from(*stock_delta);
                }
                if r == Err(Rejection::InvalidField("stock_delta")) {
                    let stock = before.0.item(item_id).expect("exists").stock;
                    prop_assert!(*stock_delta < 0 && stock_delta.unsigned_abs() > stock);
                }
                r.map(|_| ())
            }
            Action::Redeem {
                signer,
                item,
                quantity,
                max_unit_price,
            } => {
                let item_id = pick_item(*item);
                let r = l.apply(
                    &party(*signer),
                    Op::Redeem(Redeem {
                        item_id,
                        quantity: *quantity,
                        max_unit_price: Points(*max_unit_price),
                    }),
                );
                let old = before.0.item(item_id);
                match r {
                    Ok(seq) => {
                        let old = old.expect("redeemed an existing item");
                        prop_assert!(old.active && old.price.0 <= *max_unit_price);
                        prop_assert!(old.stock >= *quantity && *quantity > 0);
                        prop_assert!(old.limit_per_order == 0 || *quantity <= old.limit_per_order);
                        let held = l.state.held(&accounts[*signer], item_id);
                        prop_assert!(old.limit_per_member == 0 || held <= old.limit_per_member);
                        orders.push(ModelOrder {
                            id: seq,
                            item: item_id,
                            merchant: old.merchant,
                            member: accounts[*signer],
                            quantity: *quantity,
                            total: old.price.0 * quantity,
                            closed: None,
                            refunds: 0,
                        });
                    }
                    Err(Rejection::OutOfStock) => {
                        prop_assert!(old.expect("exists").stock < *quantity);
                    }
                    Err(Rejection::PriceAboveMax) => {
                        prop_assert!(old.expect("exists").price.0 > *max_unit_price);
                    }
                    Err(Rejection::InsufficientFunds) => {
                        let old = old.expect("exists");
                        prop_assert!(before.0.balance(&accounts[*signer]) < old.price.0 * quantity);
                    }
                    Err(_) => {}
                }
                r.map(|_| ())
            }
            Action::Fulfill { signer, order } | Action::Cancel { signer, order } => {
                let is_cancel = matches!(action, Action::Cancel { .. });
                let idx = pick_order(*order);
                let order_id = idx.map_or(999_999, |i| orders[i].id);
                let op = if is_cancel {
                    Op::CancelOrder(CancelOrder {
                        order_id,
                        reason: Bytes::default(),
                    })
                } else {
                    Op::FulfillOrder(FulfillOrder {
                        order_id,
                        reference: Bytes::default(),
                    })
                };
                let was_closed = idx.is_some_and(|i| orders[i].closed.is_some());
                let signer = match (idx, *signer) {
                    (Some(i), PROPER) => index_of(&orders[i].merchant),
                    (Some(i), s) if s > PROPER => index_of(&orders[i].member),
                    (None, s) if s >= PROPER => 0,
                    (_, s) => s,
                };
                let r = l.apply(&party(signer), op);
                if was_closed {
                    prop_assert!(r.is_err(), "a closed order was closed again");
                }
                if let (Ok(seq), Some(i)) = (r, idx) {
                    let o = &mut orders[i];
                    if is_cancel {
                        o.refunds += 1;
                        o.closed = Some((OrderStatus::Cancelled, seq));
                        let m = before.0.balance(&o.member);
                        prop_assert_eq!(l.state.balance(&o.member), m + o.total, "exact refund");
                    } else {
                        prop_assert_eq!(accounts[signer], o.merchant);
                        o.closed = Some((OrderStatus::Fulfilled, seq));
                    }
                }
                r.map(|_| ())
            }
            Action::Suspend {
                merchant,
                suspended,
            } => l
                .apply(
                    &issuer(),
                    Op::UpdateMerchant(UpdateMerchant {
                        merchant: accounts[*merchant],
                        name: None,
                        issue_rate: None,
                        redeem_rate: None,
                        status: Some(if *suspended {
                            MerchantStatus::Suspended
                        } else {
                            MerchantStatus::Active
                        }),
                    }),
                )
                .map(|_| ()),
        };
        match result {
            Ok(()) => *codes.entry("applied").or_default() += 1,
            Err(r) => {
                *codes.entry(r.code()).or_default() += 1;
                prop_assert!(
                    l.state == before.0 && l.op_ids == before.1,
                    "refused `{}` changed the state ({:?})",
                    r.code(),
                    action
                );
            }
        }
        check(&l, &items, &orders)?;
    }
    // Replaying the applied log gives the same state.
    let mut replayed = State::new();
    let mut op_ids: OpIds = HashMap::new();
    for (ctx, v) in &l.log {
        rules::apply(&mut replayed, &mut op_ids, *ctx, v)
            .map_err(|r| TestCaseError::fail(format!("replay refused {}", r.code())))?;
    }
    prop_assert!(replayed == l.state, "replay gives another state");
    prop_assert!(op_ids == l.op_ids);
    Ok(codes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_mall_interleavings_keep_every_invariant(
        actions in prop::collection::vec(action(), 1..80)
    ) {
        run(actions)?;
    }
}

/// A hand-written interleaving that hits every terminal path at least once, so the
/// properties above are known to see each kind of step.
#[test]
fn a_fixed_interleaving_exercises_every_path() {
    use Action::*;
    let actions = vec![
        List {
            merchant: 0,
            price: 10,
            stock: 5,
            limit_per_order: 2,
            limit_per_member: 3,
            active: true,
        },
        Redeem {
            signer: 2,
            item: 2,
            quantity: 2,
            max_unit_price: 10,
        },
        Redeem {
            signer: 2,
            item: 2,
            quantity: 2,
            max_unit_price: 10,
        }, // limit_exceeded
        Redeem {
            signer: 3,
            item: 2,
            quantity: 2,
            max_unit_price: 10,
        },
        Redeem {
            signer: 4,
            item: 2,
            quantity: 2,
            max_unit_price: 10,
        }, // out_of_stock (1 left)
        Fulfill {
            signer: 0,
            order: 0,
        },
        Fulfill {
            signer: 0,
            order: 0,
        }, // order_closed
        Cancel {
            signer: 3,
            order: 1,
        },
        Cancel {
            signer: 0,
            order: 1,
        }, // order_closed: no second refund
        Update {
            signer: 0,
            item: 2,
            price: Some(20),
            stock_delta: -2,
            limit_per_member: None,
            active: None,
        },
        Update {
            signer: 0,
            item: 2,
            price: None,
            stock_delta: -5,
            limit_per_member: None,
            active: None,
        },
        Update {
            signer: 1,
            item: 2,
            price: None,
            stock_delta: 4,
            limit_per_member: None,
            active: None,
        },
        Redeem {
            signer: 2,
            item: 2,
            quantity: 1,
            max_unit_price: 10,
        }, // price_above_max
        Redeem {
            signer: 2,
            item: 2,
            quantity: 1,
            max_unit_price: 20,
        },
        Suspend {
            merchant: 0,
            suspended: true,
        },
        Cancel {
            signer: 0,
            order: 2,
        }, // merchant_suspended
        Cancel {
            signer: 2,
            order: 2,
        }, // the member still can
        Suspend {
            merchant: 0,
            suspended: false,
        },
        Redeem {
            signer: 0,
            item: 2,
            quantity: 1,
            max_unit_price: 20,
        }, // self_transfer
    ];
    let codes = run(actions).expect("every property holds");
    let want: BTreeMap<&str, u32> = [
        ("applied", 10),
        ("limit_exceeded", 1),
        ("out_of_stock", 1),
        ("order_closed", 2),
        ("invalid_field", 1),
        ("not_authorized", 1),
        ("price_above_max", 1),
        ("merchant_suspended", 1),
        ("self_transfer", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(codes, want);
}
