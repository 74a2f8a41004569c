//! Routes of the loyalty program: a wallet's lots (what expires when), its pending awards,
//! its tier and growth, award records, and the tier configuration (`ledger-spec/loyalty.md`
//! §7). Every route is a signed read; the views are computed by [`crate::loyalty`] from the
//! stored records and the server clock.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::auth::{AccountAccess, Caller};
use super::dto::Page;
use super::error::Problem;
use super::{AccountPath, AppState, PageQuery, Routes, P, Q};
use crate::loyalty::{self, EarnRecord, EarnStatus, LotsView, TierConfig, TierStatus};
use crate::op::AccountId;

/// Adds the loyalty routes (called once from [`super::routes`]).
pub(super) fn routes(r: Routes) -> Routes {
    r.get("/v1/wallets/{account}/lots", lots)
        .get("/v1/wallets/{account}/tier", tier)
        .get("/v1/wallets/{account}/earns", member_earns)
        .get("/v1/merchants/{account}/earns", merchant_earns)
        .get("/v1/earns/{id}", earn)
        .get("/v1/tiers", tiers)
}

/// The loyalty part of the OpenAPI document (merged by [`super::openapi::document`]).
#[derive(OpenApi)]
#[openapi(
    paths(lots, tier, member_earns, merchant_earns, earn, tiers),
    components(schemas(EarnStatus)),
    tags((name = "loyalty", description = "Lots and expiry, pending awards, tiers and growth"))
)]
pub struct LoyaltyApi;

fn now_ms() -> u64 {
    crate::client::now_ms()
}

fn unknown_account(account: &AccountId) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "unknown_account",
        format!("account {account} has never held points"),
    )
}

/// An award with its status as of the request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EarnView {
    /// Pending, released or reversed, as of the server's clock.
    pub status: EarnStatus,
    /// The record.
    #[serde(flatten)]
    pub record: EarnRecord,
}

fn earn_view(record: EarnRecord, now: u64) -> EarnView {
    EarnView {
        status: record.status_at(now),
        record,
    }
}

/// A wallet's lots
///
/// For the wallet's holder, auditors and the issuer. Every lot with its expiry, what can be
/// spent now, what is pending, and what expires in the next 30 days. A pending award whose
/// release time has passed is shown released.
#[utoipa::path(
    get,
    path = "/v1/wallets/{account}/lots",
    tag = "loyalty",
    params(AccountPath),
    security(("points_ed25519" = [])),
    responses(
        (status = 200, description = "Lots, pending awards and totals", body = LotsView),
        (status = 404, description = "`unknown_account`: the account never held points", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn lots(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
) -> Result<Json<LotsView>, Problem> {
    if app.store.balance(&account)?.is_none() {
        return Err(unknown_account(&account));
    }
    let holdings = app.store.holdings(&account)?.unwrap_or_default();
    let mut pending = Vec::with_capacity(holdings.pending.len());
    for id in &holdings.pending {
        if let Some(e) = app.store.earn(*id)? {
            pending.push(e);
        }
    }
    let is_merchant = app.store.merchant(&account)?.is_some();
    Ok(Json(loyalty::lots_view(
        account,
        &holdings,
        &pending,
        is_merchant,
        now_ms(),
    )))
}

/// A member's tier
///
/// For the member, auditors and the issuer. The tier held, the growth within the rolling
/// window, what the next tier needs, and until when the tier holds without new growth.
#[utoipa::path(
    get,
    path = "/v1/wallets/{account}/tier",
    tag = "loyalty",
    params(AccountPath),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "Tier and growth", body = TierStatus))
)]
pub(super) async fn tier(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
) -> Result<Json<TierStatus>, Problem> {
    let config = app.store.tier_config()?;
    let earns = app.store.all_earns_of(&account)?;
    Ok(Json(loyalty::tier_status(
        account,
        config.as_ref(),
        &earns,
        now_ms(),
    )))
}

async fn earns_of(
    app: AppState,
    account: AccountId,
    q: PageQuery,
    by_merchant: bool,
) -> Result<Json<Page<EarnView>>, Problem> {
    let limit = q.limit(&app.limits)?;
    let (records, more) = app.store.earns_of(&account, by_merchant, q.after, limit)?;
    let now = now_ms();
    let next_after = if more {
        records.last().map(|e| e.earn_id)
    } else {
        None
    };
    Ok(Json(Page {
        items: records.into_iter().map(|r| earn_view(r, now)).collect(),
        next_after,
    }))
}

/// A member's awards
///
/// For the member, auditors and the issuer. In earn id order.
#[utoipa::path(
    get,
    path = "/v1/wallets/{account}/earns",
    tag = "loyalty",
    params(AccountPath, PageQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "A page of awards", body = Page<EarnView>))
)]
pub(super) async fn member_earns(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
    Q(q): Q<PageQuery>,
) -> Result<Json<Page<EarnView>>, Problem> {
    earns_of(app, account, q, false).await
}

/// A merchant's awards
///
/// For the merchant, auditors and the issuer. In earn id order.
#[utoipa::path(
    get,
    path = "/v1/merchants/{account}/earns",
    tag = "loyalty",
    params(AccountPath, PageQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "A page of awards", body = Page<EarnView>))
)]
pub(super) async fn merchant_earns(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
    Q(q): Q<PageQuery>,
) -> Result<Json<Page<EarnView>>, Problem> {
    earns_of(app, account, q, true).await
}

/// One award
///
/// For the award's member and merchant, auditors and the issuer. Member verifiers need it
/// for ConfirmEarn and ReverseEarn entries (`verify::balance_effect_with`).
#[utoipa::path(
    get,
    path = "/v1/earns/{id}",
    tag = "loyalty",
    params(("id" = u64, Path, description = "Earn id (seq of its Earn entry)")),
    security(("points_ed25519" = [])),
    responses(
        (status = 200, description = "The award", body = EarnView),
        (status = 404, description = "`unknown_earn`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn earn(
    State(app): State<AppState>,
    caller: Caller,
    P(id): P<u64>,
) -> Result<Json<EarnView>, Problem> {
    let record = app.store.earn(id)?.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_earn",
            format!("no earn {id}"),
        )
    })?;
    caller.require_party(&[record.member, record.merchant], &format!("earn {id}"))?;
    Ok(Json(earn_view(record, now_ms())))
}

/// The tiers
///
/// For any signed caller. The tier configuration in force (the last SetTiers).
#[utoipa::path(
    get,
    path = "/v1/tiers",
    tag = "loyalty",
    security(("points_ed25519" = [])),
    responses(
        (status = 200, description = "The tier configuration", body = TierConfig),
        (status = 404, description = "`not_found`: no SetTiers yet", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn tiers(
    State(app): State<AppState>,
    _caller: Caller,
) -> Result<Json<TierConfig>, Problem> {
    app.store
        .tier_config()?
        .map(Json)
        .ok_or_else(|| Problem::not_found("the program has no tiers yet"))
}
