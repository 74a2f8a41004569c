//! Merchant settlement: each merchant's book of money-relevant events since its last
//! settlement, the statement computed from it, and the two-party `Settle` op. Part of the
//! pure state machine; implements `ledger-spec/settlement.md`.
//!
//! Money is integer minor units of the ledger's currency. Rates are exact fractions
//! (`minor_units / per_points`). A statement groups its events by category and rate and
//! rounds once per group, half up: `amount = (points × minor_units + ⌊per_points / 2⌋) div
//! per_points`, in 128-bit arithmetic, checked into u64.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::crypto;
use crate::op::*;
use crate::rules::{Ctx, Effects, Parties, Rejection, State};

/// Domain tag of the merchant's countersignature over a statement.
pub const SETTLE_DOMAIN: &[u8] = b"points-ledger/settle/v1\0";

/// One money-relevant event in a merchant's book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BookEvent {
    /// Points minted into the merchant's float, bought at the issue rate then in force.
    Purchased {
        /// Points.
        points: u64,
        /// Issue rate at that seq.
        rate: Rate,
    },
    /// Points the merchant awarded to members (Earn).
    Awarded {
        /// Points.
        points: u64,
    },
    /// Points received from a redemption, owed back at the redeem rate then in force.
    Redeemed {
        /// The order.
        order_id: u64,
        /// Points.
        points: u64,
        /// Redeem rate at the order's seq.
        rate: Rate,
    },
    /// Points refunded to a member by cancelling an order.
    Refunded {
        /// The order.
        order_id: u64,
        /// Points.
        points: u64,
        /// The redeem rate the order was valued at.
        redeem_rate: Rate,
        /// The issue rate in force at the cancellation.
        issue_rate: Rate,
        /// Whether the order had already been settled in an earlier period.
        after_settlement: bool,
    },
    /// Points received by transfer.
    TransferredIn {
        /// Points.
        points: u64,
    },
    /// Points sent by transfer.
    TransferredOut {
        /// Points.
        points: u64,
    },
    /// Points burned from the merchant's balance (other than by settlement).
    Burned {
        /// Points.
        points: u64,
    },
    /// One of the merchant's awards reversed (ReverseEarn, `ledger-spec/loyalty.md` §3.3).
    AwardReversed {
        /// The award (seq of its Earn).
        earn_id: u64,
        /// Points back in the merchant's float.
        points: u64,
        /// Points the member had already spent, not recovered.
        unrecovered: u64,
    },
}

/// A merchant's book: where its open period starts and what happened since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerchantBook {
    /// Last seq covered by a settlement (0: none yet; the period starts after it).
    pub settled_to: u64,
    /// Settlements so far.
    pub settlements: u64,
    /// Events since `settled_to`, in seq order.
    pub events: Vec<(u64, BookEvent)>,
}

/// The header of a book as stored (events are stored one per key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct BookHeader {
    /// Last seq covered by a settlement.
    pub settled_to: u64,
    /// Settlements so far.
    pub settlements: u64,
}

/// The totals of a statement: what both parties sign and the rules recompute.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct StatementTotals {
    /// Points minted into the merchant's float.
    pub points_purchased: u64,
    /// Money the merchant owes for them.
    pub purchase_amount: u64,
    /// Points awarded to members.
    pub points_awarded: u64,
    /// Points received from redemptions in the period.
    pub points_redeemed: u64,
    /// Money the operator owes for them.
    pub redemption_amount: u64,
    /// Points refunded for orders of this period.
    pub points_refunded: u64,
    /// Money that reduces the redemption amount.
    pub refund_amount: u64,
    /// Points refunded for orders settled in an earlier period.
    pub points_refunded_after_settlement: u64,
    /// Redemption money the merchant returns for them.
    pub clawback_amount: u64,
    /// Money the operator owes for the float points the merchant used for them.
    pub float_credit_amount: u64,
    /// Points received by transfer.
    pub transfers_in: u64,
    /// Points sent by transfer.
    pub transfers_out: u64,
    /// Points burned from the merchant other than by settlement.
    pub points_burned: u64,
    /// Points the settlement burns: redeemed − refunded (this period's orders).
    pub points_to_burn: u64,
    /// Net money the operator pays the merchant (0 if the merchant pays).
    pub due_to_merchant: u64,
    /// Net money the merchant pays the operator (0 if the operator pays).
    pub due_from_merchant: u64,
    /// Points back in the merchant's float from reversed awards (ReverseEarn).
    pub points_reversed: u64,
    /// Points of reversed awards the members had already spent, not recovered.
    pub points_unrecovered: u64,
}

/// One rate group of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatementLine {
    /// `purchase`, `redemption`, `refund`, `clawback` or `float_credit`.
    pub category: String,
    /// The rate.
    pub rate: Rate,
    /// Points at that rate.
    pub points: u64,
    /// Money, rounded half up once for the group.
    pub amount: u64,
}

/// A merchant's statement for the period `(from_seq, to_seq]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Statement {
    /// The merchant.
    pub merchant: AccountId,
    /// The period starts after this seq (the previous settlement's `to_seq`, or 0).
    pub from_seq: u64,
    /// The period ends at this seq (inclusive).
    pub to_seq: u64,
    /// The totals.
    pub totals: StatementTotals,
    /// The rate groups the money amounts come from.
    pub lines: Vec<StatementLine>,
}

/// What the merchant countersigns (with the chain id, so it cannot replay elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct SettleBody {
    /// Chain id.
    pub chain_id: String,
    /// The merchant.
    pub merchant: AccountId,
    /// Period start (exclusive).
    pub from_seq: u64,
    /// Period end (inclusive).
    pub to_seq: u64,
    /// The totals.
    pub totals: StatementTotals,
}

/// The bytes the merchant signs: `SETTLE_DOMAIN || canonical(SettleBody)`.
pub fn countersign_payload(body: &SettleBody) -> Vec<u8> {
    let mut out = SETTLE_DOMAIN.to_vec();
    out.extend_from_slice(&codec::encode_record(body));
    out
}

/// A settled period, kept in the derived state.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettlementRecord {
    /// Settlement id: the seq of the Settle entry.
    pub settlement_id: u64,
    /// The merchant.
    pub merchant: AccountId,
    /// Period start (exclusive).
    pub from_seq: u64,
    /// Period end (inclusive).
    pub to_seq: u64,
    /// The totals both parties signed.
    pub totals: StatementTotals,
}

fn amount(points: u64, rate: Rate) -> Result<u64, Rejection> {
    let num = u128::from(points) * u128::from(rate.minor_units) + u128::from(rate.per_points / 2);
    u64::try_from(num / u128::from(rate.per_points)).map_err(|_| Rejection::Overflow)
}

fn add(a: &mut u64, b: u64) -> Result<(), Rejection> {
    *a = a.checked_add(b).ok_or(Rejection::Overflow)?;
    Ok(())
}

/// Computes the statement of `merchant` for `(book.settled_to, to_seq]`.
pub fn statement(
    merchant: AccountId,
    book: &MerchantBook,
    to_seq: u64,
) -> Result<Statement, Rejection> {
    let mut t = StatementTotals::default();
    // (category order, rate) -> points; BTreeMap keeps the lines in a stable order.
    let mut groups: BTreeMap<(u8, u64, u64), u64> = BTreeMap::new();
    let mut group = |cat: u8, rate: Rate, points: u64| -> Result<(), Rejection> {
        add(
            groups
                .entry((cat, rate.minor_units, rate.per_points))
                .or_insert(0),
            points,
        )
    };
    for (_, event) in book.events.iter().take_while(|(seq, _)| *seq <= to_seq) {
        match *event {
            BookEvent::Purchased { points, rate } => {
                add(&mut t.points_purchased, points)?;
                group(0, rate, points)?;
            }
            BookEvent::Awarded { points } => add(&mut t.points_awarded, points)?,
            BookEvent::Redeemed { points, rate, .. } => {
                add(&mut t.points_redeemed, points)?;
                group(1, rate, points)?;
            }
            BookEvent::Refunded {
                order_id,
                points,
                redeem_rate,
                issue_rate,
                after_settlement,
            } => {
                // An order settled in an earlier period is refunded "after settlement" even
                // if it was cancelled before that Settle was appended (its cancellation lies
                // after the period's `to_seq`): its points were burned and paid for then.
                if after_settlement || order_id <= book.settled_to {
                    add(&mut t.points_refunded_after_settlement, points)?;
                    group(3, redeem_rate, points)?;
                    group(4, issue_rate, points)?;
                } else {
                    add(&mut t.points_refunded, points)?;
                    group(2, redeem_rate, points)?;
                }
            }
            BookEvent::TransferredIn { points } => add(&mut t.transfers_in, points)?,
            BookEvent::TransferredOut { points } => add(&mut t.transfers_out, points)?,
            BookEvent::Burned { points } => add(&mut t.points_burned, points)?,
            BookEvent::AwardReversed {
                points,
                unrecovered,
                ..
            } => {
                add(&mut t.points_reversed, points)?;
                add(&mut t.points_unrecovered, unrecovered)?;
            }
        }
    }
    let mut lines = Vec::with_capacity(groups.len());
    for ((cat, minor_units, per_points), points) in groups {
        let rate = Rate {
            minor_units,
            per_points,
        };
        let a = amount(points, rate)?;
        let (name, slot) = match cat {
            0 => ("purchase", &mut t.purchase_amount),
            1 => ("redemption", &mut t.redemption_amount),
            2 => ("refund", &mut t.refund_amount),
            3 => ("clawback", &mut t.clawback_amount),
            _ => ("float_credit", &mut t.float_credit_amount),
        };
        add(slot, a)?;
        lines.push(StatementLine {
            category: name.to_string(),
            rate,
            points,
            amount: a,
        });
    }
    t.points_to_burn = t
        .points_redeemed
        .checked_sub(t.points_refunded)
        .ok_or(Rejection::Overflow)?;
    let credit = i128::from(t.redemption_amount) - i128::from(t.refund_amount)
        + i128::from(t.float_credit_amount);
    let debit = i128::from(t.purchase_amount) + i128::from(t.clawback_amount);
    let net = credit - debit;
    t.due_to_merchant = u64::try_from(net.max(0)).map_err(|_| Rejection::Overflow)?;
    t.due_from_merchant = u64::try_from((-net).max(0)).map_err(|_| Rejection::Overflow)?;
    Ok(Statement {
        merchant,
        from_seq: book.settled_to,
        to_seq,
        totals: t,
        lines,
    })
}

/// Adds an event to a merchant's book (no-op for accounts that are not merchants).
pub(crate) fn record(state: &mut State, account: &AccountId, seq: u64, event: BookEvent) {
    if state.merchant(account).is_some() {
        state
            .books
            .entry(*account)
            .or_default()
            .events
            .push((seq, event));
    }
}

/// `Settle`, signed by the issuer and countersigned by the merchant. Checks, in order:
/// signer is the issuer, merchant registered, period (from = last settled, from < to < this
/// seq), countersignature, totals equal the recomputed statement, merchant can cover the
/// burn.
pub(crate) fn settle(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    issuer: AccountId,
    chain_id: &str,
    op: &Settle,
) -> Result<Effects, Rejection> {
    if signer != issuer {
        return Err(Rejection::NotAuthorized);
    }
    if state.merchant(&op.merchant).is_none() {
        return Err(Rejection::UnknownMerchant);
    }
    let empty = MerchantBook::default();
    let book = state.books.get(&op.merchant).unwrap_or(&empty);
    if op.from_seq != book.settled_to || op.to_seq <= op.from_seq || op.to_seq >= ctx.seq {
        return Err(Rejection::PeriodMismatch);
    }
    let body = SettleBody {
        chain_id: chain_id.to_string(),
        merchant: op.merchant,
        from_seq: op.from_seq,
        to_seq: op.to_seq,
        totals: op.totals,
    };
    crypto::verify(
        &op.merchant.0,
        &countersign_payload(&body),
        &op.merchant_signature.0,
    )
    .map_err(|_| Rejection::BadCountersignature)?;
    let computed = statement(op.merchant, book, op.to_seq)?;
    if computed.totals != op.totals {
        return Err(Rejection::StatementMismatch);
    }
    let burn = computed.totals.points_to_burn;
    if state.spendable(&op.merchant, ctx.timestamp_ms) < burn {
        return Err(Rejection::InsufficientFunds);
    }
    // Effects.
    state.burn_from(&op.merchant, burn, ctx.timestamp_ms)?;
    let book = state.books.entry(op.merchant).or_default();
    book.events.retain(|(seq, _)| *seq > op.to_seq);
    book.settled_to = op.to_seq;
    book.settlements += 1;
    state.settlements.insert(
        ctx.seq,
        SettlementRecord {
            settlement_id: ctx.seq,
            merchant: op.merchant,
            from_seq: op.from_seq,
            to_seq: op.to_seq,
            totals: op.totals,
        },
    );
    let parties = Parties::two(signer, op.merchant);
    Ok(Effects {
        parties,
        balances: Parties::one(op.merchant),
        balances_changed: burn > 0,
        books: Some(Parties::one(op.merchant)),
        settled: Some((op.merchant, op.to_seq, ctx.seq)),
        ..Effects::none(parties)
    })
}

/// Builds and countersigns a Settle op for a drafted statement: the merchant's part.
pub fn countersign(
    chain_id: &str,
    merchant_key: &crypto::Keypair,
    statement: &Statement,
) -> Signature {
    let body = SettleBody {
        chain_id: chain_id.to_string(),
        merchant: statement.merchant,
        from_seq: statement.from_seq,
        to_seq: statement.to_seq,
        totals: statement.totals,
    };
    Signature(merchant_key.sign(&countersign_payload(&body)))
}
