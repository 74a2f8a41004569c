//! A seeded simulation: random signed ops (valid and invalid) run through the ledger's rules,
//! chain and Merkle frontier, and through a small independent model written here from the
//! spec. After every op both must agree on acceptance, balances, supply, stock and orders;
//! at the end the Merkle root must equal a naive recomputation. Replay a failure with
//! `POINTS_SIM_SEED=<seed> cargo test --release --test simulation`.

use std::collections::HashMap;

use points_ledger::chain::{self, Head};
use points_ledger::client::sign_op;
use points_ledger::crypto::Keypair;
use points_ledger::merkle::{self, Frontier};
use points_ledger::op::*;
use points_ledger::rules::{self, Ctx, OpIdRecord, Outcome, State, VerifiedOp};

/// xorshift64*: tiny, deterministic, good enough to drive a simulation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Default, Clone)]
struct ModelItem {
    merchant: usize,
    price: u64,
    stock: u64,
    active: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum ModelOrder {
    Open,
    Closed,
}

/// The independent model: what the spec says should happen, nothing more.
#[derive(Default)]
struct Model {
    balances: HashMap<usize, u64>,
    supply: u64,
    minted: u64,
    merchants: Vec<usize>,
    items: HashMap<u64, ModelItem>,
    orders: HashMap<u64, (usize, usize, u64, u64, ModelOrder)>, // member, merchant, item, total, state
}

const ISSUER: usize = 0;
const ACCOUNTS: usize = 8;

fn naive_root(leaves: &[merkle::Hash]) -> merkle::Hash {
    match leaves.len() {
        0 => merkle::empty_root(),
        1 => leaves[0],
        n => {
            let k = (n as u64).next_power_of_two() as usize / 2;
            let k = if k == n { n / 2 } else { k };
            merkle::node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed | 1);
    let keys: Vec<Keypair> = (0..ACCOUNTS)
        .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
        .collect();
    let id = |i: usize| AccountId(keys[i].public_key());
    let chain_id = "points.test/sim";
    let mut state = State::new();
    let mut op_ids: HashMap<(AccountId, OpId), OpIdRecord> = HashMap::new();
    let mut head = Head::EMPTY;
    let mut frontier = Frontier::new();
    let mut leaves = Vec::new();
    let mut model = Model::default();
    let mut next_op_id = 1u128;
    let mut time = 1_000u64;

    let mut append = |state: &mut State,
                      op_ids: &mut HashMap<(AccountId, OpId), OpIdRecord>,
                      head: &mut Head,
                      signer: usize,
                      op: Op,
                      time: u64,
                      next_op_id: &mut u128|
     -> Result<u64, rules::Rejection> {
        *next_op_id += 1;
        let signed = sign_op(
            &keys[signer],
            chain_id,
            OpId(*next_op_id),
            time + 60_000,
            op,
        );
        let v = VerifiedOp::verify(signed).expect("signed properly");
        let ctx = Ctx {
            seq: head.next_seq,
            timestamp_ms: time,
        };
        let before = state.clone();
        match rules::apply(state, op_ids, ctx, &v) {
            Ok(Outcome::Applied(_)) => {
                let entry = head.next_entry(v.into_inner(), time);
                let (bytes, hash) = chain::seal(&entry);
                head.advance(&entry, hash);
                let leaf = merkle::leaf_hash(&bytes);
                frontier.append(leaf);
                leaves.push(leaf);
                Ok(entry.seq)
            }
            Ok(Outcome::Duplicate { .. }) => panic!("fresh op ids never repeat"),
            Err(r) => {
                assert_eq!(*state, before, "a rejected op changed the state");
                Err(r)
            }
        }
    };

    append(
        &mut state,
        &mut op_ids,
        &mut head,
        ISSUER,
        Op::Genesis(Genesis {
            currency: "CNY".into(),
            minor_unit_digits: 2,
            checkpoint_key: id(ISSUER),
        }),
        time,
        &mut next_op_id,
    )
    .unwrap();
    for m in [1usize, 2] {
        append(
            &mut state,
            &mut op_ids,
            &mut head,
            ISSUER,
            Op::RegisterMerchant(RegisterMerchant {
                merchant: id(m),
                name: format!("m{m}"),
                issue_rate: Rate {
                    minor_units: 1,
                    per_points: 1,
                },
                redeem_rate: Rate {
                    minor_units: 1,
                    per_points: 1,
                },
            }),
            time,
            &mut next_op_id,
        )
        .unwrap();
        model.merchants.push(m);
    }

    for step in 0..steps {
        time += rng.below(3);
        let a = rng.below(ACCOUNTS as u64) as usize;
        let b = rng.below(ACCOUNTS as u64) as usize;
        let amount = match rng.below(10) {
            0 => 0,
            1 => u64::MAX - rng.below(3),
            _ => rng.below(400),
        };
        let bal = |m: &Model, i: usize| m.balances.get(&i).copied().unwrap_or(0);
        let (signer, op, expect_ok): (usize, Op, bool) = match rng.below(8) {
            0 => (
                a,
                Op::Mint(Mint {
                    to: id(b),
                    amount: Points(amount),
                    memo: Bytes::default(),
                    expires_at_ms: None,
                }),
                a == ISSUER
                    && amount > 0
                    && model.supply.checked_add(amount).is_some()
                    && model.minted.checked_add(amount).is_some(),
            ),
            1 => (
                a,
                Op::Earn(Earn {
                    member: id(b),
                    amount: Points(amount),
                    reason: EarnReason::Task,
                    reference: Bytes::default(),
                    expires_at_ms: None,
                    pending: None,
                }),
                model.merchants.contains(&a) && amount > 0 && a != b && bal(&model, a) >= amount,
            ),
            2 | 3 => (
                a,
                Op::Transfer(Transfer {
                    to: id(b),
                    amount: Points(amount),
                    memo: Bytes::default(),
                }),
                amount > 0 && a != b && bal(&model, a) >= amount,
            ),
            4 => (
                a,
                Op::Burn(Burn {
                    from: id(a),
                    amount: Points(amount),
                    reason: BurnReason::Voluntary,
                }),
                amount > 0 && model.balances.contains_key(&a) && bal(&model, a) >= amount,
            ),
            5 => {
                let price = 1 + rng.below(50);
                let stock = rng.below(5);
                (
                    a,
                    Op::ListItem(ListItem {
                        title: "thing".into(),
                        description: String::new(),
                        price: Points(price),
                        stock,
                        limit_per_order: 0,
                        limit_per_member: 0,
                        available_from_ms: 0,
                        available_until_ms: None,
                        active: true,
                    }),
                    model.merchants.contains(&a),
                )
            }
            6 => {
                let ids: Vec<u64> = model.items.keys().copied().collect();
                let item_id = if ids.is_empty() {
                    999_999
                } else {
                    ids[rng.below(ids.len() as u64) as usize]
                };
                let qty = 1 + rng.below(2);
                let ok = model.items.get(&item_id).is_some_and(|it| {
                    it.active
                        && it.merchant != a
                        && it.stock >= qty
                        && bal(&model, a) >= it.price * qty
                });
                (
                    a,
                    Op::Redeem(Redeem {
                        item_id,
                        quantity: qty,
                        max_unit_price: Points(60),
                    }),
                    ok,
                )
            }
            _ => {
                let ids: Vec<u64> = model.orders.keys().copied().collect();
                let order_id = if ids.is_empty() {
                    999_999
                } else {
                    ids[rng.below(ids.len() as u64) as usize]
                };
                let ok =
                    model
                        .orders
                        .get(&order_id)
                        .is_some_and(|&(member, merchant, _, total, st)| {
                            st == ModelOrder::Open
                                && (a == member || a == merchant)
                                && bal(&model, merchant) >= total
                        });
                (
                    a,
                    Op::CancelOrder(CancelOrder {
                        order_id,
                        reason: Bytes::default(),
                    }),
                    ok,
                )
            }
        };
        let result = append(
            &mut state,
            &mut op_ids,
            &mut head,
            signer,
            op.clone(),
            time,
            &mut next_op_id,
        );
        assert_eq!(
            result.is_ok(),
            expect_ok,
            "seed {seed} step {step}: {op:?} by {signer} -> {result:?}"
        );
        if let Ok(seq) = result {
            match op {
                Op::Mint(m) => {
                    let to = (0..ACCOUNTS).find(|i| id(*i) == m.to).unwrap();
                    *model.balances.entry(to).or_default() += m.amount.0;
                    model.supply += m.amount.0;
                    model.minted += m.amount.0;
                }
                Op::Earn(Earn { amount, .. }) | Op::Transfer(Transfer { amount, .. }) => {
                    *model.balances.entry(signer).or_default() -= amount.0;
                    *model.balances.entry(b).or_default() += amount.0;
                }
                Op::Burn(x) => {
                    *model.balances.entry(signer).or_default() -= x.amount.0;
                    model.supply -= x.amount.0;
                }
                Op::ListItem(l) => {
                    model.items.insert(
                        seq,
                        ModelItem {
                            merchant: signer,
                            price: l.price.0,
                            stock: l.stock,
                            active: true,
                        },
                    );
                }
                Op::Redeem(r) => {
                    let it = model.items.get_mut(&r.item_id).unwrap();
                    it.stock -= r.quantity;
                    let total = it.price * r.quantity;
                    let merchant = it.merchant;
                    *model.balances.entry(signer).or_default() -= total;
                    *model.balances.entry(merchant).or_default() += total;
                    model
                        .orders
                        .insert(seq, (signer, merchant, r.item_id, total, ModelOrder::Open));
                }
                Op::CancelOrder(c) => {
                    let o = model.orders.get_mut(&c.order_id).unwrap();
                    o.4 = ModelOrder::Closed;
                    let (member, merchant, item, total, _) = *o;
                    *model.balances.entry(merchant).or_default() -= total;
                    *model.balances.entry(member).or_default() += total;
                    let it = model.items.get_mut(&item).unwrap();
                    it.stock += total / it.price;
                }
                _ => unreachable!(),
            }
        }
        // Compare after every op.
        for i in 0..ACCOUNTS {
            assert_eq!(
                state.balance(&id(i)),
                bal(&model, i),
                "seed {seed} step {step}: balance of {i}"
            );
        }
        assert_eq!(
            state.totals().supply,
            model.supply,
            "seed {seed} step {step}: supply"
        );
        for (item_id, it) in &model.items {
            assert_eq!(
                state.item(*item_id).map(|x| x.stock),
                Some(it.stock),
                "seed {seed} step {step}: stock"
            );
        }
        state.check_invariants().unwrap();
    }
    assert_eq!(
        frontier.root(),
        naive_root(&leaves),
        "seed {seed}: Merkle root"
    );
    assert_eq!(frontier.size(), head.next_seq);
}

#[test]
fn simulation_agrees_with_the_model() {
    let seeds: Vec<u64> = match std::env::var("POINTS_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("POINTS_SIM_SEED is a u64")],
        Err(_) => (1..=8)
            .map(|i| 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i))
            .collect(),
    };
    for seed in seeds {
        println!("simulation seed {seed}");
        run(seed, 1_500);
    }
}
