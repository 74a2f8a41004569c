//! Property tests of the loyalty rules (`ledger-spec/loyalty.md`): random interleavings of
//! expiring mints and awards, pending awards (timed and until confirmed), confirmations,
//! reversals, transfers, burns, redemptions and their cancellation, Expire ops (exact and
//! wrong) and the passing of time, signed by deterministic keys and applied straight through
//! `rules::apply`. After every op:
//!
//! - a refused op changes nothing (state and op-id index);
//! - supply is conserved: it moves only by the amounts of applied Mints, Burns and Expires,
//!   and `supply = Σ balances = minted − burned` (`State::check_invariants`);
//! - for every account `Σ lots + pending = balance`, and nothing spendable has expired;
//! - an award's `returned + unrecovered` is its amount once reversed, and a reversal never
//!   takes more than the member could spend;
//! - an exact Expire leaves no lot expired by its `as_of_ms`;
//! - replaying the applied entries from scratch gives the same state (lazy releases
//!   included).

use std::collections::HashMap;

use points_ledger::client::sign_op;
use points_ledger::crypto::Keypair;
use points_ledger::mall::OrderStatus;
use points_ledger::op::*;
use points_ledger::rules::{self, Ctx, OpIdRecord, Outcome, State, VerifiedOp};
use proptest::prelude::*;

const CHAIN: &str = "test.points.local/loyalty-properties";
const MERCHANTS: usize = 2;
const MEMBERS: usize = 4;
const T0: u64 = 1_700_000_000_000;
const SECOND: u64 = 1_000;

fn key(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}

fn issuer() -> Keypair {
    key(1)
}

/// Party `i`: 0..MERCHANTS are merchants, then the members.
fn party(i: usize) -> Keypair {
    key(20 + i as u8)
}

fn pid(i: usize) -> AccountId {
    AccountId(party(i).public_key())
}

fn member(i: usize) -> usize {
    MERCHANTS + i % MEMBERS
}

type OpIds = HashMap<(AccountId, OpId), OpIdRecord>;

struct Ledger {
    state: State,
    op_ids: OpIds,
    seq: u64,
    now: u64,
    next_op_id: u128,
    log: Vec<(Ctx, VerifiedOp)>,
    supply: u64,
    earns: Vec<u64>,
    orders: Vec<u64>,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            state: State::new(),
            op_ids: HashMap::new(),
            seq: 0,
            now: T0,
            next_op_id: 1,
            log: Vec::new(),
            supply: 0,
            earns: Vec::new(),
            orders: Vec::new(),
        }
    }

    /// Applies `op` signed by `signer`; checks a refusal changed nothing.
    fn apply(&mut self, signer: &Keypair, op: Op) -> Option<u64> {
        self.next_op_id += 1;
        let signed = sign_op(signer, CHAIN, OpId(self.next_op_id), u64::MAX, op);
        let verified = VerifiedOp::verify(signed).expect("correctly signed");
        let ctx = Ctx {
            seq: self.seq,
            timestamp_ms: self.now,
        };
        let before = (self.state.clone(), self.op_ids.clone());
        match rules::apply(&mut self.state, &mut self.op_ids, ctx, &verified) {
            Ok(Outcome::Applied(_)) => {
                self.log.push((ctx, verified));
                self.seq += 1;
                Some(ctx.seq)
            }
            Ok(Outcome::Duplicate { .. }) => panic!("fresh op ids are never duplicates"),
            Err(_) => {
                assert!(
                    before.0 == self.state && before.1 == self.op_ids,
                    "a refused op changed the state"
                );
                None
            }
        }
    }

    fn must(&mut self, signer: &Keypair, op: Op) -> u64 {
        let kind = op.kind();
        self.apply(signer, op)
            .unwrap_or_else(|| panic!("setup op {kind} refused"))
    }
}

#[derive(Debug, Clone)]
enum Act {
    Tick(u64),
    Mint {
        to: usize,
        amount: u64,
        expiry: Option<u64>,
    },
    Earn {
        merchant: usize,
        member: usize,
        amount: u64,
        expiry: Option<u64>,
        pending: u8,
        release: u64,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
    },
    Burn {
        from: usize,
        amount: u64,
    },
    Confirm {
        wrong: bool,
        pick: usize,
    },
    Reverse {
        wrong: bool,
        pick: usize,
    },
    Expire {
        account: usize,
        back: u64,
        exact: bool,
        off: u64,
    },
    Redeem {
        member: usize,
        quantity: u64,
    },
    Cancel {
        pick: usize,
        by_member: bool,
    },
    Fulfill {
        pick: usize,
    },
}

fn act() -> impl Strategy<Value = Act> {
    let parties = MERCHANTS + MEMBERS;
    prop_oneof![
        (0u64..20).prop_map(|s| Act::Tick(s * SECOND)),
        (0..parties, 1u64..400, proptest::option::of(1u64..15))
            .prop_map(|(to, amount, expiry)| { Act::Mint { to, amount, expiry } }),
        (
            0..MERCHANTS,
            0..MEMBERS,
            1u64..300,
            proptest::option::of(1u64..15),
            0u8..3,
            1u64..12
        )
            .prop_map(
                |(merchant, member, amount, expiry, pending, release)| Act::Earn {
                    merchant,
                    member,
                    amount,
                    expiry,
                    pending,
                    release,
                }
            ),
        (0..parties, 0..parties, 1u64..300).prop_map(|(from, to, amount)| Act::Transfer {
            from,
            to,
            amount
        }),
        (0..parties, 1u64..200).prop_map(|(from, amount)| Act::Burn { from, amount }),
        (0u8..4, 0usize..64).prop_map(|(w, pick)| Act::Confirm {
            wrong: w == 0,
            pick
        }),
        (0u8..4, 0usize..64).prop_map(|(w, pick)| Act::Reverse {
            wrong: w == 0,
            pick
        }),
        (0..parties + MEMBERS, 0u64..5, any::<bool>(), 0u64..3).prop_map(
            |(a, back, exact, off)| {
                // Members twice as often: they are the ones with expiring lots.
                let account = if a < MERCHANTS + MEMBERS {
                    a
                } else {
                    a - MEMBERS
                };
                Act::Expire {
                    account,
                    back,
                    exact,
                    off,
                }
            }
        ),
        (0..MEMBERS, 1u64..4).prop_map(|(member, quantity)| Act::Redeem { member, quantity }),
        (0usize..32, any::<bool>()).prop_map(|(pick, by_member)| Act::Cancel { pick, by_member }),
        (0usize..32).prop_map(|pick| Act::Fulfill { pick }),
    ]
}

fn setup() -> (Ledger, u64) {
    let mut l = Ledger::new();
    let iss = issuer();
    l.must(
        &iss,
        Op::Genesis(Genesis {
            currency: "CNY".into(),
            minor_unit_digits: 2,
            checkpoint_key: AccountId(key(2).public_key()),
        }),
    );
    for m in 0..MERCHANTS {
        l.must(
            &iss,
            Op::RegisterMerchant(RegisterMerchant {
                merchant: pid(m),
                name: format!("M{m}"),
                issue_rate: Rate {
                    minor_units: 1,
                    per_points: 1,
                },
                redeem_rate: Rate {
                    minor_units: 1,
                    per_points: 1,
                },
            }),
        );
        l.must(
            &iss,
            Op::Mint(Mint {
                to: pid(m),
                amount: Points(5_000),
                memo: Bytes::default(),
                expires_at_ms: None,
            }),
        );
        l.supply += 5_000;
    }
    l.must(
        &iss,
        Op::SetTiers(SetTiers {
            tiers: vec![
                Tier {
                    name: "Member".into(),
                    min_growth: 0,
                },
                Tier {
                    name: "Gold".into(),
                    min_growth: 500,
                },
            ],
            window_ms: 30 * SECOND,
            growth_per_point: Rate {
                minor_units: 1,
                per_points: 1,
            },
            reason_rates: vec![],
        }),
    );
    let item = l.must(
        &party(0),
        Op::ListItem(ListItem {
            title: "Tea".into(),
            description: String::new(),
            price: Points(7),
            stock: 1_000,
            limit_per_order: 0,
            limit_per_member: 0,
            available_from_ms: 0,
            available_until_ms: None,
            active: true,
        }),
    );
    (l, item)
}

fn step(l: &mut Ledger, item: u64, a: &Act) {
    let iss = issuer();
    match a.clone() {
        Act::Tick(ms) => l.now += ms,
        Act::Mint { to, amount, expiry } => {
            let op = Op::Mint(Mint {
                to: pid(to),
                amount: Points(amount),
                memo: Bytes::default(),
                expires_at_ms: expiry.map(|e| l.now + e * SECOND),
            });
            if l.apply(&iss, op).is_some() {
                l.supply += amount;
            }
        }
        Act::Earn {
            merchant,
            member: m,
            amount,
            expiry,
            pending,
            release,
        } => {
            let pending = match pending {
                0 => None,
                1 => Some(Pending {
                    release_at_ms: Some(l.now + release * SECOND),
                }),
                _ => Some(Pending {
                    release_at_ms: None,
                }),
            };
            let op = Op::Earn(Earn {
                member: pid(member(m)),
                amount: Points(amount),
                reason: EarnReason::Purchase,
                reference: Bytes::default(),
                expires_at_ms: expiry.map(|e| l.now + e * SECOND),
                pending,
            });
            if let Some(seq) = l.apply(&party(merchant), op) {
                l.earns.push(seq);
            }
        }
        Act::Transfer { from, to, amount } => {
            let op = Op::Transfer(Transfer {
                to: pid(to),
                amount: Points(amount),
                memo: Bytes::default(),
            });
            let before = l.state.balance(&pid(from));
            if l.apply(&party(from), op).is_some() {
                assert_eq!(l.state.balance(&pid(from)), before - amount);
            }
        }
        Act::Burn { from, amount } => {
            let op = Op::Burn(Burn {
                from: pid(from),
                amount: Points(amount),
                reason: BurnReason::Voluntary,
            });
            if l.apply(&party(from), op).is_some() {
                l.supply -= amount;
            }
        }
        Act::Confirm { wrong, pick } => {
            let Some(&id) = l.earns.get(pick % l.earns.len().max(1)) else {
                return;
            };
            let merchant = signer_of(l, id, wrong);
            l.apply(&merchant, Op::ConfirmEarn(ConfirmEarn { earn_id: id }));
        }
        Act::Reverse { wrong, pick } => {
            let Some(&id) = l.earns.get(pick % l.earns.len().max(1)) else {
                return;
            };
            let merchant = signer_of(l, id, wrong);
            let rec = l.state.loyalty().earn(id).cloned().expect("an award");
            let could = l.state.spendable(&rec.member, l.now);
            let op = Op::ReverseEarn(ReverseEarn {
                earn_id: id,
                reason: Bytes::default(),
            });
            if l.apply(&merchant, op).is_some() {
                let after = l.state.loyalty().earn(id).unwrap();
                assert_eq!(after.returned.0 + after.unrecovered.0, after.amount.0);
                // Released awards: at most what the member could spend (plus awards that
                // became due at this entry, released before the checks).
                let due: u64 = rec
                    .pending
                    .and_then(|p| p.release_at_ms)
                    .filter(|t| *t <= l.now)
                    .map_or(0, |_| rec.amount.0);
                let was_pending = after.returned == after.amount && after.unrecovered.0 == 0;
                assert!(was_pending || after.returned.0 <= could + due);
            }
        }
        Act::Expire {
            account,
            back,
            exact,
            off,
        } => {
            let as_of = l.now.saturating_sub(back * SECOND);
            let a = pid(account);
            // What is due: expired lots, and awards the rules release before the checks
            // whose lot has expired by `as_of`.
            let h = l.state.loyalty().holdings(&a).cloned().unwrap_or_default();
            let mut due = h.lots.expired_by(as_of);
            for id in &h.pending {
                let e = l.state.loyalty().earn(*id).unwrap();
                let released = e
                    .pending
                    .and_then(|p| p.release_at_ms)
                    .is_some_and(|t| t <= l.now);
                if released && e.expires_at_ms.is_some_and(|x| x <= as_of) {
                    due += e.amount.0;
                }
            }
            let amount = if exact { due } else { due + off };
            let op = Op::Expire(Expire {
                account: a,
                as_of_ms: as_of,
                amount: Points(amount),
            });
            let applied = l.apply(&iss, op).is_some();
            assert_eq!(
                applied,
                amount > 0 && amount == due,
                "expire {amount} vs due {due}"
            );
            if applied {
                l.supply -= amount;
                let left = l
                    .state
                    .loyalty()
                    .holdings(&a)
                    .map_or(0, |h| h.lots.expired_by(as_of));
                assert_eq!(left, 0, "an exact Expire leaves nothing expired");
            }
        }
        Act::Redeem {
            member: m,
            quantity,
        } => {
            let op = Op::Redeem(Redeem {
                item_id: item,
                quantity,
                max_unit_price: Points(7),
            });
            if let Some(seq) = l.apply(&party(member(m)), op) {
                l.orders.push(seq);
            }
        }
        Act::Cancel { pick, by_member } => {
            let Some(&id) = l.orders.get(pick % l.orders.len().max(1)) else {
                return;
            };
            let o = l.state.order(id).unwrap().clone();
            let signer = if by_member {
                party(
                    MERCHANTS
                        + (0..MEMBERS)
                            .find(|i| pid(MERCHANTS + i) == o.member)
                            .unwrap(),
                )
            } else {
                party(0)
            };
            let lots = l.state.loyalty().order_lots(id).cloned();
            let applied = l
                .apply(
                    &signer,
                    Op::CancelOrder(CancelOrder {
                        order_id: id,
                        reason: Bytes::default(),
                    }),
                )
                .is_some();
            if applied {
                assert_eq!(o.status, OrderStatus::Open);
                assert_eq!(lots.map(|x| x.total()), Some(o.total.0));
                assert!(l.state.loyalty().order_lots(id).is_none());
            }
        }
        Act::Fulfill { pick } => {
            let Some(&id) = l.orders.get(pick % l.orders.len().max(1)) else {
                return;
            };
            let applied = l
                .apply(
                    &party(0),
                    Op::FulfillOrder(FulfillOrder {
                        order_id: id,
                        reference: Bytes::default(),
                    }),
                )
                .is_some();
            if applied {
                assert!(l.state.loyalty().order_lots(id).is_none());
            }
        }
    }
}

/// The merchant that made award `id`, or (`wrong`) the other one.
fn signer_of(l: &Ledger, id: u64, wrong: bool) -> Keypair {
    let made_by = l.state.loyalty().earn(id).expect("an award").merchant;
    let i = (0..MERCHANTS).find(|m| pid(*m) == made_by).unwrap();
    party(if wrong { (i + 1) % MERCHANTS } else { i })
}

fn check(l: &Ledger) {
    l.state.check_invariants().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        l.state.totals().supply,
        l.supply,
        "supply moves only by mint, burn, expire"
    );
    for (account, balance) in l.state.balances() {
        let h = l
            .state
            .loyalty()
            .holdings(account)
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            h.lots.total() + h.pending_total,
            *balance,
            "Σ lots + pending = balance for {account}"
        );
        assert!(h.lots.spendable(l.now) <= *balance);
        if l.state.merchant(account).is_some() {
            // Points reaching a merchant never expire.
            assert!(h.lots.iter().all(|(e, _)| e.ms().is_none()), "{account}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn loyalty_rules_conserve_points_and_keep_lots_equal_to_balances(
        acts in proptest::collection::vec(act(), 1..120)
    ) {
        let (mut l, item) = setup();
        for a in &acts {
            step(&mut l, item, a);
            check(&l);
        }
        // Replaying the applied entries from scratch gives the same state.
        let mut replayed = State::new();
        let mut ids: OpIds = HashMap::new();
        for (ctx, v) in &l.log {
            match rules::apply(&mut replayed, &mut ids, *ctx, v) {
                Ok(Outcome::Applied(_)) => {}
                other => panic!("replay of seq {}: {other:?}", ctx.seq),
            }
        }
        prop_assert!(replayed == l.state, "replay differs");
    }
}
