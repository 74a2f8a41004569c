//! The HTTP API (axum): thin handlers that decode, call the library and encode.
//! Implements `ledger-spec/api.md`.
//!
//! One [`AppState`] reaches everything; [`router`] builds every route, limit and layer.
//! Who may call a route is in its handler's signature: no extractor for public routes,
//! [`auth::Caller`] / [`auth::AccountAccess`] / [`auth::Overseer`] for private ones.

pub mod auth;
pub mod dto;
pub mod error;
pub mod loyalty;
pub mod mall;
pub mod metrics;
pub mod openapi;
mod verifiable;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::IntoParams;

use crate::codec;
use crate::op::{AccountId, SignedOp};
use crate::store::{Receipt, Sequencer, Store, StoreError};
use auth::{AccountAccess, Auth, AuthConfig, Overseer};
use dto::*;
use error::Problem;
use metrics::Metrics;

/// The header carrying the request id (set when absent, echoed in the response, logged).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Limits on what a request may ask for, with documented defaults.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub body_bytes_max: usize,
    /// Most ops in one `POST /v1/ops/batch`.
    pub batch_ops_max: usize,
    /// Largest page of a list.
    pub page_limit_max: usize,
    /// Page size when the request does not say.
    pub page_limit_default: usize,
    /// Time a request may take before it is answered with `timeout`.
    pub request_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes_max: 2 * 1024 * 1024,
            batch_ops_max: codec::BATCH_OPS_MAX,
            page_limit_max: 1000,
            page_limit_default: 100,
            request_timeout_ms: 30_000,
        }
    }
}

/// Everything a handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store, for reads.
    pub store: Arc<Store>,
    /// The sequencer, for writes.
    pub sequencer: Sequencer,
    /// Request limits.
    pub limits: Arc<Limits>,
    /// Signs checkpoints on demand.
    pub checkpointer: Arc<crate::server::Checkpointer>,
    /// Request authentication: settings and the replay cache.
    pub auth: Arc<Auth>,
    /// Metrics of this server.
    pub metrics: Arc<Metrics>,
    /// The ledger's chain id (fixed by genesis), covered by every request signature.
    pub chain_id: Arc<str>,
    /// The issuer's key (fixed by genesis).
    pub issuer: AccountId,
    /// The OpenAPI document, rendered once.
    openapi: Arc<Bytes>,
}

impl AppState {
    /// The state of a server over an initialised store. Must run inside a tokio runtime:
    /// it starts following the sequencer's group statistics for the metrics.
    pub fn new(
        store: Arc<Store>,
        sequencer: Sequencer,
        limits: Limits,
        auth: AuthConfig,
        checkpointer: Arc<crate::server::Checkpointer>,
    ) -> Result<AppState, StoreError> {
        let info = store.info()?.ok_or_else(|| StoreError::Corrupt {
            seq: 0,
            detail: "the ledger has no genesis entry".into(),
        })?;
        let metrics = Arc::new(Metrics::new());
        metrics.clone().watch(&sequencer);
        let doc = openapi::document(&limits);
        let openapi = serde_json::to_vec(&doc).unwrap_or_default();
        Ok(AppState {
            store,
            sequencer,
            limits: Arc::new(limits),
            checkpointer,
            auth: Arc::new(Auth::new(auth)),
            metrics,
            chain_id: info.chain_id.into(),
            issuer: info.issuer,
            openapi: Arc::new(Bytes::from(openapi)),
        })
    }
}

/// Query extractor that answers bad parameters with problem+json.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|e| Problem::bad_request("invalid_query", e.body_text()))
    }
}

/// Path extractor that answers bad segments with problem+json.
pub struct P<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| P(v))
            .map_err(|e| Problem::bad_request("invalid_path", e.body_text()))
    }
}

pub(crate) fn parse_account(s: &str) -> Result<AccountId, Problem> {
    s.parse()
        .map_err(|e| Problem::bad_request("invalid_path", format!("account: {e}")))
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                e.body_text(),
            )
        } else {
            Problem::bad_request("malformed_body", e.body_text())
        }
    })
}

enum BodyKind {
    Canonical,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, Problem> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Media types are case-insensitive (RFC 9110 §8.3.1).
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/octet-stream" => Ok(BodyKind::Canonical),
        "application/json" => Ok(BodyKind::Json),
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content type `{other}`: send application/octet-stream (canonical bytes) or application/json"),
        )),
    }
}

fn decode_hex_op(hex_op: &str) -> Result<SignedOp, Problem> {
    if hex_op.len() > 2 * codec::DECODE_BYTES_MAX {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "signed_op is longer than the decoder accepts",
        ));
    }
    if hex_op.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Problem::bad_request(
            "malformed_op",
            "signed_op: hex must be lowercase",
        ));
    }
    let bytes = hex::decode(hex_op)
        .map_err(|e| Problem::bad_request("malformed_op", format!("signed_op is not hex: {e}")))?;
    codec::decode_signed_op(&bytes)
        .map_err(|e| Problem::bad_request("malformed_op", format!("signed_op: {e}")))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request("malformed_body", format!("invalid JSON body: {e}")))
}

/// Submit one signed op
///
/// The body is the canonical SignedOp bytes (`application/octet-stream`) or
/// `{"signed_op": "<hex>"}` (`application/json`). The op's own signature authorizes it; the
/// answer comes once its entry is durable. Retrying the same (signer, op_id) returns the
/// original receipt.
#[utoipa::path(
    post,
    path = "/v1/ops",
    tag = "ledger",
    request_body(
        description = "One signed op",
        content(
            (SubmitRequest = "application/json"),
            (Vec<u8> = "application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "Applied (or an idempotent retry of an applied op)", body = Receipt),
        (status = 403, description = "`not_authorized` or `merchant_suspended`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`duplicate_op_id`, `insufficient_funds`, `merchant_exists`, `auditor_exists`, `role_conflict` or `already_initialized`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Any other rule rejection (`bad_signature`, `expired`, `wrong_chain`, …)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn submit(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Receipt>, Problem> {
    let body = body_bytes(body)?;
    let op = match body_kind(&headers)? {
        BodyKind::Canonical => codec::decode_signed_op(&body)
            .map_err(|e| Problem::bad_request("malformed_op", e.to_string()))?,
        BodyKind::Json => decode_hex_op(&parse_json::<SubmitRequest>(&body)?.signed_op)?,
    };
    let kind = op.envelope.op.kind();
    let mut results = app.sequencer.submit(vec![op]).await?;
    if let Some(r) = results.last() {
        app.metrics.op(kind, r.as_ref().err().map(|r| r.code()));
    }
    match results.pop() {
        Some(Ok(receipt)) => Ok(Json(receipt)),
        Some(Err(rejection)) => Err(rejection.into()),
        None => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no result for the op",
        )),
    }
}

/// Submit a batch of signed ops
///
/// The body is a canonical batch (`application/octet-stream`) or
/// `{"signed_ops": ["<hex>", …]}`. Each op is applied or rejected on its own, in order; the
/// answer has one result per op.
#[utoipa::path(
    post,
    path = "/v1/ops/batch",
    tag = "ledger",
    request_body(
        description = "Signed ops",
        content(
            (BatchRequest = "application/json"),
            (Vec<u8> = "application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "One result per op, in order", body = BatchResponse),
        (status = 413, description = "`body_too_large` or `batch_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn submit_batch(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchResponse>, Problem> {
    let body = body_bytes(body)?;
    let too_large = |n: usize| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{n} ops; at most {} per batch", app.limits.batch_ops_max),
        )
    };
    let ops = match body_kind(&headers)? {
        BodyKind::Canonical => codec::decode_batch(&body).map_err(|e| match e {
            codec::CodecError::BatchTooLarge { count, .. } => too_large(count),
            other => Problem::bad_request("malformed_op", other.to_string()),
        })?,
        BodyKind::Json => {
            let req: BatchRequest = parse_json(&body)?;
            if req.signed_ops.len() > app.limits.batch_ops_max {
                return Err(too_large(req.signed_ops.len()));
            }
            req.signed_ops
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    decode_hex_op(h).map_err(|mut p| {
                        p.detail = format!("signed_ops[{i}]: {}", p.detail);
                        p
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    if ops.len() > app.limits.batch_ops_max {
        return Err(too_large(ops.len()));
    }
    if ops.is_empty() {
        return Ok(Json(BatchResponse { results: vec![] }));
    }
    let kinds: Vec<&'static str> = ops.iter().map(|o| o.envelope.op.kind()).collect();
    let results = app.sequencer.submit(ops).await?;
    for (kind, r) in kinds.iter().zip(&results) {
        app.metrics.op(kind, r.as_ref().err().map(|r| r.code()));
    }
    Ok(Json(BatchResponse {
        results: results
            .into_iter()
            .map(|r| match r {
                Ok(receipt) => BatchItem {
                    status: "applied".into(),
                    receipt: Some(receipt),
                    problem: None,
                },
                Err(rejection) => BatchItem {
                    status: "rejected".into(),
                    receipt: None,
                    problem: Some(rejection.into()),
                },
            })
            .collect(),
    }))
}

/// The ledger's identity and tip
///
/// Public. The chain id here is what request and op signatures cover.
#[utoipa::path(
    get,
    path = "/v1/info",
    tag = "ledger",
    responses(
        (status = 200, description = "Identity, tip and totals", body = InfoResponse),
        (status = 404, description = "`not_found`: the ledger has no genesis entry", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn info(State(app): State<AppState>) -> Result<Json<InfoResponse>, Problem> {
    let info = app
        .store
        .info()?
        .ok_or_else(|| Problem::not_found("the ledger has no genesis entry"))?;
    let totals = app.store.totals()?;
    let tip = app.sequencer.tip();
    Ok(Json(InfoResponse {
        checkpoint_verifier: crate::checkpoint::NoteVerifier::new(
            &info.chain_id,
            info.checkpoint_key.0,
        )
        .map(|v| v.vkey())
        .unwrap_or_default(),
        chain_id: info.chain_id,
        issuer: info.issuer,
        checkpoint_key: info.checkpoint_key,
        currency: info.currency,
        minor_unit_digits: info.minor_unit_digits,
        size: tip.size,
        head: tip.head,
        root: tip.root,
        supply: totals.supply,
        minted: totals.minted,
        burned: totals.burned,
    }))
}

/// Liveness
///
/// Public; answers as long as the server serves.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Serving", body = Health))
)]
async fn healthz(State(app): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        size: app.sequencer.tip().size,
    })
}

/// A wallet's balance and kind
///
/// For the wallet's holder, auditors and the issuer.
#[utoipa::path(
    get,
    path = "/v1/wallets/{account}",
    tag = "wallets",
    params(AccountPath),
    security(("points_ed25519" = [])),
    responses(
        (status = 200, description = "Balance and kind", body = WalletResponse),
        (status = 404, description = "`unknown_account`: the account never held points", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn wallet(
    State(app): State<AppState>,
    AccountAccess { account, .. }: AccountAccess,
) -> Result<Json<WalletResponse>, Problem> {
    let info = app.store.info()?;
    let merchant = app.store.merchant(&account)?;
    let balance = app.store.balance(&account)?;
    let kind = if info.as_ref().is_some_and(|i| i.issuer == account) {
        crate::rules::AccountKind::Issuer
    } else if merchant.is_some() {
        crate::rules::AccountKind::Merchant
    } else if app.store.auditor(&account)?.is_some() {
        crate::rules::AccountKind::Auditor
    } else {
        crate::rules::AccountKind::Member
    };
    if balance.is_none() && kind == crate::rules::AccountKind::Member {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("account {account} has never held points"),
        ));
    }
    Ok(Json(WalletResponse {
        account,
        kind,
        balance: balance.unwrap_or(0),
        merchant: merchant.map(|m| MerchantView {
            name: m.name,
            issue_rate: m.issue_rate,
            redeem_rate: m.redeem_rate,
            status: m.status,
            registered_seq: m.registered_seq,
        }),
    }))
}

/// The `{account}` path parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    /// The account: its public key, 64 lowercase hex digits.
    #[param(pattern = "^[0-9a-f]{64}$")]
    pub account: String,
}

/// A numeric id in the path (`{seq}`, `{id}`, `{size}`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SeqPath {
    /// The entry's seq.
    pub seq: u64,
}

/// `after` / `limit` cursor parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Return items with an id (seq) greater than this.
    pub after: Option<u64>,
    /// Page size.
    pub limit: Option<u32>,
}

impl PageQuery {
    pub(crate) fn limit(&self, limits: &Limits) -> Result<usize, Problem> {
        match self.limit {
            None => Ok(limits.page_limit_default),
            Some(0) => Err(Problem::bad_request(
                "invalid_query",
                "limit must be at least 1",
            )),
            Some(n) if n as usize > limits.page_limit_max => Err(Problem::bad_request(
                "invalid_query",
                format!("limit must be at most {}", limits.page_limit_max),
            )),
            Some(n) => Ok(n as usize),
        }
    }
}

pub(crate) fn entry_view(app: &AppState, seq: u64) -> Result<Option<EntryView>, Problem> {
    // Only durable entries exist for readers: a group's entries are in the tree just before
    // its fdatasync, and a failed group takes them back out.
    if seq >= app.sequencer.tip().size {
        return Ok(None);
    }
    let Some(bytes) = app.store.entry_bytes(seq)? else {
        return Ok(None);
    };
    let entry = codec::decode_entry(&bytes).map_err(|e| {
        Problem::from(crate::store::StoreError::Decode {
            what: format!("entry {seq}"),
            source: e,
        })
    })?;
    Ok(Some(EntryView {
        seq,
        entry_hash: crate::chain::entry_hash(&bytes),
        prev_hash: entry.prev_hash,
        timestamp_ms: entry.timestamp_ms,
        entry: hex::encode(&bytes),
        op: entry.signed_op,
    }))
}

/// One entry of the log
///
/// For auditors and the issuer (members read their own entries, with proofs, through their
/// history).
#[utoipa::path(
    get,
    path = "/v1/entries/{seq}",
    tag = "audit",
    params(SeqPath),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "The entry, its bytes and its decoded op", body = EntryView))
)]
async fn entry(
    State(app): State<AppState>,
    _who: Overseer,
    P(seq): P<u64>,
) -> Result<Json<EntryView>, Problem> {
    entry_view(&app, seq)?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no entry {seq}")))
}

/// A page of the log
///
/// For auditors and the issuer.
#[utoipa::path(
    get,
    path = "/v1/entries",
    tag = "audit",
    params(PageQuery),
    security(("points_ed25519" = [])),
    responses((status = 200, description = "Entries in seq order", body = Page<EntryView>))
)]
async fn entries(
    State(app): State<AppState>,
    _who: Overseer,
    Q(q): Q<PageQuery>,
) -> Result<Json<Page<EntryView>>, Problem> {
    let limit = q.limit(&app.limits)?;
    let size = app.sequencer.tip().size;
    let start = q.after.map_or(0, |a| a.saturating_add(1));
    let end = size.min(start.saturating_add(limit as u64));
    let mut items = Vec::with_capacity((end.saturating_sub(start)) as usize);
    for seq in start..end {
        if let Some(v) = entry_view(&app, seq)? {
            items.push(v);
        }
    }
    let next_after = if end < size && !items.is_empty() {
        Some(end - 1)
    } else {
        None
    };
    Ok(Json(Page { items, next_after }))
}

/// This document
///
/// The OpenAPI 3.1 description of every route, generated from the code.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn openapi_json(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::clone(&app.openapi),
    )
        .into_response()
}

async fn fallback() -> Problem {
    Problem::not_found("no such route")
}

async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on this route"),
    )
}

async fn timeout_layer(
    axum::extract::State(timeout_ms): axum::extract::State<u64>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(Duration::from_millis(timeout_ms), next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {timeout_ms} ms"),
        )
        .into_response(),
    }
}

/// Builds the routes and, beside them, the table of (method, path) they serve.
struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Routes {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    fn get<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, h: H) -> Routes {
        self.router = self.router.route(path, axum::routing::get(h));
        self.table.push((Method::GET, path));
        self
    }

    fn post<H: Handler<T, AppState>, T: 'static>(mut self, path: &'static str, h: H) -> Routes {
        self.router = self.router.route(path, axum::routing::post(h));
        self.table.push((Method::POST, path));
        self
    }
}

fn routes() -> Routes {
    use mall as m;
    use verifiable as v;
    loyalty::routes(Routes::new())
        .get("/healthz", healthz)
        .get("/openapi.json", openapi_json)
        .get("/metrics", metrics::metrics)
        .get("/v1/info", info)
        .post("/v1/ops", submit)
        .post("/v1/ops/batch", submit_batch)
        .get("/v1/wallets/{account}", wallet)
        .get("/v1/wallets/{account}/history", v::history)
        .get("/v1/wallets/{account}/orders", m::member_orders)
        .get("/v1/checkpoint", v::latest_checkpoint)
        .post("/v1/checkpoint", v::new_checkpoint)
        .get("/v1/checkpoints/{size}", v::checkpoint_at)
        .post("/v1/checkpoints/{size}/cosignatures", v::add_cosignature)
        .get("/v1/proofs/inclusion", v::inclusion)
        .get("/v1/proofs/consistency", v::consistency)
        .get("/v1/export", v::export_stream)
        .get("/v1/entries", entries)
        .get("/v1/entries/{seq}", entry)
        .get("/v1/mall/items", m::items)
        .get("/v1/mall/items/{id}", m::item)
        .get("/v1/mall/orders/{id}", m::order)
        .get("/v1/merchants/{account}/orders", m::merchant_orders)
        .get("/v1/merchants/{account}/statement", m::statement)
        .get(
            "/v1/merchants/{account}/settlements",
            m::merchant_settlements,
        )
        .get("/v1/settlements/{id}", m::settlement_by_id)
        .get("/v1/reports/liability", m::liability)
}

/// Every (method, path template) the router serves; the OpenAPI test checks each is
/// documented.
pub fn route_table() -> Vec<(Method, &'static str)> {
    let mut table = routes().table;
    table.extend(crate::web::ASSETS.iter().map(|a| (Method::GET, a.path)));
    table
}

fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        uri = %req.uri(),
    )
}

/// The router with every route, limit and layer.
pub fn router(app: AppState) -> Router {
    let timeout_ms = app.limits.request_timeout_ms;
    let body_max = app.limits.body_bytes_max;
    let request_id = axum::http::HeaderName::from_static(REQUEST_ID_HEADER);
    routes()
        .router
        .merge(crate::web::routes())
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_max))
        .layer(axum::middleware::from_fn_with_state(
            timeout_ms,
            timeout_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(app)
}
