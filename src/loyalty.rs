//! The loyalty program's rules: lots and expiry, pending awards and their release, reversals
//! of awards, and tiers with growth value (成长值). Owns lots, expiry, pending awards and
//! tiers; implements `ledger-spec/loyalty.md`. Part of the pure state machine: called only
//! from [`crate::rules::apply`] and the balance helpers of [`State`], with no I/O, clock or
//! randomness (time is the entry's timestamp).
//!
//! Every account's points are held as **lots**: a map expiry → points, where "never" sorts
//! after every time, so one account has at most one lot per expiry (equal expiries are
//! merged). Points awarded as **pending** are the member's (they count in the balance) but
//! sit outside the lots until released. For every account:
//! `Σ lots + pending = balance` ([`check_invariants`]).
//!
//! Spending takes the spendable lots (expiry after the entry's timestamp, or never) that
//! expire soonest first. Lots keep their expiry when they move to a member; points reaching
//! a merchant become one non-expiring lot, because merchants are reimbursed for them.
//!
//! The views at the end ([`lots_view`], [`tier_status`]) are pure functions of stored
//! records and a time, for the API.

use std::collections::{BTreeMap, HashMap};

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::op::*;
use crate::rules::{check_amount, check_bytes, check_rate, check_text};
use crate::rules::{Ctx, Effects, InvariantViolation, Parties, Rejection, State};
use crate::settlement::{self, BookEvent};

/// Most tiers in a [`SetTiers`].
pub const TIERS_MAX: usize = 16;
/// Longest growth window: ten years of 366 days, in ms.
pub const WINDOW_MS_MAX: u64 = 10 * 366 * DAY_MS;
/// "Expiring soon" in the views: lots expiring within this many ms (30 days).
pub const EXPIRING_SOON_MS: u64 = 30 * DAY_MS;
const DAY_MS: u64 = 86_400_000;

/// When a lot expires. `At` sorts before `Never`, and times in increasing order, so a map
/// keyed by it lists the lots in spending order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// Expires at this time (unix ms): spendable by entries stamped strictly before it.
    At(u64),
    /// Never expires.
    Never,
}

impl Expiry {
    /// `Some(t)` → `At(t)`, `None` → `Never`.
    pub fn from_ms(ms: Option<u64>) -> Expiry {
        ms.map_or(Expiry::Never, Expiry::At)
    }

    /// The expiry time, if any.
    pub fn ms(self) -> Option<u64> {
        match self {
            Expiry::At(t) => Some(t),
            Expiry::Never => None,
        }
    }

    /// Whether a lot with this expiry may be spent by an entry stamped `now_ms`.
    pub fn spendable_at(self, now_ms: u64) -> bool {
        match self {
            Expiry::At(t) => t > now_ms,
            Expiry::Never => true,
        }
    }
}

/// An account's points by expiry, at most one lot per expiry, no empty lots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct Lots(BTreeMap<Expiry, u64>);

impl Lots {
    /// One lot.
    pub fn one(expiry: Expiry, points: u64) -> Lots {
        let mut l = Lots::default();
        l.add(expiry, points);
        l
    }

    /// The lots in spending order (soonest expiry first, "never" last).
    pub fn iter(&self) -> impl Iterator<Item = (Expiry, u64)> + '_ {
        self.0.iter().map(|(e, p)| (*e, *p))
    }

    /// Whether there are no lots.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum of all lots (saturating; the invariant bounds it by the balance).
    pub fn total(&self) -> u64 {
        self.0.values().fold(0u64, |a, p| a.saturating_add(*p))
    }

    /// Sum of the lots an entry stamped `now_ms` may spend.
    pub fn spendable(&self, now_ms: u64) -> u64 {
        self.iter()
            .filter(|(e, _)| e.spendable_at(now_ms))
            .fold(0u64, |a, (_, p)| a.saturating_add(p))
    }

    /// Sum of the lots expiring at or before `as_of_ms`.
    pub fn expired_by(&self, as_of_ms: u64) -> u64 {
        self.0
            .range(..=Expiry::At(as_of_ms))
            .fold(0u64, |a, (_, p)| a.saturating_add(*p))
    }

    /// Adds points to the lot of `expiry` (merging with an existing one).
    pub(crate) fn add(&mut self, expiry: Expiry, points: u64) {
        if points > 0 {
            let lot = self.0.entry(expiry).or_insert(0);
            *lot = lot.saturating_add(points);
        }
    }

    /// Adds every lot of `other`.
    pub(crate) fn add_all(&mut self, other: &Lots) {
        for (e, p) in other.iter() {
            self.add(e, p);
        }
    }

    /// Removes `points` from the lot of `expiry`; false (and nothing removed) if it holds less.
    pub(crate) fn remove(&mut self, expiry: Expiry, points: u64) -> bool {
        if points == 0 {
            return true;
        }
        match self.0.get_mut(&expiry) {
            Some(lot) if *lot >= points => {
                *lot -= points;
                if *lot == 0 {
                    self.0.remove(&expiry);
                }
                true
            }
            _ => false,
        }
    }

    /// Takes up to `amount` spendable points: first from the lot of `first` (if given and
    /// spendable), then soonest expiry first. Returns what was taken.
    pub(crate) fn take(&mut self, amount: u64, now_ms: u64, first: Option<Expiry>) -> Lots {
        let mut taken = Lots::default();
        let mut left = amount;
        let order = first
            .into_iter()
            .chain(self.0.keys().copied().collect::<Vec<_>>());
        for expiry in order {
            if left == 0 {
                break;
            }
            if !expiry.spendable_at(now_ms) {
                continue;
            }
            let have = self.0.get(&expiry).copied().unwrap_or(0);
            let n = have.min(left);
            if n > 0 {
                self.remove(expiry, n);
                taken.add(expiry, n);
                left -= n;
            }
        }
        taken
    }

    /// Takes every lot expiring at or before `as_of_ms`.
    pub(crate) fn take_expired(&mut self, as_of_ms: u64) -> Lots {
        let rest = self.0.split_off(&Expiry::At(as_of_ms.saturating_add(1)));
        let expired = std::mem::replace(&mut self.0, rest);
        // `At(u64::MAX)` is not below `At(u64::MAX + 1)`: take it separately.
        let mut out = Lots(expired);
        if as_of_ms == u64::MAX {
            if let Some(p) = self.0.remove(&Expiry::At(u64::MAX)) {
                out.add(Expiry::At(u64::MAX), p);
            }
        }
        out
    }
}

/// What an account holds besides its balance figure: its lots and its pending awards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct Holdings {
    /// Released points by expiry.
    pub lots: Lots,
    /// Earn ids of the account's pending awards, ascending.
    pub pending: Vec<u64>,
    /// Sum of those awards.
    pub pending_total: u64,
}

impl Holdings {
    fn is_empty(&self) -> bool {
        self.lots.is_empty() && self.pending.is_empty()
    }
}

/// Where an award is in its life, as of some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EarnStatus {
    /// Held back: counted in the balance, not spendable.
    Pending,
    /// Spendable (its lot may have been spent since).
    Released,
    /// Taken back by the merchant (ReverseEarn).
    Reversed,
}

/// An award, kept for confirmation, reversal and growth. Its id is the seq of its Earn.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EarnRecord {
    /// Seq of the Earn entry.
    pub earn_id: u64,
    /// The merchant that awarded it.
    pub merchant: AccountId,
    /// The member.
    pub member: AccountId,
    /// Points awarded.
    pub amount: Points,
    /// Why.
    pub reason: EarnReason,
    /// The Earn's reference.
    pub reference: Bytes,
    /// Timestamp of the Earn entry.
    pub earned_at_ms: u64,
    /// Expiry of its lot.
    pub expires_at_ms: Option<u64>,
    /// Pending terms, as signed.
    pub pending: Option<Pending>,
    /// Growth it gives once released (rate in force at the Earn, rounded down).
    pub growth: u64,
    /// Seq of the ConfirmEarn that released it.
    pub confirmed_seq: Option<u64>,
    /// Timestamp of that ConfirmEarn.
    pub confirmed_at_ms: Option<u64>,
    /// Seq of the ReverseEarn that took it back.
    pub reversed_seq: Option<u64>,
    /// The reversal's reason.
    pub reversal_reason: Bytes,
    /// Points that went back to the merchant at the reversal.
    pub returned: Points,
    /// Points of a released award the member had already spent, so not recovered.
    pub unrecovered: Points,
}

impl EarnRecord {
    /// When the award is (or will be) released, if that is known: the Earn's time for an
    /// immediate award, the ConfirmEarn's for a confirmed one, else `release_at_ms`.
    pub fn released_at_ms(&self) -> Option<u64> {
        match self.pending {
            None => Some(self.earned_at_ms),
            Some(p) => self.confirmed_at_ms.or(p.release_at_ms),
        }
    }

    /// Its status as of `now_ms` (a timed award is released once `now_ms ≥ release_at_ms`).
    pub fn status_at(&self, now_ms: u64) -> EarnStatus {
        if self.reversed_seq.is_some() {
            return EarnStatus::Reversed;
        }
        match self.released_at_ms() {
            Some(t) if t <= now_ms => EarnStatus::Released,
            _ => EarnStatus::Pending,
        }
    }

    fn lot_expiry(&self) -> Expiry {
        Expiry::from_ms(self.expires_at_ms)
    }
}

/// The tier configuration in force (the last SetTiers).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TierConfig {
    /// Tiers, lowest first.
    pub tiers: Vec<Tier>,
    /// Rolling window, in ms.
    pub window_ms: u64,
    /// Default growth per point.
    pub growth_per_point: Rate,
    /// Per-reason rates.
    pub reason_rates: Vec<ReasonRate>,
    /// Seq of the SetTiers entry.
    pub set_seq: u64,
}

impl TierConfig {
    /// The growth an award of `amount` points for `reason` gives: `⌊amount × minor_units /
    /// per_points⌋` at the reason's rate (or the default), saturating at `u64::MAX`.
    pub fn growth_for(&self, reason: EarnReason, amount: u64) -> u64 {
        let rate = self
            .reason_rates
            .iter()
            .find(|r| r.reason == reason)
            .map_or(self.growth_per_point, |r| r.rate);
        let g = u128::from(amount) * u128::from(rate.minor_units) / u128::from(rate.per_points);
        u64::try_from(g).unwrap_or(u64::MAX)
    }
}

/// The loyalty part of the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoyaltyState {
    /// Lots and pending awards per account (absent = nothing held).
    pub(crate) holdings: HashMap<AccountId, Holdings>,
    /// Every award, by earn id.
    pub(crate) earns: HashMap<u64, EarnRecord>,
    /// The lots each open order took from its member, given back if it is cancelled.
    pub(crate) order_lots: HashMap<u64, Lots>,
    /// The tier configuration, once set.
    pub(crate) tiers: Option<TierConfig>,
}

impl LoyaltyState {
    /// Rebuilds the loyalty state from stored records.
    pub fn from_parts(
        holdings: HashMap<AccountId, Holdings>,
        earns: HashMap<u64, EarnRecord>,
        order_lots: HashMap<u64, Lots>,
        tiers: Option<TierConfig>,
    ) -> LoyaltyState {
        LoyaltyState {
            holdings,
            earns,
            order_lots,
            tiers,
        }
    }

    /// An account's lots and pending awards.
    pub fn holdings(&self, account: &AccountId) -> Option<&Holdings> {
        self.holdings.get(account)
    }

    /// An award.
    pub fn earn(&self, earn_id: u64) -> Option<&EarnRecord> {
        self.earns.get(&earn_id)
    }

    /// The lots an open order took.
    pub fn order_lots(&self, order_id: u64) -> Option<&Lots> {
        self.order_lots.get(&order_id)
    }

    /// The tier configuration.
    pub fn tiers(&self) -> Option<&TierConfig> {
        self.tiers.as_ref()
    }
}

/// What an applied op changed in the loyalty state, so the store knows what to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoyaltyEffects {
    /// The holdings of the op's parties may have changed.
    pub holdings: bool,
    /// An award record written.
    pub earn: Option<u64>,
    /// An order's lots written or dropped.
    pub order_lots: Option<u64>,
    /// The tier configuration written.
    pub tiers: bool,
}

impl State {
    /// The loyalty part of the state.
    pub fn loyalty(&self) -> &LoyaltyState {
        &self.loyalty
    }

    /// Points `account` may spend in an entry stamped `now_ms`: its lots that have not
    /// expired (pending awards and expired lots excluded).
    pub fn spendable(&self, account: &AccountId, now_ms: u64) -> u64 {
        self.loyalty
            .holdings
            .get(account)
            .map_or(0, |h| h.lots.spendable(now_ms))
    }
}

fn is_merchant(state: &State, account: &AccountId) -> bool {
    state.merchant(account).is_some()
}

fn holdings_mut<'a>(state: &'a mut State, account: &AccountId) -> &'a mut Holdings {
    state.loyalty.holdings.entry(*account).or_default()
}

fn tidy(state: &mut State, account: &AccountId) {
    if state
        .loyalty
        .holdings
        .get(account)
        .is_some_and(Holdings::is_empty)
    {
        state.loyalty.holdings.remove(account);
    }
}

/// Takes `amount` spendable points from `from`'s lots (soonest expiry first, `first`
/// preferred). The balance is the caller's business.
pub(crate) fn take(
    state: &mut State,
    from: &AccountId,
    amount: u64,
    now_ms: u64,
    first: Option<Expiry>,
) -> Lots {
    if amount == 0 {
        return Lots::default();
    }
    let taken = holdings_mut(state, from).lots.take(amount, now_ms, first);
    debug_assert_eq!(taken.total(), amount, "spending was checked to be covered");
    tidy(state, from);
    taken
}

/// Credits lots to `to`: as they are for a member, as one non-expiring lot for a merchant.
pub(crate) fn give(state: &mut State, to: &AccountId, lots: &Lots) {
    if lots.is_empty() {
        return;
    }
    if is_merchant(state, to) {
        let total = lots.total();
        holdings_mut(state, to).lots.add(Expiry::Never, total);
    } else {
        holdings_mut(state, to).lots.add_all(lots);
    }
}

/// The lots side of a move of `amount` from `from` to `to` (balances are moved by
/// [`State::do_move`]). Returns the lots taken from `from`.
pub(crate) fn move_lots(
    state: &mut State,
    from: &AccountId,
    to: &AccountId,
    amount: u64,
    now_ms: u64,
) -> Lots {
    let lots = take(state, from, amount, now_ms, None);
    give(state, to, &lots);
    lots
}

/// Mint's expiry check: a lot must not be born expired, and a merchant's float never
/// expires (`invalid_field` `expires_at_ms`).
pub(crate) fn check_new_lot(
    state: &State,
    ctx: Ctx,
    to: &AccountId,
    expires_at_ms: Option<u64>,
) -> Result<(), Rejection> {
    if let Some(t) = expires_at_ms {
        if t <= ctx.timestamp_ms || is_merchant(state, to) {
            return Err(Rejection::InvalidField("expires_at_ms"));
        }
    }
    Ok(())
}

/// Mint's lot: `amount` points expiring at `expires_at_ms` (checked) into `to`.
pub(crate) fn credit_minted(
    state: &mut State,
    to: &AccountId,
    amount: u64,
    expires_at_ms: Option<u64>,
) {
    give(
        state,
        to,
        &Lots::one(Expiry::from_ms(expires_at_ms), amount),
    );
}

/// Burn's lots: `amount` spendable points taken from `from` (balance handled by the caller).
pub(crate) fn take_burned(state: &mut State, from: &AccountId, amount: u64, now_ms: u64) {
    take(state, from, amount, now_ms, None);
}

/// Redeem: remembers the lots the order took, to give them back if it is cancelled.
pub(crate) fn keep_order_lots(state: &mut State, order_id: u64, lots: Lots) {
    state.loyalty.order_lots.insert(order_id, lots);
}

/// FulfillOrder: the order's lots are no longer needed.
pub(crate) fn drop_order_lots(state: &mut State, order_id: u64) {
    state.loyalty.order_lots.remove(&order_id);
}

/// CancelOrder: moves `total` from the merchant back to the member (checked by the caller);
/// the member gets back the very lots the order took, with their expiry (even one that has
/// passed since: such a lot waits for Expire).
pub(crate) fn refund_order(
    state: &mut State,
    order_id: u64,
    merchant: &AccountId,
    member: &AccountId,
    total: u64,
    now_ms: u64,
) {
    *state.balances.entry(*merchant).or_insert(0) -= total;
    *state.balances.entry(*member).or_insert(0) += total;
    take(state, merchant, total, now_ms, None);
    let lots = match state.loyalty.order_lots.remove(&order_id) {
        Some(l) if l.total() == total => l,
        _ => Lots::one(Expiry::Never, total),
    };
    give(state, member, &lots);
}

// ---------------------------------------------------------------------------------------
// Release of pending awards
// ---------------------------------------------------------------------------------------

/// Awards released before an op's checks, so a refused op can put them back.
#[derive(Debug, Default)]
pub(crate) struct Released(Vec<u64>);

impl Released {
    /// Whether anything was released.
    pub(crate) fn any(&self) -> bool {
        !self.0.is_empty()
    }
}

/// The accounts an op touches (its history): the signer and every account it names, or
/// names through the item, order or award it refers to.
fn subjects(state: &State, signer: AccountId, op: &Op) -> [Option<AccountId>; 3] {
    let order = |id: u64| state.orders.get(&id).map(|o| (o.member, o.merchant));
    let (a, b) = match op {
        Op::Genesis(_) | Op::ListItem(_) | Op::UpdateItem(_) | Op::SetTiers(_) => (None, None),
        Op::RegisterMerchant(r) => (Some(r.merchant), None),
        Op::UpdateMerchant(u) => (Some(u.merchant), None),
        Op::RegisterAuditor(r) => (Some(r.auditor), None),
        Op::Mint(m) => (Some(m.to), None),
        Op::Earn(e) => (Some(e.member), None),
        Op::Transfer(t) => (Some(t.to), None),
        Op::Burn(b) => (Some(b.from), None),
        Op::Redeem(r) => (state.items.get(&r.item_id).map(|i| i.merchant), None),
        Op::FulfillOrder(f) => order(f.order_id).map_or((None, None), |(m, s)| (Some(m), Some(s))),
        Op::CancelOrder(c) => order(c.order_id).map_or((None, None), |(m, s)| (Some(m), Some(s))),
        Op::Settle(s) => (Some(s.merchant), None),
        Op::Expire(x) => (Some(x.account), None),
        Op::ConfirmEarn(c) => (state.loyalty.earns.get(&c.earn_id).map(|e| e.member), None),
        Op::ReverseEarn(r) => (state.loyalty.earns.get(&r.earn_id).map(|e| e.member), None),
    };
    [Some(signer), a, b]
}

/// Moves one pending award into its member's lots.
fn release(state: &mut State, earn_id: u64) {
    let Some(e) = state.loyalty.earns.get(&earn_id) else {
        return;
    };
    let (member, amount, expiry) = (e.member, e.amount.0, e.lot_expiry());
    let key = if is_merchant(state, &member) {
        Expiry::Never
    } else {
        expiry
    };
    let h = holdings_mut(state, &member);
    if let Ok(i) = h.pending.binary_search(&earn_id) {
        h.pending.remove(i);
        h.pending_total -= amount;
        h.lots.add(key, amount);
    }
}

/// Undoes [`release`] (same op, so the member's role has not changed).
fn unrelease(state: &mut State, earn_id: u64) {
    let Some(e) = state.loyalty.earns.get(&earn_id) else {
        return;
    };
    let (member, amount, expiry) = (e.member, e.amount.0, e.lot_expiry());
    let key = if is_merchant(state, &member) {
        Expiry::Never
    } else {
        expiry
    };
    let h = holdings_mut(state, &member);
    if let Err(i) = h.pending.binary_search(&earn_id) {
        let removed = h.lots.remove(key, amount);
        debug_assert!(removed, "an undone release finds its lot");
        h.pending.insert(i, earn_id);
        h.pending_total += amount;
    }
}

/// Before an op's own checks: releases every pending award of the op's subjects whose
/// `release_at_ms` is at or before the entry's timestamp, in earn id order.
pub(crate) fn release_due(state: &mut State, env: &Envelope, now_ms: u64) -> Released {
    let mut released = Released::default();
    let subjects = subjects(state, env.signer, &env.op);
    for (i, s) in subjects.iter().enumerate() {
        let Some(account) = s else { continue };
        if subjects[..i].contains(s) {
            continue;
        }
        let Some(h) = state.loyalty.holdings.get(account) else {
            continue;
        };
        let due: Vec<u64> = h
            .pending
            .iter()
            .copied()
            .filter(|id| {
                state
                    .loyalty
                    .earns
                    .get(id)
                    .and_then(|e| e.pending)
                    .and_then(|p| p.release_at_ms)
                    .is_some_and(|t| t <= now_ms)
            })
            .collect();
        for id in due {
            release(state, id);
            released.0.push(id);
        }
    }
    released
}

/// After a refused op: puts back what [`release_due`] released.
pub(crate) fn undo_release(state: &mut State, released: Released) {
    for id in released.0.into_iter().rev() {
        unrelease(state, id);
    }
}

fn is_pending(state: &State, e: &EarnRecord) -> bool {
    state
        .loyalty
        .holdings
        .get(&e.member)
        .is_some_and(|h| h.pending.binary_search(&e.earn_id).is_ok())
}

// ---------------------------------------------------------------------------------------
// The ops
// ---------------------------------------------------------------------------------------

fn with_loyalty(mut e: Effects, f: impl FnOnce(&mut LoyaltyEffects)) -> Effects {
    f(&mut e.loyalty);
    e
}

/// `Earn` (`ledger-spec/loyalty.md` §3.1). Checks, in order: signer an active merchant,
/// reference, amount, not to itself, member key, expiry, pending terms, funds, overflow.
pub(crate) fn earn(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    e: &Earn,
) -> Result<Effects, Rejection> {
    state.check_merchant_signer(&signer)?;
    check_bytes("reference", &e.reference)?;
    let amount = check_amount(e.amount)?;
    if e.member == signer {
        return Err(Rejection::SelfTransfer);
    }
    state.check_new_account(&e.member)?;
    check_new_lot(state, ctx, &e.member, e.expires_at_ms)?;
    if let Some(p) = e.pending {
        if is_merchant(state, &e.member) || p.release_at_ms.is_some_and(|t| t <= ctx.timestamp_ms) {
            return Err(Rejection::InvalidField("pending"));
        }
        if let (Some(r), Some(x)) = (p.release_at_ms, e.expires_at_ms) {
            if x <= r {
                return Err(Rejection::InvalidField("expires_at_ms"));
            }
        }
    }
    state.check_move(&signer, &e.member, amount, ctx.timestamp_ms)?;
    // Effects.
    let growth = state
        .loyalty
        .tiers
        .as_ref()
        .map_or(0, |t| t.growth_for(e.reason, amount));
    *state.balances.entry(signer).or_insert(0) -= amount;
    *state.balances.entry(e.member).or_insert(0) += amount;
    take(state, &signer, amount, ctx.timestamp_ms, None);
    match e.pending {
        None => give(
            state,
            &e.member,
            &Lots::one(Expiry::from_ms(e.expires_at_ms), amount),
        ),
        Some(_) => {
            let h = holdings_mut(state, &e.member);
            h.pending.push(ctx.seq);
            h.pending_total += amount;
        }
    }
    state.loyalty.earns.insert(
        ctx.seq,
        EarnRecord {
            earn_id: ctx.seq,
            merchant: signer,
            member: e.member,
            amount: e.amount,
            reason: e.reason,
            reference: e.reference.clone(),
            earned_at_ms: ctx.timestamp_ms,
            expires_at_ms: e.expires_at_ms,
            pending: e.pending,
            growth,
            confirmed_seq: None,
            confirmed_at_ms: None,
            reversed_seq: None,
            reversal_reason: Bytes::default(),
            returned: Points(0),
            unrecovered: Points(0),
        },
    );
    settlement::record(
        state,
        &signer,
        ctx.seq,
        BookEvent::Awarded { points: amount },
    );
    if is_merchant(state, &e.member) {
        settlement::record(
            state,
            &e.member,
            ctx.seq,
            BookEvent::TransferredIn { points: amount },
        );
    }
    let both = Parties::two(signer, e.member);
    let effects = Effects {
        balances: both,
        balances_changed: true,
        books: Some(both),
        ..Effects::none(both)
    };
    Ok(with_loyalty(effects, |l| {
        l.holdings = true;
        l.earn = Some(ctx.seq);
    }))
}

/// `Expire` (`ledger-spec/loyalty.md` §2.4). Checks, in order: signer the issuer, amount,
/// `as_of_ms ≤ timestamp`, account exists, amount equals the expired lots, overflow.
pub(crate) fn expire(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    issuer: AccountId,
    op: &Expire,
) -> Result<Effects, Rejection> {
    if signer != issuer {
        return Err(Rejection::NotAuthorized);
    }
    let amount = check_amount(op.amount)?;
    if op.as_of_ms > ctx.timestamp_ms {
        return Err(Rejection::InvalidField("as_of_ms"));
    }
    if !state.has_account(&op.account) {
        return Err(Rejection::UnknownAccount);
    }
    let due = state
        .loyalty
        .holdings
        .get(&op.account)
        .map_or(0, |h| h.lots.expired_by(op.as_of_ms));
    if due != amount {
        return Err(Rejection::ExpiryMismatch);
    }
    let burned = state
        .totals
        .burned
        .checked_add(amount)
        .ok_or(Rejection::Overflow)?;
    // Effects.
    let taken = holdings_mut(state, &op.account)
        .lots
        .take_expired(op.as_of_ms);
    debug_assert_eq!(taken.total(), amount);
    tidy(state, &op.account);
    *state.balances.entry(op.account).or_insert(0) -= amount;
    state.totals.burned = burned;
    state.totals.supply -= amount;
    settlement::record(
        state,
        &op.account,
        ctx.seq,
        BookEvent::Burned { points: amount },
    );
    let effects = Effects {
        balances: Parties::one(op.account),
        balances_changed: true,
        books: Some(Parties::one(op.account)),
        ..Effects::none(Parties::two(signer, op.account))
    };
    Ok(with_loyalty(effects, |l| l.holdings = true))
}

/// `ConfirmEarn` (`ledger-spec/loyalty.md` §3.2). Checks, in order: signer an active
/// merchant, award exists, signer made it, award pending.
pub(crate) fn confirm_earn(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    op: &ConfirmEarn,
) -> Result<Effects, Rejection> {
    state.check_merchant_signer(&signer)?;
    let e = state
        .loyalty
        .earns
        .get(&op.earn_id)
        .ok_or(Rejection::UnknownEarn)?;
    if e.merchant != signer {
        return Err(Rejection::NotAuthorized);
    }
    if !is_pending(state, e) {
        return Err(Rejection::EarnClosed);
    }
    let member = e.member;
    // Effects.
    release(state, op.earn_id);
    if let Some(e) = state.loyalty.earns.get_mut(&op.earn_id) {
        e.confirmed_seq = Some(ctx.seq);
        e.confirmed_at_ms = Some(ctx.timestamp_ms);
    }
    Ok(with_loyalty(
        Effects::none(Parties::two(signer, member)),
        |l| {
            l.holdings = true;
            l.earn = Some(op.earn_id);
        },
    ))
}

/// `ReverseEarn` (`ledger-spec/loyalty.md` §3.3). Checks, in order: signer an active
/// merchant, reason, award exists, signer made it, not reversed yet, overflow.
pub(crate) fn reverse_earn(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    op: &ReverseEarn,
) -> Result<Effects, Rejection> {
    state.check_merchant_signer(&signer)?;
    check_bytes("reason", &op.reason)?;
    let e = state
        .loyalty
        .earns
        .get(&op.earn_id)
        .ok_or(Rejection::UnknownEarn)?;
    if e.merchant != signer {
        return Err(Rejection::NotAuthorized);
    }
    if e.reversed_seq.is_some() {
        return Err(Rejection::EarnClosed);
    }
    let (member, amount, expiry) = (e.member, e.amount.0, e.lot_expiry());
    let pending = is_pending(state, e);
    let returned = if pending {
        amount
    } else {
        amount.min(state.spendable(&member, ctx.timestamp_ms))
    };
    state
        .balance(&signer)
        .checked_add(returned)
        .ok_or(Rejection::Overflow)?;
    // Effects.
    if pending {
        let h = holdings_mut(state, &member);
        if let Ok(i) = h.pending.binary_search(&op.earn_id) {
            h.pending.remove(i);
        }
        h.pending_total -= amount;
        tidy(state, &member);
    } else {
        let first = if is_merchant(state, &member) {
            Expiry::Never
        } else {
            expiry
        };
        take(state, &member, returned, ctx.timestamp_ms, Some(first));
    }
    *state.balances.entry(member).or_insert(0) -= returned;
    *state.balances.entry(signer).or_insert(0) += returned;
    give(state, &signer, &Lots::one(Expiry::Never, returned));
    if let Some(e) = state.loyalty.earns.get_mut(&op.earn_id) {
        e.reversed_seq = Some(ctx.seq);
        e.reversal_reason = op.reason.clone();
        e.returned = Points(returned);
        e.unrecovered = Points(amount - returned);
    }
    settlement::record(
        state,
        &signer,
        ctx.seq,
        BookEvent::AwardReversed {
            earn_id: op.earn_id,
            points: returned,
            unrecovered: amount - returned,
        },
    );
    if returned > 0 {
        settlement::record(
            state,
            &member,
            ctx.seq,
            BookEvent::TransferredOut { points: returned },
        );
    }
    let both = Parties::two(signer, member);
    let effects = Effects {
        balances: both,
        balances_changed: true,
        books: Some(both),
        ..Effects::none(both)
    };
    Ok(with_loyalty(effects, |l| {
        l.holdings = true;
        l.earn = Some(op.earn_id);
    }))
}

/// `SetTiers` (`ledger-spec/loyalty.md` §4.1). Checks, in order: signer the issuer, tiers,
/// window, default rate, per-reason rates.
pub(crate) fn set_tiers(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    issuer: AccountId,
    op: &SetTiers,
) -> Result<Effects, Rejection> {
    if signer != issuer {
        return Err(Rejection::NotAuthorized);
    }
    let bad_tiers = Rejection::InvalidField("tiers");
    if op.tiers.is_empty() || op.tiers.len() > TIERS_MAX || op.tiers[0].min_growth != 0 {
        return Err(bad_tiers);
    }
    for (i, t) in op.tiers.iter().enumerate() {
        check_text("tiers", &t.name, NAME_LEN_MAX)?;
        if i > 0 && t.min_growth <= op.tiers[i - 1].min_growth {
            return Err(bad_tiers);
        }
        if op.tiers[..i].iter().any(|o| o.name == t.name) {
            return Err(bad_tiers);
        }
    }
    if op.window_ms == 0 || op.window_ms > WINDOW_MS_MAX {
        return Err(Rejection::InvalidField("window_ms"));
    }
    check_rate("growth_per_point", &op.growth_per_point)?;
    for (i, r) in op.reason_rates.iter().enumerate() {
        check_rate("reason_rates", &r.rate)?;
        if op.reason_rates[..i].iter().any(|o| o.reason == r.reason) {
            return Err(Rejection::InvalidField("reason_rates"));
        }
    }
    state.loyalty.tiers = Some(TierConfig {
        tiers: op.tiers.clone(),
        window_ms: op.window_ms,
        growth_per_point: op.growth_per_point,
        reason_rates: op.reason_rates.clone(),
        set_seq: ctx.seq,
    });
    Ok(with_loyalty(Effects::none(Parties::one(signer)), |l| {
        l.tiers = true
    }))
}

// ---------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------

/// `ledger-spec/loyalty.md` §5: for every account, `Σ lots + pending = balance`; the
/// pending list names exactly the account's unreversed pending awards; every open order's
/// lots add up to its total. O(accounts + pending awards + open orders).
pub fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
    let bad = |m: String| Err(InvariantViolation(m));
    for (account, h) in &state.loyalty.holdings {
        if !state.has_account(account) {
            return bad(format!("{account} holds lots but has no balance"));
        }
        let mut pending: u64 = 0;
        for id in &h.pending {
            match state.loyalty.earns.get(id) {
                Some(e) if e.member == *account && e.reversed_seq.is_none() => {
                    pending = pending.saturating_add(e.amount.0);
                }
                _ => return bad(format!("{account} lists award {id} as pending wrongly")),
            }
        }
        if !h.pending.windows(2).all(|w| w[0] < w[1]) {
            return bad(format!("{account}'s pending awards are not in order"));
        }
        if pending != h.pending_total {
            return bad(format!(
                "{account}: pending awards add up to {pending}, recorded {}",
                h.pending_total
            ));
        }
        if h.lots.iter().any(|(_, p)| p == 0) {
            return bad(format!("{account} has an empty lot"));
        }
    }
    for (account, balance) in state.balances() {
        let (lots, pending) = state
            .loyalty
            .holdings
            .get(account)
            .map_or((0, 0), |h| (h.lots.total(), h.pending_total));
        if lots.checked_add(pending) != Some(*balance) {
            return bad(format!(
                "{account}: lots {lots} + pending {pending} != balance {balance}"
            ));
        }
    }
    for (order_id, lots) in &state.loyalty.order_lots {
        match state.order(*order_id) {
            Some(o) if o.status == crate::mall::OrderStatus::Open && o.total.0 == lots.total() => {}
            _ => return bad(format!("lots kept for order {order_id} do not match it")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Views (for the API; pure functions of records and a time)
// ---------------------------------------------------------------------------------------

/// One lot as a member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LotView {
    /// When it expires (unix ms); absent = never.
    pub expires_at_ms: Option<u64>,
    /// Points.
    pub points: u64,
    /// Expired: no longer spendable, waiting to be burned by an Expire.
    pub expired: bool,
    /// Expires within the next 30 days.
    pub expiring_soon: bool,
}

/// A pending award as its member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingView {
    /// The award (seq of its Earn).
    pub earn_id: u64,
    /// The merchant.
    pub merchant: AccountId,
    /// Points.
    pub points: u64,
    /// Released at this time; absent = when the merchant confirms.
    pub release_at_ms: Option<u64>,
    /// Expiry of its lot once released.
    pub expires_at_ms: Option<u64>,
}

/// `GET /v1/wallets/{account}/lots`: an account's points by expiry, as of a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LotsView {
    /// The account.
    pub account: AccountId,
    /// The time the view is computed for (unix ms).
    pub as_of_ms: u64,
    /// All points held: lots (expired ones included) + pending.
    pub balance: u64,
    /// Points that can be spent now.
    pub available: u64,
    /// Points of pending awards (not spendable yet).
    pub pending: u64,
    /// Points of expired lots not burned yet (not spendable).
    pub expired: u64,
    /// Points expiring within the next 30 days.
    pub expiring_soon: u64,
    /// The lots, soonest expiry first.
    pub lots: Vec<LotView>,
    /// The pending awards.
    pub pending_awards: Vec<PendingView>,
}

/// The lots view of `holdings` as of `now_ms`: pending awards whose release time has come
/// are shown released (the rules release them at the account's next entry).
/// `pending_earns` are the records of `holdings.pending` (others are ignored).
pub fn lots_view(
    account: AccountId,
    holdings: &Holdings,
    pending_earns: &[EarnRecord],
    is_merchant: bool,
    now_ms: u64,
) -> LotsView {
    let mut lots = holdings.lots.clone();
    let mut pending_awards = Vec::new();
    let mut pending = 0u64;
    for e in pending_earns {
        if holdings.pending.binary_search(&e.earn_id).is_err() {
            continue;
        }
        if e.status_at(now_ms) == EarnStatus::Released {
            let key = if is_merchant {
                Expiry::Never
            } else {
                e.lot_expiry()
            };
            lots.add(key, e.amount.0);
        } else {
            pending = pending.saturating_add(e.amount.0);
            pending_awards.push(PendingView {
                earn_id: e.earn_id,
                merchant: e.merchant,
                points: e.amount.0,
                release_at_ms: e.pending.and_then(|p| p.release_at_ms),
                expires_at_ms: e.expires_at_ms,
            });
        }
    }
    let soon = now_ms.saturating_add(EXPIRING_SOON_MS);
    let (mut available, mut expired, mut expiring_soon) = (0u64, 0u64, 0u64);
    let lots: Vec<LotView> = lots
        .iter()
        .map(|(e, points)| {
            let is_expired = !e.spendable_at(now_ms);
            let is_soon = !is_expired && e.ms().is_some_and(|t| t <= soon);
            if is_expired {
                expired = expired.saturating_add(points);
            } else {
                available = available.saturating_add(points);
            }
            if is_soon {
                expiring_soon = expiring_soon.saturating_add(points);
            }
            LotView {
                expires_at_ms: e.ms(),
                points,
                expired: is_expired,
                expiring_soon: is_soon,
            }
        })
        .collect();
    LotsView {
        account,
        as_of_ms: now_ms,
        balance: available.saturating_add(expired).saturating_add(pending),
        available,
        pending,
        expired,
        expiring_soon,
        lots,
        pending_awards,
    }
}

/// `GET /v1/wallets/{account}/tier`: a member's tier and growth as of a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TierStatus {
    /// The account.
    pub account: AccountId,
    /// The time the view is computed for (unix ms).
    pub as_of_ms: u64,
    /// The rolling window (ms); absent before the first SetTiers.
    pub window_ms: Option<u64>,
    /// Growth of awards released within the window `(as_of − window, as_of]`.
    pub growth: u64,
    /// Growth of pending awards, counted once they are released.
    pub pending_growth: u64,
    /// The tier held: the highest whose `min_growth ≤ growth`; absent before the first SetTiers.
    pub tier: Option<String>,
    /// The next tier up, if any.
    pub next_tier: Option<String>,
    /// Growth still needed for the next tier.
    pub growth_to_next_tier: Option<u64>,
    /// Without new growth, the tier is lost at this time (as old growth leaves the window);
    /// absent for the lowest tier.
    pub tier_held_until_ms: Option<u64>,
    /// The program's tiers, lowest first.
    pub tiers: Vec<Tier>,
}

/// The tier of a member whose awards are `earns`, as of `now_ms`. An award's growth counts
/// from its release time `t` while `t ≤ now < t + window_ms`, unless it was reversed.
pub fn tier_status(
    account: AccountId,
    config: Option<&TierConfig>,
    earns: &[EarnRecord],
    now_ms: u64,
) -> TierStatus {
    let mut out = TierStatus {
        account,
        as_of_ms: now_ms,
        window_ms: config.map(|c| c.window_ms),
        growth: 0,
        pending_growth: 0,
        tier: None,
        next_tier: None,
        growth_to_next_tier: None,
        tier_held_until_ms: None,
        tiers: config.map(|c| c.tiers.clone()).unwrap_or_default(),
    };
    let Some(config) = config else {
        return out;
    };
    let mut counted: Vec<(u64, u64)> = Vec::new();
    let earns = earns
        .iter()
        .filter(|e| e.member == account && e.growth > 0 && e.earned_at_ms <= now_ms);
    for e in earns {
        match e.status_at(now_ms) {
            EarnStatus::Pending => out.pending_growth = out.pending_growth.saturating_add(e.growth),
            EarnStatus::Reversed => {}
            EarnStatus::Released => {
                let t = e.released_at_ms().unwrap_or(e.earned_at_ms);
                if t.saturating_add(config.window_ms) > now_ms {
                    counted.push((t, e.growth));
                }
            }
        }
    }
    counted.sort_unstable();
    out.growth = counted.iter().fold(0u64, |a, (_, g)| a.saturating_add(*g));
    let level = config
        .tiers
        .iter()
        .rposition(|t| t.min_growth <= out.growth)
        .unwrap_or(0);
    let held = &config.tiers[level];
    out.tier = Some(held.name.clone());
    if let Some(next) = config.tiers.get(level + 1) {
        out.next_tier = Some(next.name.clone());
        out.growth_to_next_tier = Some(next.min_growth - out.growth);
    }
    if held.min_growth > 0 {
        let mut left = out.growth;
        for (t, g) in &counted {
            left = left.saturating_sub(*g);
            if left < held.min_growth {
                out.tier_held_until_ms = Some(t.saturating_add(config.window_ms));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    #[test]
    fn lots_are_spent_soonest_expiry_first_and_never_last() {
        let mut l = Lots::default();
        l.add(Expiry::Never, 5);
        l.add(Expiry::At(T + 300), 10);
        l.add(Expiry::At(T + 100), 3);
        l.add(Expiry::At(T + 100), 4); // merged with the equal expiry
        assert_eq!(l.iter().count(), 3);
        assert_eq!(l.total(), 22);
        let taken = l.take(9, T, None);
        assert_eq!(
            taken.iter().collect::<Vec<_>>(),
            vec![(Expiry::At(T + 100), 7), (Expiry::At(T + 300), 2)]
        );
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            vec![(Expiry::At(T + 300), 8), (Expiry::Never, 5)]
        );
    }

    #[test]
    fn expired_lots_are_not_spendable_but_expirable() {
        let mut l = Lots::default();
        l.add(Expiry::At(T), 4);
        l.add(Expiry::At(T + 1), 6);
        l.add(Expiry::Never, 1);
        // At T, the lot expiring at T is expired: the expiry time is exclusive.
        assert_eq!(l.spendable(T), 7);
        assert_eq!(l.spendable(T - 1), 11);
        assert_eq!(l.expired_by(T), 4);
        assert_eq!(l.expired_by(T + 1), 10);
        let taken = l.take(7, T, None);
        assert_eq!(taken.total(), 7);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![(Expiry::At(T), 4)]);
        assert_eq!(l.take_expired(T).total(), 4);
        assert!(l.is_empty());
    }

    #[test]
    fn take_prefers_the_named_lot_then_soonest() {
        let mut l = Lots::default();
        l.add(Expiry::At(T + 10), 5);
        l.add(Expiry::At(T + 20), 5);
        l.add(Expiry::Never, 5);
        let taken = l.take(7, T, Some(Expiry::Never));
        assert_eq!(
            taken.iter().collect::<Vec<_>>(),
            vec![(Expiry::At(T + 10), 2), (Expiry::Never, 5)]
        );
    }

    #[test]
    fn take_expired_at_the_largest_time() {
        let mut l = Lots::default();
        l.add(Expiry::At(u64::MAX), 2);
        l.add(Expiry::Never, 3);
        assert_eq!(l.expired_by(u64::MAX), 2);
        assert_eq!(l.take_expired(u64::MAX).total(), 2);
        assert_eq!(l.total(), 3);
    }

    fn record(id: u64, growth: u64, released_at: u64) -> EarnRecord {
        EarnRecord {
            earn_id: id,
            merchant: AccountId([1; 32]),
            member: AccountId([2; 32]),
            amount: Points(growth),
            reason: EarnReason::Purchase,
            reference: Bytes::default(),
            earned_at_ms: released_at,
            expires_at_ms: None,
            pending: None,
            growth,
            confirmed_seq: None,
            confirmed_at_ms: None,
            reversed_seq: None,
            reversal_reason: Bytes::default(),
            returned: Points(0),
            unrecovered: Points(0),
        }
    }

    #[test]
    fn tiers_follow_the_rolling_window() {
        let config = TierConfig {
            tiers: vec![
                Tier {
                    name: "Silver".into(),
                    min_growth: 0,
                },
                Tier {
                    name: "Gold".into(),
                    min_growth: 100,
                },
            ],
            window_ms: 1_000,
            growth_per_point: Rate {
                minor_units: 1,
                per_points: 1,
            },
            reason_rates: vec![],
            set_seq: 1,
        };
        let earns = vec![record(1, 60, T), record(2, 50, T + 500)];
        let member = AccountId([2; 32]);
        let s = tier_status(member, Some(&config), &earns, T + 600);
        assert_eq!((s.growth, s.tier.as_deref()), (110, Some("Gold")));
        assert_eq!(s.tier_held_until_ms, Some(T + 1_000));
        // The first award leaves the window at T + 1000 exactly.
        let s = tier_status(member, Some(&config), &earns, T + 999);
        assert_eq!(s.tier.as_deref(), Some("Gold"));
        let s = tier_status(member, Some(&config), &earns, T + 1_000);
        assert_eq!((s.growth, s.tier.as_deref()), (50, Some("Silver")));
        assert_eq!(s.growth_to_next_tier, Some(50));
        assert_eq!(s.tier_held_until_ms, None);
    }
}
