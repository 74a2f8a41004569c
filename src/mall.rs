//! The redemption mall's rules: catalog, redemptions and orders. Part of the pure state
//! machine (called only from [`crate::rules::apply`]); implements `ledger-spec/mall.md`.
//!
//! Item ids and order ids are the seqs of the `ListItem` and `Redeem` entries that created
//! them, so every price a member paid and every unit a merchant had is provable from the
//! chain. Every check happens before any change: a refused op changes nothing.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::op::*;
use crate::rules::{Ctx, Effects, Parties, Rejection, State};
use crate::settlement::{self, BookEvent};

/// Longest item title, in bytes.
pub const TITLE_LEN_MAX: usize = 80;
/// Longest item description, in bytes.
pub const DESCRIPTION_LEN_MAX: usize = 280;

/// An item of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemRecord {
    /// The item id (seq of its ListItem entry).
    pub item_id: u64,
    /// The listing merchant.
    pub merchant: AccountId,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Price of one unit.
    pub price: Points,
    /// Units left.
    pub stock: u64,
    /// Most units per order (0 = no limit).
    pub limit_per_order: u64,
    /// Most units per member (0 = no limit).
    pub limit_per_member: u64,
    /// Start of availability (unix ms).
    pub available_from_ms: u64,
    /// End of availability (unix ms, exclusive).
    pub available_until_ms: Option<u64>,
    /// Redeemable now.
    pub active: bool,
    /// Units in open or fulfilled orders.
    pub units_redeemed: u64,
    /// Seq of the last change.
    pub updated_seq: u64,
}

/// Where an order is in its life.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Paid, not yet delivered.
    Open,
    /// Delivered (final).
    Fulfilled,
    /// Cancelled and refunded (final).
    Cancelled,
}

impl OrderStatus {
    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderRecord {
    /// The order id (seq of its Redeem entry).
    pub order_id: u64,
    /// The item.
    pub item_id: u64,
    /// The merchant paid.
    pub merchant: AccountId,
    /// The member who redeemed.
    pub member: AccountId,
    /// Units.
    pub quantity: u64,
    /// Price paid per unit.
    pub unit_price: Points,
    /// Points paid in all.
    pub total: Points,
    /// Status.
    pub status: OrderStatus,
    /// Seq of the FulfillOrder or CancelOrder entry that closed it.
    pub closed_seq: Option<u64>,
    /// Who cancelled it, if cancelled.
    pub cancelled_by: Option<AccountId>,
    /// Fulfilment reference, if fulfilled.
    pub fulfilment_reference: Bytes,
    /// The merchant's redeem rate when the order was placed (what settlement pays for it).
    pub redeem_rate: Rate,
}

fn check_title(title: &str) -> Result<(), Rejection> {
    if title.is_empty() || title.len() > TITLE_LEN_MAX || title.chars().any(char::is_control) {
        return Err(Rejection::InvalidField("title"));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), Rejection> {
    if d.len() > DESCRIPTION_LEN_MAX || d.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Rejection::InvalidField("description"));
    }
    Ok(())
}

fn check_window(from: u64, until: Option<u64>) -> Result<(), Rejection> {
    if until.is_some_and(|u| u <= from) {
        return Err(Rejection::InvalidField("available_until_ms"));
    }
    Ok(())
}

fn check_active_merchant(state: &State, signer: &AccountId) -> Result<(), Rejection> {
    match state.merchant(signer) {
        None => Err(Rejection::NotAuthorized),
        Some(m) if m.status == MerchantStatus::Suspended => Err(Rejection::MerchantSuspended),
        Some(_) => Ok(()),
    }
}

fn effects(parties: Parties, balances: Option<Parties>) -> Effects {
    Effects {
        balances: balances.unwrap_or(parties),
        balances_changed: balances.is_some(),
        ..Effects::none(parties)
    }
}

/// `ListItem`.
pub(crate) fn list_item(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    op: &ListItem,
) -> Result<Effects, Rejection> {
    check_active_merchant(state, &signer)?;
    check_title(&op.title)?;
    check_description(&op.description)?;
    if op.price.0 == 0 {
        return Err(Rejection::ZeroAmount);
    }
    check_window(op.available_from_ms, op.available_until_ms)?;
    state.items.insert(
        ctx.seq,
        ItemRecord {
            item_id: ctx.seq,
            merchant: signer,
            title: op.title.clone(),
            description: op.description.clone(),
            price: op.price,
            stock: op.stock,
            limit_per_order: op.limit_per_order,
            limit_per_member: op.limit_per_member,
            available_from_ms: op.available_from_ms,
            available_until_ms: op.available_until_ms,
            active: op.active,
            units_redeemed: 0,
            updated_seq: ctx.seq,
        },
    );
    let mut e = effects(Parties::one(signer), None);
    e.item = Some(ctx.seq);
    Ok(e)
}

/// `UpdateItem`.
pub(crate) fn update_item(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    op: &UpdateItem,
) -> Result<Effects, Rejection> {
    check_active_merchant(state, &signer)?;
    let item = state.items.get(&op.item_id).ok_or(Rejection::UnknownItem)?;
    if item.merchant != signer {
        return Err(Rejection::NotAuthorized);
    }
    if let Some(t) = &op.title {
        check_title(t)?;
    }
    if let Some(d) = &op.description {
        check_description(d)?;
    }
    if op.price.is_some_and(|p| p.0 == 0) {
        return Err(Rejection::ZeroAmount);
    }
    let from = op.available_from_ms.unwrap_or(item.available_from_ms);
    let until = op.available_until_ms.unwrap_or(item.available_until_ms);
    check_window(from, until)?;
    let stock = if op.stock_delta >= 0 {
        item.stock
            .checked_add(op.stock_delta.unsigned_abs())
            .ok_or(Rejection::Overflow)?
    } else {
        item.stock
            .checked_sub(op.stock_delta.unsigned_abs())
            .ok_or(Rejection::InvalidField("stock_delta"))?
    };
    let item = state.items.get_mut(&op.item_id).expect("checked above");
    if let Some(t) = &op.title {
        item.title = t.clone();
    }
    if let Some(d) = &op.description {
        item.description = d.clone();
    }
    if let Some(p) = op.price {
        item.price = p;
    }
    item.stock = stock;
    if let Some(l) = op.limit_per_order {
        item.limit_per_order = l;
    }
    if let Some(l) = op.limit_per_member {
        item.limit_per_member = l;
    }
    item.available_from_ms = from;
    item.available_until_ms = until;
    if let Some(a) = op.active {
        item.active = a;
    }
    item.updated_seq = ctx.seq;
    let mut e = effects(Parties::one(signer), None);
    e.item = Some(op.item_id);
    Ok(e)
}

/// `Redeem`. Checks, in order: item exists, quantity > 0, not the merchant itself, item
/// active, merchant active, availability window, per-order limit, per-member limit, price
/// within the agreed maximum, stock, total fits u64, funds.
pub(crate) fn redeem(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    op: &Redeem,
) -> Result<Effects, Rejection> {
    let item = state.items.get(&op.item_id).ok_or(Rejection::UnknownItem)?;
    if op.quantity == 0 {
        return Err(Rejection::ZeroAmount);
    }
    if item.merchant == signer {
        return Err(Rejection::SelfTransfer);
    }
    if !item.active {
        return Err(Rejection::ItemInactive);
    }
    if state
        .merchant(&item.merchant)
        .is_none_or(|m| m.status == MerchantStatus::Suspended)
    {
        return Err(Rejection::MerchantSuspended);
    }
    if ctx.timestamp_ms < item.available_from_ms
        || item
            .available_until_ms
            .is_some_and(|u| ctx.timestamp_ms >= u)
    {
        return Err(Rejection::NotAvailable);
    }
    if item.limit_per_order != 0 && op.quantity > item.limit_per_order {
        return Err(Rejection::LimitExceeded);
    }
    let held = state.held.get(&(signer, op.item_id)).copied().unwrap_or(0);
    let held_after = held.checked_add(op.quantity).ok_or(Rejection::Overflow)?;
    if item.limit_per_member != 0 && held_after > item.limit_per_member {
        return Err(Rejection::LimitExceeded);
    }
    if item.price > op.max_unit_price {
        return Err(Rejection::PriceAboveMax);
    }
    if item.stock < op.quantity {
        return Err(Rejection::OutOfStock);
    }
    let total = item
        .price
        .0
        .checked_mul(op.quantity)
        .ok_or(Rejection::Overflow)?;
    let merchant = item.merchant;
    let unit_price = item.price;
    let redeem_rate = state
        .merchant(&merchant)
        .map(|m| m.redeem_rate)
        .ok_or(Rejection::UnknownMerchant)?;
    state.check_move(&signer, &merchant, total, ctx.timestamp_ms)?;
    // Effects.
    let lots = state.do_move(&signer, &merchant, total, ctx.timestamp_ms);
    crate::loyalty::keep_order_lots(state, ctx.seq, lots);
    let item = state.items.get_mut(&op.item_id).expect("checked above");
    item.stock -= op.quantity;
    item.units_redeemed += op.quantity;
    state.held.insert((signer, op.item_id), held_after);
    state.orders.insert(
        ctx.seq,
        OrderRecord {
            order_id: ctx.seq,
            item_id: op.item_id,
            merchant,
            member: signer,
            quantity: op.quantity,
            unit_price,
            total: Points(total),
            redeem_rate,
            status: OrderStatus::Open,
            closed_seq: None,
            cancelled_by: None,
            fulfilment_reference: Bytes::default(),
        },
    );
    settlement::record(
        state,
        &merchant,
        ctx.seq,
        BookEvent::Redeemed {
            order_id: ctx.seq,
            points: total,
            rate: redeem_rate,
        },
    );
    // A merchant redeeming another merchant's item spends points like a transfer out.
    settlement::record(
        state,
        &signer,
        ctx.seq,
        BookEvent::TransferredOut { points: total },
    );
    let both = Parties::two(signer, merchant);
    let mut e = effects(both, Some(both));
    e.books = Some(both);
    e.item = Some(op.item_id);
    e.order = Some(ctx.seq);
    e.held = Some((signer, op.item_id));
    e.loyalty.order_lots = Some(ctx.seq);
    Ok(e)
}

/// `FulfillOrder`: the order's merchant closes an open order.
pub(crate) fn fulfill_order(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    op: &FulfillOrder,
) -> Result<Effects, Rejection> {
    if op.reference.0.len() > REFERENCE_LEN_MAX {
        return Err(Rejection::InvalidField("reference"));
    }
    let order = state
        .orders
        .get(&op.order_id)
        .ok_or(Rejection::UnknownOrder)?;
    if order.merchant != signer {
        return Err(Rejection::NotAuthorized);
    }
    check_active_merchant(state, &signer)?;
    if order.status != OrderStatus::Open {
        return Err(Rejection::OrderClosed);
    }
    let member = order.member;
    let order = state.orders.get_mut(&op.order_id).expect("checked above");
    order.status = OrderStatus::Fulfilled;
    order.closed_seq = Some(ctx.seq);
    order.fulfilment_reference = op.reference.clone();
    crate::loyalty::drop_order_lots(state, op.order_id);
    let mut e = effects(Parties::two(signer, member), None);
    e.order = Some(op.order_id);
    e.loyalty.order_lots = Some(op.order_id);
    Ok(e)
}

/// `CancelOrder`: the merchant, or the member, cancels an open order; the merchant refunds
/// the points and the stock comes back. Checks, in order: reason length, order exists,
/// signer is its merchant or member, signer is not a suspended merchant, order open,
/// restored stock fits u64, merchant covers the refund.
pub(crate) fn cancel_order(
    state: &mut State,
    ctx: Ctx,
    signer: AccountId,
    op: &CancelOrder,
) -> Result<Effects, Rejection> {
    if op.reason.0.len() > REFERENCE_LEN_MAX {
        return Err(Rejection::InvalidField("reason"));
    }
    let order = state
        .orders
        .get(&op.order_id)
        .ok_or(Rejection::UnknownOrder)?;
    if order.merchant != signer && order.member != signer {
        return Err(Rejection::NotAuthorized);
    }
    // A suspended merchant signs nothing (as for FulfillOrder); its members may still cancel.
    if state
        .merchant(&signer)
        .is_some_and(|m| m.status == MerchantStatus::Suspended)
    {
        return Err(Rejection::MerchantSuspended);
    }
    if order.status != OrderStatus::Open {
        return Err(Rejection::OrderClosed);
    }
    let (merchant, member, total, item_id, quantity, redeem_rate) = (
        order.merchant,
        order.member,
        order.total.0,
        order.item_id,
        order.quantity,
        order.redeem_rate,
    );
    let issue_rate = state
        .merchant(&merchant)
        .map(|m| m.issue_rate)
        .ok_or(Rejection::UnknownMerchant)?;
    let after_settlement = state
        .books
        .get(&merchant)
        .is_some_and(|b| op.order_id <= b.settled_to);
    let stock_after = state
        .items
        .get(&item_id)
        .map(|i| i.stock.checked_add(quantity))
        .ok_or(Rejection::UnknownItem)?
        .ok_or(Rejection::Overflow)?;
    state.check_move(&merchant, &member, total, ctx.timestamp_ms)?;
    // Effects: the member gets back the lots the order took (`ledger-spec/loyalty.md` §2.3).
    crate::loyalty::refund_order(
        state,
        op.order_id,
        &merchant,
        &member,
        total,
        ctx.timestamp_ms,
    );
    let item = state.items.get_mut(&item_id).expect("checked above");
    item.stock = stock_after;
    item.units_redeemed -= quantity;
    item.updated_seq = ctx.seq;
    if let Some(h) = state.held.get_mut(&(member, item_id)) {
        *h -= quantity;
    }
    let order = state.orders.get_mut(&op.order_id).expect("checked above");
    order.status = OrderStatus::Cancelled;
    order.closed_seq = Some(ctx.seq);
    order.cancelled_by = Some(signer);
    settlement::record(
        state,
        &merchant,
        ctx.seq,
        BookEvent::Refunded {
            order_id: op.order_id,
            points: total,
            redeem_rate,
            issue_rate,
            after_settlement,
        },
    );
    settlement::record(
        state,
        &member,
        ctx.seq,
        BookEvent::TransferredIn { points: total },
    );
    let both = Parties::two(member, merchant);
    let mut e = effects(both, Some(both));
    e.books = Some(both);
    e.item = Some(item_id);
    e.order = Some(op.order_id);
    e.held = Some((member, item_id));
    e.loyalty.order_lots = Some(op.order_id);
    Ok(e)
}
