//! Property tests of the core ledger: random sequences of genesis-era ops (register and
//! suspend merchants, register auditors, mint, earn, transfer, burn), signed by a small pool
//! of deterministic keys and applied straight through `rules::apply` with a map as the op-id
//! index, the way the sequencer, recovery replay and the auditor apply them.
//!
//! - Supply is conserved: after every op the invariants hold (Σ balances = supply =
//!   minted − burned), a mint adds exactly its amount, a burn removes exactly its amount,
//!   and nothing else changes the supply.
//! - A refused op changes nothing: state and op-id index are as before.
//! - Idempotency: any applied op submitted again is `Outcome::Duplicate` at its seq, and
//!   changes nothing; the same op id with other content is `duplicate_op_id`.
//! - Replay = live: the entries the run appended, decoded and re-verified from their bytes
//!   into a fresh state, give exactly the live state; the auditor agrees.
//! - Encode/decode round trips, canonical bytes and JSON, for every core op type and for
//!   entries.
//!
//! Failing cases are replayable from proptest's seed (`PROPTEST_CASES` sets the number of
//! cases).

use std::collections::HashMap;
use std::sync::OnceLock;

use points_ledger::audit::Auditor;
use points_ledger::chain::{self, Head};
use points_ledger::client::sign_op;
use points_ledger::codec;
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::rules::{self, Ctx, OpIdRecord, Outcome, Rejection, State, VerifiedOp};
use proptest::prelude::*;

const CHAIN: &str = "test.points.local/properties";
/// Keys in the pool: key 0 is the issuer.
const KEYS: usize = 6;
/// Merchants registered before the random ops start.
const MERCHANTS: usize = 2;
/// Points minted into each merchant's float at the start.
const FLOAT: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000;
const TTL_MS: u64 = 1_000_000_000;

fn keys() -> &'static [Keypair] {
    static KEYS_CELL: OnceLock<Vec<Keypair>> = OnceLock::new();
    KEYS_CELL.get_or_init(|| {
        (0..KEYS)
            .map(|i| Keypair::from_seed([100 + i as u8; 32]))
            .collect()
    })
}

fn account(i: usize) -> AccountId {
    AccountId(keys()[i % KEYS].public_key())
}

/// One step of a random run, in terms of indices into the key pool.
#[derive(Debug, Clone)]
enum Act {
    RegisterMerchant {
        signer: usize,
        who: usize,
    },
    SetStatus {
        signer: usize,
        who: usize,
        suspended: bool,
    },
    RegisterAuditor {
        signer: usize,
        who: usize,
    },
    Mint {
        signer: usize,
        to: usize,
        amount: u64,
    },
    Earn {
        signer: usize,
        member: usize,
        amount: u64,
    },
    Transfer {
        signer: usize,
        to: usize,
        amount: u64,
    },
    Burn {
        signer: usize,
        from: usize,
        amount: u64,
        reason: BurnReason,
    },
    /// Sends the `back`-th most recent op again, unchanged.
    Resend {
        back: usize,
    },
    /// Signs other content under the op id of the `back`-th most recent op.
    ReuseOpId {
        back: usize,
        amount: u64,
    },
    /// An op whose `not_after_ms` has passed.
    Late {
        signer: usize,
        to: usize,
        amount: u64,
    },
    /// An op signed for another chain.
    OtherChain {
        signer: usize,
        to: usize,
        amount: u64,
    },
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1..2_000u64,
        1 => Just(0u64),
        1 => (u64::MAX - 2_000)..=u64::MAX,
        1 => any::<u64>(),
    ]
}

/// Mostly the issuer where the op is the issuer's, any key otherwise.
fn signer(issuer_weight: u32) -> impl Strategy<Value = usize> {
    prop_oneof![issuer_weight => Just(0usize), 10 => 0..KEYS]
}

fn act() -> impl Strategy<Value = Act> {
    let who = || 0..KEYS;
    prop_oneof![
        1 => (signer(8), who()).prop_map(|(signer, who)| Act::RegisterMerchant { signer, who }),
        1 => (signer(8), who(), any::<bool>())
            .prop_map(|(signer, who, suspended)| Act::SetStatus { signer, who, suspended }),
        1 => (signer(8), who()).prop_map(|(signer, who)| Act::RegisterAuditor { signer, who }),
        3 => (signer(8), who(), amount())
            .prop_map(|(signer, to, amount)| Act::Mint { signer, to, amount }),
        6 => (signer(1), who(), amount())
            .prop_map(|(signer, member, amount)| Act::Earn { signer, member, amount }),
        6 => (signer(1), who(), amount())
            .prop_map(|(signer, to, amount)| Act::Transfer { signer, to, amount }),
        3 => (
            signer(2),
            who(),
            amount(),
            prop_oneof![
                Just(BurnReason::Voluntary),
                Just(BurnReason::Expiry),
                Just(BurnReason::Correction)
            ]
        )
            .prop_map(|(signer, from, amount, reason)| Act::Burn {
                signer,
                from,
                amount,
                reason
            }),
        2 => (0..8usize).prop_map(|back| Act::Resend { back }),
        1 => (0..8usize, amount()).prop_map(|(back, amount)| Act::ReuseOpId { back, amount }),
        1 => (signer(1), who(), amount())
            .prop_map(|(signer, to, amount)| Act::Late { signer, to, amount }),
        1 => (signer(1), who(), amount())
            .prop_map(|(signer, to, amount)| Act::OtherChain { signer, to, amount }),
    ]
}

/// A ledger driven through the rules alone, checking every property after every op.
struct Sim {
    state: State,
    op_ids: HashMap<(AccountId, OpId), OpIdRecord>,
    head: Head,
    /// Canonical bytes of every appended entry.
    entries: Vec<Vec<u8>>,
    /// Every op submitted, for resends.
    sent: Vec<SignedOp>,
    next_op_id: u128,
    clock_ms: u64,
    applied: usize,
    refused: usize,
}

impl Sim {
    fn new() -> Sim {
        let mut sim = Sim {
            state: State::new(),
            op_ids: HashMap::new(),
            head: Head::EMPTY,
            entries: Vec::new(),
            sent: Vec::new(),
            next_op_id: 1,
            clock_ms: T0,
            applied: 0,
            refused: 0,
        };
        let genesis = Op::Genesis(Genesis {
            currency: "CNY".into(),
            minor_unit_digits: 2,
            checkpoint_key: account(KEYS - 1),
        });
        let setup: Vec<Op> = std::iter::once(genesis)
            .chain((1..=MERCHANTS).map(|m| merchant_op(m, "Shop")))
            .chain((1..=MERCHANTS).map(|m| {
                Op::Mint(Mint {
                    to: account(m),
                    amount: Points(FLOAT),
                    memo: Bytes(vec![]),
                    expires_at_ms: None,
                })
            }))
            .collect();
        for op in setup {
            let signed = sim.sign(0, CHAIN, TTL_MS, op);
            let outcome = sim.submit(signed);
            assert!(matches!(outcome, Ok(Outcome::Applied(_))), "{outcome:?}");
        }
        sim
    }

    fn sign(&mut self, signer: usize, chain: &str, ttl_ms: u64, op: Op) -> SignedOp {
        let op_id = OpId(self.next_op_id);
        self.next_op_id += 1;
        sign_op(
            &keys()[signer % KEYS],
            chain,
            op_id,
            self.clock_ms.saturating_add(ttl_ms),
            op,
        )
    }

    fn step(&mut self, act: &Act) {
        let signed = match act {
            Act::RegisterMerchant { signer, who } => {
                let op = merchant_op(*who, "Another Shop");
                self.sign(*signer, CHAIN, TTL_MS, op)
            }
            Act::SetStatus {
                signer,
                who,
                suspended,
            } => {
                let op = Op::UpdateMerchant(UpdateMerchant {
                    merchant: account(*who),
                    name: None,
                    issue_rate: None,
                    redeem_rate: None,
                    status: Some(if *suspended {
                        MerchantStatus::Suspended
                    } else {
                        MerchantStatus::Active
                    }),
                });
                self.sign(*signer, CHAIN, TTL_MS, op)
            }
            Act::RegisterAuditor { signer, who } => {
                let op = Op::RegisterAuditor(RegisterAuditor {
                    auditor: account(*who),
                    name: "Auditor".into(),
                });
                self.sign(*signer, CHAIN, TTL_MS, op)
            }
            Act::Mint { signer, to, amount } => {
                let op = Op::Mint(Mint {
                    to: account(*to),
                    amount: Points(*amount),
                    memo: Bytes(b"inv".to_vec()),
                    expires_at_ms: None,
                });
                self.sign(*signer, CHAIN, TTL_MS, op)
            }
            Act::Earn {
                signer,
                member,
                amount,
            } => {
                let op = earn(*member, *amount);
                self.sign(*signer, CHAIN, TTL_MS, op)
            }
            Act::Transfer { signer, to, amount } => {
                let op = transfer(*to, *amount);
                self.sign(*signer, CHAIN, TTL_MS, op)
            }
            Act::Burn {
                signer,
                from,
                amount,
                reason,
            } => {
                let op = Op::Burn(Burn {
                    from: account(*from),
                    amount: Points(*amount),
                    reason: *reason,
                });
                self.sign(*signer, CHAIN, TTL_MS, op)
            }
            Act::Resend { back } => match self.sent.iter().rev().nth(*back) {
                Some(op) => op.clone(),
                None => return,
            },
            Act::ReuseOpId { back, amount } => {
                let Some(earlier) = self.sent.iter().rev().nth(*back).cloned() else {
                    return;
                };
                let signer = keys()
                    .iter()
                    .position(|k| AccountId(k.public_key()) == earlier.envelope.signer)
                    .expect("a pool key");
                let signed = sign_op(
                    &keys()[signer],
                    &earlier.envelope.chain_id,
                    earlier.envelope.op_id,
                    earlier.envelope.not_after_ms,
                    Op::Transfer(Transfer {
                        to: account(signer + 1),
                        amount: Points(*amount),
                        memo: Bytes(b"reused op id".to_vec()),
                    }),
                );
                let known = self
                    .op_ids
                    .contains_key(&(earlier.envelope.signer, earlier.envelope.op_id));
                let outcome = self.submit(signed);
                if known {
                    assert_eq!(outcome, Err(Rejection::DuplicateOpId));
                }
                return;
            }
            Act::Late { signer, to, amount } => {
                let op = transfer(*to, *amount);
                let signed = sign_op(
                    &keys()[*signer],
                    CHAIN,
                    OpId(self.next_op_id),
                    self.clock_ms - 1,
                    op,
                );
                self.next_op_id += 1;
                let outcome = self.submit(signed);
                assert_eq!(outcome, Err(Rejection::Expired));
                return;
            }
            Act::OtherChain { signer, to, amount } => {
                let op = transfer(*to, *amount);
                let signed = self.sign(*signer, "test.points.local/other", TTL_MS, op);
                let outcome = self.submit(signed);
                assert_eq!(outcome, Err(Rejection::WrongChain));
                return;
            }
        };
        let _ = self.submit(signed);
    }

    /// Applies one op the way the sequencer does and checks every per-op property.
    fn submit(&mut self, signed: SignedOp) -> Result<Outcome, Rejection> {
        self.sent.push(signed.clone());
        self.clock_ms += 1;
        let verified = VerifiedOp::verify(signed.clone()).expect("every op here is signed");
        let ctx = Ctx {
            seq: self.head.next_seq,
            timestamp_ms: self.clock_ms,
        };
        let before = self.state.clone();
        let op_ids_before = self.op_ids.len();
        let outcome = rules::apply(&mut self.state, &mut self.op_ids, ctx, &verified);
        match &outcome {
            Err(_) => {
                self.refused += 1;
                assert_eq!(self.state, before, "a refused op changed the state");
                assert_eq!(self.op_ids.len(), op_ids_before);
            }
            Ok(Outcome::Duplicate { seq }) => {
                assert_eq!(self.state, before, "a duplicate changed the state");
                let stored = codec::decode_entry(&self.entries[*seq as usize]).expect("entry");
                assert_eq!(stored.signed_op, signed, "a duplicate names another op");
            }
            Ok(Outcome::Applied(_)) => {
                self.applied += 1;
                check_supply_change(&before, &self.state, &signed);
                let entry = self.head.next_entry(signed, self.clock_ms);
                let (bytes, hash) = chain::seal(&entry);
                self.head.advance(&entry, hash);
                self.entries.push(bytes);
                assert_eq!(self.state.totals().entries, self.head.next_seq);
                // Idempotency, at once: the same op again is a duplicate at its seq.
                let after = self.state.clone();
                let again = rules::apply(&mut self.state, &mut self.op_ids, ctx, &verified);
                assert_eq!(again, Ok(Outcome::Duplicate { seq: ctx.seq }));
                assert_eq!(self.state, after, "a duplicate changed the state");
            }
        }
        self.state
            .check_invariants()
            .unwrap_or_else(|e| panic!("after {:?}: {e}", verified.signed_op()));
        outcome
    }

    /// Replays the appended entries from their bytes into a fresh state, and through the
    /// auditor, and compares with the live state.
    fn check_replay(&self) {
        let mut state = State::new();
        let mut op_ids = HashMap::new();
        let mut head = Head::EMPTY;
        for bytes in &self.entries {
            let entry = codec::decode_entry(bytes).expect("an appended entry decodes");
            assert_eq!(&codec::encode_entry(&entry), bytes, "canonical bytes");
            head.check_link(&entry).expect("entries link");
            let verified = VerifiedOp::verify(entry.signed_op.clone()).expect("signature");
            let ctx = Ctx {
                seq: entry.seq,
                timestamp_ms: entry.timestamp_ms,
            };
            let outcome = rules::apply(&mut state, &mut op_ids, ctx, &verified);
            assert!(
                matches!(outcome, Ok(Outcome::Applied(_))),
                "replaying entry {}: {outcome:?}",
                entry.seq
            );
            head.advance(&entry, chain::entry_hash(bytes));
        }
        assert_eq!(state, self.state, "replay differs from the live state");
        assert_eq!(head, self.head);
        let mut auditor = Auditor::new();
        auditor
            .feed(&self.entries)
            .expect("the auditor accepts the log");
        let report = auditor.finish().expect("audit");
        let totals = self.state.totals();
        assert_eq!(
            (report.entries, report.supply, report.minted, report.burned),
            (totals.entries, totals.supply, totals.minted, totals.burned)
        );
        assert_eq!(report.head, self.head.hash);
    }

    /// Every applied op, submitted again at the end: a duplicate at its seq, no change.
    fn check_all_duplicates(&mut self) {
        let before = self.state.clone();
        for (seq, bytes) in self.entries.clone().iter().enumerate() {
            let entry = codec::decode_entry(bytes).expect("entry");
            let verified = VerifiedOp::verify(entry.signed_op).expect("signature");
            let ctx = Ctx {
                seq: self.head.next_seq,
                timestamp_ms: self.clock_ms,
            };
            let outcome = rules::apply(&mut self.state, &mut self.op_ids, ctx, &verified);
            assert_eq!(
                outcome,
                Ok(Outcome::Duplicate { seq: seq as u64 }),
                "resubmitting entry {seq}"
            );
        }
        assert_eq!(self.state, before);
    }
}

fn merchant_op(who: usize, name: &str) -> Op {
    let rate = Rate {
        minor_units: 1,
        per_points: 1,
    };
    Op::RegisterMerchant(RegisterMerchant {
        merchant: account(who),
        name: name.into(),
        issue_rate: rate,
        redeem_rate: rate,
    })
}

fn earn(member: usize, amount: u64) -> Op {
    Op::Earn(Earn {
        member: account(member),
        amount: Points(amount),
        reason: EarnReason::Purchase,
        reference: Bytes(b"receipt".to_vec()),
        expires_at_ms: None,
        pending: None,
    })
}

fn transfer(to: usize, amount: u64) -> Op {
    Op::Transfer(Transfer {
        to: account(to),
        amount: Points(amount),
        memo: Bytes(vec![]),
    })
}

/// Supply conservation for one applied op: mints add, burns remove, all else moves.
fn check_supply_change(before: &State, after: &State, op: &SignedOp) {
    let (b, a) = (before.totals(), after.totals());
    let (minted, burned) = match &op.envelope.op {
        Op::Mint(m) => (m.amount.0, 0),
        Op::Burn(x) => (0, x.amount.0),
        _ => (0, 0),
    };
    assert_eq!(a.minted, b.minted + minted, "minted after {op:?}");
    assert_eq!(a.burned, b.burned + burned, "burned after {op:?}");
    assert_eq!(
        i128::from(a.supply) - i128::from(b.supply),
        i128::from(minted) - i128::from(burned),
        "supply after {op:?}"
    );
    let sum = |s: &State| s.balances().values().map(|v| u128::from(*v)).sum::<u128>();
    assert_eq!(sum(after), u128::from(a.supply));
    assert_eq!(sum(before), u128::from(b.supply));
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failing cases are saved beside this file (tests/properties.proptest-regressions).
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_runs_conserve_supply_replay_exactly_and_are_idempotent(
        acts in prop::collection::vec(act(), 1..60)
    ) {
        let mut sim = Sim::new();
        for act in &acts {
            sim.step(act);
        }
        sim.check_replay();
        sim.check_all_duplicates();
        prop_assert!(sim.applied > 2 * MERCHANTS);
    }
}

// ---------------------------------------------------------------------------------------
// Encode/decode round trips
// ---------------------------------------------------------------------------------------

fn account_id() -> impl Strategy<Value = AccountId> {
    any::<[u8; 32]>().prop_map(AccountId)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,70}", "[a-z0-9./_-]{0,20}"]
}

fn bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..90).prop_map(Bytes)
}

fn points() -> impl Strategy<Value = Points> {
    any::<u64>().prop_map(Points)
}

fn rate() -> impl Strategy<Value = Rate> {
    (any::<u64>(), any::<u64>()).prop_map(|(minor_units, per_points)| Rate {
        minor_units,
        per_points,
    })
}

/// Every core op type (the mall's ops have their own tests).
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (text(), any::<u8>(), account_id()).prop_map(|(currency, minor_unit_digits, k)| {
            Op::Genesis(Genesis {
                currency,
                minor_unit_digits,
                checkpoint_key: k,
            })
        }),
        (account_id(), text(), rate(), rate()).prop_map(|(merchant, name, i, r)| {
            Op::RegisterMerchant(RegisterMerchant {
                merchant,
                name,
                issue_rate: i,
                redeem_rate: r,
            })
        }),
        (
            account_id(),
            prop::option::of(text()),
            prop::option::of(rate()),
            prop::option::of(rate()),
            prop::option::of(prop_oneof![
                Just(MerchantStatus::Active),
                Just(MerchantStatus::Suspended)
            ])
        )
            .prop_map(|(merchant, name, issue_rate, redeem_rate, status)| {
                Op::UpdateMerchant(UpdateMerchant {
                    merchant,
                    name,
                    issue_rate,
                    redeem_rate,
                    status,
                })
            }),
        (account_id(), text())
            .prop_map(|(auditor, name)| Op::RegisterAuditor(RegisterAuditor { auditor, name })),
        (
            account_id(),
            points(),
            bytes(),
            prop::option::of(any::<u64>())
        )
            .prop_map(|(to, amount, memo, expires_at_ms)| Op::Mint(Mint {
                to,
                amount,
                memo,
                expires_at_ms,
            })),
        (
            account_id(),
            points(),
            prop_oneof![
                Just(EarnReason::Purchase),
                Just(EarnReason::Task),
                Just(EarnReason::Campaign),
                Just(EarnReason::Referral),
                Just(EarnReason::Adjustment)
            ],
            bytes(),
            prop::option::of(any::<u64>()),
            prop::option::of(
                prop::option::of(any::<u64>()).prop_map(|release_at_ms| Pending { release_at_ms })
            ),
        )
            .prop_map(
                |(member, amount, reason, reference, expires_at_ms, pending)| Op::Earn(Earn {
                    member,
                    amount,
                    reason,
                    reference,
                    expires_at_ms,
                    pending,
                })
            ),
        (account_id(), points(), bytes()).prop_map(|(to, amount, memo)| Op::Transfer(Transfer {
            to,
            amount,
            memo
        })),
        (
            account_id(),
            points(),
            prop_oneof![
                Just(BurnReason::Voluntary),
                Just(BurnReason::Expiry),
                Just(BurnReason::Correction)
            ]
        )
            .prop_map(|(from, amount, reason)| Op::Burn(Burn {
                from,
                amount,
                reason
            })),
    ]
}

fn signed_op() -> impl Strategy<Value = SignedOp> {
    (
        text(),
        account_id(),
        any::<u128>(),
        any::<u64>(),
        op(),
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(chain_id, signer, op_id, not_after_ms, op, sig)| {
            let mut signature = [0u8; 64];
            signature.copy_from_slice(&sig);
            SignedOp {
                envelope: Envelope {
                    chain_id,
                    signer,
                    op_id: OpId(op_id),
                    not_after_ms,
                    op,
                },
                signature: Signature(signature),
            }
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn signed_ops_round_trip_through_bytes_and_json(op in signed_op()) {
        let bytes = codec::encode_signed_op(&op);
        let decoded = codec::decode_signed_op(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &op);
        prop_assert_eq!(codec::encode_signed_op(&decoded), bytes);
        let json = serde_json::to_string(&op).expect("to JSON");
        let back: SignedOp = serde_json::from_str(&json).expect("from JSON");
        prop_assert_eq!(back, op);
    }

    #[test]
    fn entries_round_trip_and_hash_their_bytes(
        seq in any::<u64>(),
        prev in any::<[u8; 32]>(),
        timestamp_ms in any::<u64>(),
        op in signed_op(),
    ) {
        let entry = Entry { seq, prev_hash: Hash32(prev), timestamp_ms, signed_op: op };
        let (bytes, hash) = chain::seal(&entry);
        let decoded = codec::decode_entry(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &entry);
        prop_assert_eq!(codec::encode_entry(&decoded), bytes.clone());
        prop_assert_eq!(chain::entry_hash(&bytes), hash);
    }

    #[test]
    fn batches_round_trip(ops in prop::collection::vec(signed_op(), 0..6)) {
        let bytes = codec::encode_batch(&ops);
        prop_assert_eq!(codec::decode_batch(&bytes).expect("decodes"), ops);
    }
}
