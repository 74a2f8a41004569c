//! Routes of the redemption mall, merchant statements and settlements, and the liability
//! report (`ledger-spec/api.md` §5–§6).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AccountAccess, Caller, Overseer};
use super::dto::Page;
use super::error::Problem;
use super::{AccountPath, AppState, PageQuery, P, Q};
use crate::mall::{ItemRecord, OrderRecord, OrderStatus};
use crate::op::AccountId;
use crate::rules::{self, State as LedgerState};
use crate::settlement::{self, SettlementRecord, Statement};

/// Filters of the catalog.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only this merchant's items (its account, 64 lowercase hex digits).
    #[param(pattern = "^[0-9a-f]{64}$")]
    pub merchant: Option<String>,
    /// Only active (or inactive) items.
    pub active: Option<bool>,
    /// Lowest price.
    pub min_price: Option<u64>,
    /// Highest price.
    pub max_price: Option<u64>,
    /// Cursor: items with id greater than this.
    pub after: Option<u64>,
    /// Page size.
    pub limit: Option<u32>,
}

/// Browse the catalog
///
/// Public. Items in id order, filtered.
#[utoipa::path(
    get,
    path = "/v1/mall/items",
    tag = "mall",
    params(ItemsQuery),
    responses((status = 200, description = "A page of items", body = Page<ItemRecord>))
)]
pub(super) async fn items(
    State(app): State<AppState>,
    Q(q): Q<ItemsQuery>,
) -> Result<Json<Page<ItemRecord>>, Problem> {
    let limit = PageQuery {
        after: q.after,
        limit: q.limit,
    }
    .limit(&app.limits)?;
    let merchant = q.merchant.as_deref().map(parse_query_account).transpose()?;
    let (items, more) = app.store.items(merchant.as_ref(), q.after, limit, |i| {
        q.active.is_none_or(|a| i.active == a)
            && q.min_price.is_none_or(|p| i.price.0 >= p)
            && q.max_price.is_none_or(|p| i.price.0 <= p)
    })?;
    let next_after = if more {
        items.last().map(|i| i.item_id)
    } else {
        None
    };
    Ok(Json(Page { items, next_after }))
}

fn parse_query_account(s: &str) -> Result<AccountId, Problem> {
    s.parse()
        .map_err(|e| Problem::bad_request("invalid_query", format!("account: {e}")))
}

/// One item
///
/// Public.
#[utoipa::path(
    get,
    path = "/v1/mall/items/{id}",
    tag = "mall",
    params(("id" = u64, Path, description = "Item id (seq of its ListItem entry)")),
    responses(
        (status = 200, description = "The item", body = ItemRecord),
        (status = 404, description = "`unknown_item`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn item(
    State(app): State<AppState>,
    P(id): P<u64>,
) -> Result<Json<ItemRecord>, Problem> {
    app.store.item(id)?.map(Json).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_item",
            format!("no item {id}"),
        )
    })
}

/// One order
///
/// For the order's member and merchant, auditors and the issuer.
#[utoipa::path(
    get,
    path = "/v1/mall/orders/{id}",
    tag = "mall",
    params(("id" = u64, Path, description = "Order id (seq of its Redeem entry)")),
    security(("points_ed25519" = [])),
    responses(
        (status = 200, description = "The order", body = OrderRecord),
        (status = 404, description = "`unknown_order`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn order(
    State(app): State<AppState>,
    caller: Caller,
    P(id): P<u64>,
) -> Result<Json<OrderRecord>, Problem> {
    let order = app.store.order(id)?.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_order",
            format!("no order {id}"),
        )
    })?;
    caller.require_party(&[order.member, order.merchant], &format!("order {id}"))?;
    Ok(Json(order))
}

/// Filters of an order list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Cursor.
    pub after: Option<u64>,
    /// Page size.
    pub limit: Option<u32>,
}

async fn orders_of(
    app: AppState,
    account: AccountId,
    q: OrdersQuery,
    by_merchant: bool,
) -> Result<Json<Page<OrderRecord>>, Problem> {
    let limit = PageQuery {
        after: q.after,
        limit: q.limit,
    }
    .limit(&app.limits)?;
    let (items, more) = app
        .store
        .orders_of(&account, by_merchant, q.after, limit, |o| {
            q.status.is_none_or(|s| o.status == s)
        })?;
    let next_after = if more {
        items.last().map(|o| o.order_id)
    } else {
        None
    };
    Ok(Json(Page { items, next_after }))
}

/// A member's orders
///
/// For the member, auditors and the issuer.
#[utoipa::path(
    get,
    path = "/v1/wallets/{account}/orders",
    tag = "wallets",
    params(AccountPath, OrdersQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "A page of orders", body = Page<OrderRecord>))
)]
pub(super) async fn member_orders(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
    Q(q): Q<OrdersQuery>,
) -> Result<Json<Page<OrderRecord>>, Problem> {
    orders_of(app, account, q, false).await
}

/// The orders placed with a merchant
///
/// For the merchant, auditors and the issuer.
#[utoipa::path(
    get,
    path = "/v1/merchants/{account}/orders",
    tag = "merchants",
    params(AccountPath, OrdersQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "A page of orders", body = Page<OrderRecord>))
)]
pub(super) async fn merchant_orders(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
    Q(q): Q<OrdersQuery>,
) -> Result<Json<Page<OrderRecord>>, Problem> {
    orders_of(app, account, q, true).await
}

/// Statement query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// Period end (inclusive); the last entry if absent.
    pub to: Option<u64>,
    /// `json` (default) or `csv`.
    pub format: Option<StatementFormat>,
}

/// How a statement is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatementFormat {
    /// `application/json`.
    Json,
    /// `text/csv`: the totals as field,value rows, then the rate lines.
    Csv,
}

/// Computes a merchant's draft statement from the stored book.
pub(crate) fn draft_statement(
    app: &AppState,
    merchant: &AccountId,
    to: Option<u64>,
) -> Result<Statement, Problem> {
    if app.store.merchant(merchant)?.is_none() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_merchant",
            format!("{merchant} is not a registered merchant"),
        ));
    }
    let size = app.sequencer.tip().size;
    let book = app.store.book(merchant)?;
    let to = to.unwrap_or(size.saturating_sub(1));
    if to >= size || to <= book.settled_to {
        return Err(Problem::bad_request(
            "invalid_query",
            format!(
                "`to` must be after the last settlement ({}) and before the tip ({size})",
                book.settled_to
            ),
        ));
    }
    settlement::statement(*merchant, &book, to).map_err(Problem::from)
}

fn statement_csv(st: &Statement) -> String {
    let t = &st.totals;
    let mut out = String::from("field,value\n");
    let rows: [(&str, String); 20] = [
        ("merchant", st.merchant.to_hex()),
        ("from_seq_exclusive", st.from_seq.to_string()),
        ("to_seq_inclusive", st.to_seq.to_string()),
        ("points_purchased", t.points_purchased.to_string()),
        ("purchase_amount", t.purchase_amount.to_string()),
        ("points_awarded", t.points_awarded.to_string()),
        ("points_redeemed", t.points_redeemed.to_string()),
        ("redemption_amount", t.redemption_amount.to_string()),
        ("points_refunded", t.points_refunded.to_string()),
        ("refund_amount", t.refund_amount.to_string()),
        (
            "points_refunded_after_settlement",
            t.points_refunded_after_settlement.to_string(),
        ),
        ("clawback_amount", t.clawback_amount.to_string()),
        ("float_credit_amount", t.float_credit_amount.to_string()),
        ("transfers_in", t.transfers_in.to_string()),
        ("transfers_out", t.transfers_out.to_string()),
        ("points_burned", t.points_burned.to_string()),
        ("points_to_burn", t.points_to_burn.to_string()),
        ("due_to_merchant", t.due_to_merchant.to_string()),
        ("due_from_merchant", t.due_from_merchant.to_string()),
        ("lines", st.lines.len().to_string()),
    ];
    for (k, v) in rows {
        out.push_str(&format!("{k},{v}\n"));
    }
    out.push_str("\ncategory,rate_minor_units,rate_per_points,points,amount\n");
    for l in &st.lines {
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            l.category, l.rate.minor_units, l.rate.per_points, l.points, l.amount
        ));
    }
    out
}

/// A merchant's draft statement
///
/// For the merchant, auditors and the issuer: the open period's totals, computed from the
/// chain, as both parties will sign them.
#[utoipa::path(
    get,
    path = "/v1/merchants/{account}/statement",
    tag = "merchants",
    params(AccountPath, StatementQuery),
    security(("points_ed25519" = [])),
    responses(
        (status = 200, description = "The statement", content(
            (Statement = "application/json"),
            (String = "text/csv"),
        )),
        (status = 404, description = "`unknown_merchant`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn statement(
    State(app): State<AppState>,
    AccountAccess {
        account: merchant, ..
    }: AccountAccess,
    Q(q): Q<StatementQuery>,
) -> Result<Response, Problem> {
    let st = draft_statement(&app, &merchant, q.to)?;
    match q.format.unwrap_or(StatementFormat::Json) {
        StatementFormat::Json => Ok(Json(st).into_response()),
        StatementFormat::Csv => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            statement_csv(&st),
        )
            .into_response()),
    }
}

/// A merchant's settlements
///
/// For the merchant, auditors and the issuer.
#[utoipa::path(
    get,
    path = "/v1/merchants/{account}/settlements",
    tag = "merchants",
    params(AccountPath, PageQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "A page of settlements", body = Page<SettlementRecord>))
)]
pub(super) async fn merchant_settlements(
    State(app): State<AppState>,
    AccountAccess {
        account: merchant, ..
    }: AccountAccess,
    Q(q): Q<PageQuery>,
) -> Result<Json<Page<SettlementRecord>>, Problem> {
    let limit = q.limit(&app.limits)?;
    // One more than the page tells whether another page exists.
    let mut items = app.store.settlements_of(&merchant, q.after, limit + 1)?;
    let next_after = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|s| s.settlement_id)
    } else {
        None
    };
    Ok(Json(Page { items, next_after }))
}

/// One settlement
///
/// For its merchant, auditors and the issuer.
#[utoipa::path(
    get,
    path = "/v1/settlements/{id}",
    tag = "merchants",
    params(("id" = u64, Path, description = "Settlement id (seq of its Settle entry)")),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "The settlement", body = SettlementRecord))
)]
pub(super) async fn settlement_by_id(
    State(app): State<AppState>,
    caller: Caller,
    P(id): P<u64>,
) -> Result<Json<SettlementRecord>, Problem> {
    let s = app
        .store
        .settlement(id)?
        .ok_or_else(|| Problem::not_found(format!("no settlement {id}")))?;
    caller.require_party(&[s.merchant], &format!("settlement {id}"))?;
    Ok(Json(s))
}

/// Per-merchant part of the liability report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MerchantPosition {
    /// The merchant.
    pub merchant: AccountId,
    /// Display name.
    pub name: String,
    /// Points in its float (its balance).
    pub float: u64,
    /// Last seq covered by a settlement.
    pub settled_to: u64,
    /// Open (unsettled) position: the totals of a statement up to the report's seq.
    pub open: settlement::StatementTotals,
}

/// `GET /v1/reports/liability`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiabilityReport {
    /// The report is as of this seq (inclusive).
    pub as_of_seq: u64,
    /// Points held by members: the program's liability.
    pub members: u64,
    /// Points in merchants' floats.
    pub merchant_floats: u64,
    /// Points held by the issuer and auditors.
    pub other: u64,
    /// Points in existence (= members + merchant_floats + other).
    pub supply: u64,
    /// Points ever minted.
    pub minted: u64,
    /// Points ever burned.
    pub burned: u64,
    /// Per merchant, by account; one page of them (the totals above cover all).
    pub merchants: Vec<MerchantPosition>,
    /// Pass as `after` (with the same `seq`) for the next page of merchants; absent on the
    /// last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_after: Option<AccountId>,
}

/// Builds the liability report from a state (replayed to `as_of_seq`, or the live one).
pub fn liability_report(
    state: &LedgerState,
    as_of_seq: u64,
) -> Result<LiabilityReport, rules::Rejection> {
    let (mut members, mut floats, mut other) = (0u64, 0u64, 0u64);
    for (account, balance) in state.balances() {
        let slot = match state.kind(account) {
            rules::AccountKind::Member => &mut members,
            rules::AccountKind::Merchant => &mut floats,
            _ => &mut other,
        };
        *slot = slot
            .checked_add(*balance)
            .ok_or(rules::Rejection::Overflow)?;
    }
    let mut merchants = Vec::new();
    for (account, rec) in state.merchants() {
        let empty = settlement::MerchantBook::default();
        let book = state.book(account).unwrap_or(&empty);
        merchants.push(MerchantPosition {
            merchant: *account,
            name: rec.name.clone(),
            float: state.balance(account),
            settled_to: book.settled_to,
            open: settlement::statement(*account, book, as_of_seq)?.totals,
        });
    }
    merchants.sort_by_key(|m| m.merchant);
    let t = state.totals();
    Ok(LiabilityReport {
        as_of_seq,
        members,
        merchant_floats: floats,
        other,
        supply: t.supply,
        minted: t.minted,
        burned: t.burned,
        merchants,
        next_after: None,
    })
}

/// Liability query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiabilityQuery {
    /// As of this seq (inclusive); the latest if absent.
    pub seq: Option<u64>,
    /// Cursor of the `merchants` list: merchants whose account sorts after this one.
    #[param(pattern = "^[0-9a-f]{64}$")]
    pub after: Option<String>,
    /// Page size of the `merchants` list.
    pub limit: Option<u32>,
}

/// The liability report
///
/// For auditors and the issuer: points held by members (the program's liability), in
/// merchants' floats and elsewhere, and each merchant's open position, as of a seq.
#[utoipa::path(
    get,
    path = "/v1/reports/liability",
    tag = "audit",
    params(LiabilityQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "The report", body = LiabilityReport))
)]
pub(super) async fn liability(
    State(app): State<AppState>,
    _who: Overseer,
    Q(q): Q<LiabilityQuery>,
) -> Result<Json<LiabilityReport>, Problem> {
    let limit = PageQuery {
        after: None,
        limit: q.limit,
    }
    .limit(&app.limits)?;
    let after = q.after.as_deref().map(parse_query_account).transpose()?;
    let size = app.sequencer.tip().size;
    let seq = q.seq.unwrap_or(size.saturating_sub(1));
    if seq >= size {
        return Err(Problem::bad_request(
            "invalid_query",
            format!("seq must be below the log size {size}"),
        ));
    }
    let store = app.store.clone();
    let mut report = tokio::task::spawn_blocking(move || -> Result<LiabilityReport, Problem> {
        let state = store.replay_to(seq)?;
        liability_report(&state, seq).map_err(Problem::from)
    })
    .await
    .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))??;
    // The merchants are sorted by account: keep the page after the cursor.
    let start = after.map_or(0, |a| report.merchants.partition_point(|m| m.merchant <= a));
    let mut page: Vec<MerchantPosition> = report.merchants.drain(start..).collect();
    if page.len() > limit {
        page.truncate(limit);
        report.next_after = page.last().map(|m| m.merchant);
    }
    report.merchants = page;
    Ok(Json(report))
}
