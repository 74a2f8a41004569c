//! The rules under arbitrary op sequences: genesis, then ops built from fuzz input over a
//! small pool of deterministic keys, signed properly so they get past the signature check
//! and reach the rules. After every op the invariants hold; a refused op and a duplicate
//! leave the state exactly as it was; an applied op adds exactly one entry.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use points_ledger::client::sign_op;
use points_ledger::crypto::Keypair;
use points_ledger::op::*;
use points_ledger::rules::{self, Ctx, OpIdRecord, Outcome, State, VerifiedOp};

const CHAIN: &str = "fuzz.points.local/rules";
const KEYS: u8 = 6;
const STEPS_MAX: usize = 64;
const T0: u64 = 1_700_000_000_000;

#[derive(Arbitrary, Debug)]
enum Action {
    RegisterMerchant {
        signer: u8,
        who: u8,
        name: String,
        issue: (u64, u64),
    },
    UpdateMerchant {
        signer: u8,
        who: u8,
        name: Option<String>,
        suspend: Option<bool>,
    },
    RegisterAuditor {
        signer: u8,
        who: u8,
        name: String,
    },
    Mint {
        signer: u8,
        to: u8,
        amount: u64,
        memo: Vec<u8>,
    },
    Earn {
        signer: u8,
        member: u8,
        amount: u64,
        reference: Vec<u8>,
    },
    Transfer {
        signer: u8,
        to: u8,
        amount: u64,
    },
    /// Transfer to a key outside the pool (any 32 bytes: often not a valid point).
    TransferOut {
        signer: u8,
        to: [u8; 32],
        amount: u64,
    },
    Burn {
        signer: u8,
        from: u8,
        amount: u64,
        reason: u8,
    },
    /// A second genesis.
    Genesis {
        signer: u8,
    },
    /// The `back`-th most recent op again.
    Resend {
        back: u8,
    },
    /// Another op under the op id of the `back`-th most recent one.
    ReuseOpId {
        back: u8,
        amount: u64,
    },
    /// Time passes; `ttl_ms` of later ops may be short enough to expire.
    Wait {
        ms: u32,
    },
    SetTtl {
        ttl_ms: u32,
    },
    /// The next op is signed for another chain.
    OtherChain {
        signer: u8,
        amount: u64,
    },
}

struct Run {
    keys: Vec<Keypair>,
    state: State,
    op_ids: HashMap<(AccountId, OpId), OpIdRecord>,
    sent: Vec<SignedOp>,
    seq: u64,
    clock_ms: u64,
    ttl_ms: u64,
    next_op_id: u128,
}

impl Run {
    fn account(&self, i: u8) -> AccountId {
        AccountId(self.keys[usize::from(i % KEYS)].public_key())
    }

    fn sign_on(&mut self, chain: &str, signer: u8, op: Op) -> SignedOp {
        self.next_op_id += 1;
        sign_op(
            &self.keys[usize::from(signer % KEYS)],
            chain,
            OpId(self.next_op_id),
            self.clock_ms + self.ttl_ms,
            op,
        )
    }

    fn sign(&mut self, signer: u8, op: Op) -> SignedOp {
        self.sign_on(CHAIN, signer, op)
    }

    fn apply(&mut self, op: SignedOp) {
        self.sent.push(op.clone());
        self.clock_ms += 1;
        let verified = VerifiedOp::verify(op).expect("signed by a pool key");
        let ctx = Ctx {
            seq: self.seq,
            timestamp_ms: self.clock_ms,
        };
        let before = self.state.clone();
        let ids_before = self.op_ids.len();
        match rules::apply(&mut self.state, &mut self.op_ids, ctx, &verified) {
            Ok(Outcome::Applied(_)) => {
                self.seq += 1;
                assert_eq!(self.state.totals().entries, self.seq);
                assert_eq!(self.op_ids.len(), ids_before + 1);
            }
            Ok(Outcome::Duplicate { seq }) => {
                assert!(seq < self.seq);
                assert_eq!(self.state, before, "a duplicate changed the state");
                assert_eq!(self.op_ids.len(), ids_before);
            }
            Err(_) => {
                assert_eq!(self.state, before, "a refused op changed the state");
                assert_eq!(self.op_ids.len(), ids_before);
            }
        }
        if let Err(e) = self.state.check_invariants() {
            panic!("{e} after {:?}", verified.signed_op());
        }
    }

    fn step(&mut self, action: Action) {
        let rate = |(m, p): (u64, u64)| Rate {
            minor_units: m,
            per_points: p,
        };
        let op = match action {
            Action::RegisterMerchant {
                signer,
                who,
                name,
                issue,
            } => {
                let op = Op::RegisterMerchant(RegisterMerchant {
                    merchant: self.account(who),
                    name,
                    issue_rate: rate(issue),
                    redeem_rate: rate((1, 1)),
                });
                self.sign(signer, op)
            }
            Action::UpdateMerchant {
                signer,
                who,
                name,
                suspend,
            } => {
                let op = Op::UpdateMerchant(UpdateMerchant {
                    merchant: self.account(who),
                    name,
                    issue_rate: None,
                    redeem_rate: None,
                    status: suspend.map(|s| {
                        if s {
                            MerchantStatus::Suspended
                        } else {
                            MerchantStatus::Active
                        }
                    }),
                });
                self.sign(signer, op)
            }
            Action::RegisterAuditor { signer, who, name } => {
                let op = Op::RegisterAuditor(RegisterAuditor {
                    auditor: self.account(who),
                    name,
                });
                self.sign(signer, op)
            }
            Action::Mint {
                signer,
                to,
                amount,
                memo,
            } => {
                let op = Op::Mint(Mint {
                    to: self.account(to),
                    amount: Points(amount),
                    memo: Bytes(memo),
                    expires_at_ms: None,
                });
                self.sign(signer, op)
            }
            Action::Earn {
                signer,
                member,
                amount,
                reference,
            } => {
                let op = Op::Earn(Earn {
                    member: self.account(member),
                    amount: Points(amount),
                    reason: EarnReason::Task,
                    reference: Bytes(reference),
                    expires_at_ms: None,
                    pending: None,
                });
                self.sign(signer, op)
            }
            Action::Transfer { signer, to, amount } => {
                let op = Op::Transfer(Transfer {
                    to: self.account(to),
                    amount: Points(amount),
                    memo: Bytes(Vec::new()),
                });
                self.sign(signer, op)
            }
            Action::TransferOut { signer, to, amount } => {
                let op = Op::Transfer(Transfer {
                    to: AccountId(to),
                    amount: Points(amount),
                    memo: Bytes(Vec::new()),
                });
                self.sign(signer, op)
            }
            Action::Burn {
                signer,
                from,
                amount,
                reason,
            } => {
                let reason = match reason % 3 {
                    0 => BurnReason::Voluntary,
                    1 => BurnReason::Expiry,
                    _ => BurnReason::Correction,
                };
                let op = Op::Burn(Burn {
                    from: self.account(from),
                    amount: Points(amount),
                    reason,
                });
                self.sign(signer, op)
            }
            Action::Genesis { signer } => {
                let op = genesis(self.account(KEYS - 1));
                self.sign(signer, op)
            }
            Action::Resend { back } => {
                match self.sent.iter().rev().nth(usize::from(back)).cloned() {
                    Some(op) => op,
                    None => return,
                }
            }
            Action::ReuseOpId { back, amount } => {
                let Some(earlier) = self.sent.iter().rev().nth(usize::from(back)).cloned() else {
                    return;
                };
                let Some(signer) = self
                    .keys
                    .iter()
                    .position(|k| AccountId(k.public_key()) == earlier.envelope.signer)
                else {
                    return;
                };
                sign_op(
                    &self.keys[signer],
                    &earlier.envelope.chain_id,
                    earlier.envelope.op_id,
                    earlier.envelope.not_after_ms,
                    Op::Burn(Burn {
                        from: earlier.envelope.signer,
                        amount: Points(amount),
                        reason: BurnReason::Voluntary,
                    }),
                )
            }
            Action::Wait { ms } => {
                self.clock_ms += u64::from(ms);
                return;
            }
            Action::SetTtl { ttl_ms } => {
                self.ttl_ms = u64::from(ttl_ms);
                return;
            }
            Action::OtherChain { signer, amount } => {
                let op = Op::Mint(Mint {
                    to: self.account(1),
                    amount: Points(amount),
                    memo: Bytes(Vec::new()),
                    expires_at_ms: None,
                });
                self.sign_on("fuzz.points.local/other", signer, op)
            }
        };
        self.apply(op);
    }
}

fn genesis(checkpoint_key: AccountId) -> Op {
    Op::Genesis(Genesis {
        currency: "EUR".into(),
        minor_unit_digits: 2,
        checkpoint_key,
    })
}

fuzz_target!(|actions: Vec<Action>| {
    let mut run = Run {
        keys: (0..KEYS).map(|i| Keypair::from_seed([i + 1; 32])).collect(),
        state: State::new(),
        op_ids: HashMap::new(),
        sent: Vec::new(),
        seq: 0,
        clock_ms: T0,
        ttl_ms: 3_600_000,
        next_op_id: 0,
    };
    let op = genesis(run.account(KEYS - 1));
    let op = run.sign(0, op);
    run.apply(op);
    assert_eq!(run.seq, 1, "genesis applies");
    for action in actions.into_iter().take(STEPS_MAX) {
        run.step(action);
    }
});
