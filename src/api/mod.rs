//! The HTTP API (axum): thin handlers that decode, call the library and encode.
//! Implements `ledger-spec/api.md`.

pub mod dto;
pub mod error;
pub mod mall;
mod verifiable;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::codec;
use crate::op::{AccountId, SignedOp};
use crate::store::{Receipt, Sequencer, Store};
use dto::*;
use error::Problem;

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
    let mime = ct.split(';').next().unwrap_or("").trim();
    match mime {
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
    let mut results = app.sequencer.submit(vec![op]).await?;
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
    let results = app.sequencer.submit(ops).await?;
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

async fn healthz(State(app): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        size: app.sequencer.tip().size,
    })
}

async fn wallet(
    State(app): State<AppState>,
    P(account): P<String>,
) -> Result<Json<WalletResponse>, Problem> {
    let account = parse_account(&account)?;
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

/// `after` / `limit` cursor parameters.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Return items with seq greater than this.
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

async fn entry(State(app): State<AppState>, P(seq): P<u64>) -> Result<Json<EntryView>, Problem> {
    entry_view(&app, seq)?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("no entry {seq}")))
}

async fn entries(
    State(app): State<AppState>,
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

async fn fallback() -> Problem {
    Problem::not_found("no such route")
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

/// The router with every route, limit and layer.
pub fn router(app: AppState) -> Router {
    let timeout_ms = app.limits.request_timeout_ms;
    let body_max = app.limits.body_bytes_max;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/info", get(info))
        .route("/v1/ops", post(submit))
        .route("/v1/ops/batch", post(submit_batch))
        .route("/v1/wallets/{account}", get(wallet))
        .route("/v1/wallets/{account}/history", get(verifiable::history))
        .route(
            "/v1/checkpoint",
            get(verifiable::latest_checkpoint).post(verifiable::new_checkpoint),
        )
        .route("/v1/checkpoints/{size}", get(verifiable::checkpoint_at))
        .route(
            "/v1/checkpoints/{size}/cosignatures",
            post(verifiable::add_cosignature),
        )
        .route("/v1/proofs/inclusion", get(verifiable::inclusion))
        .route("/v1/proofs/consistency", get(verifiable::consistency))
        .route("/v1/export", get(verifiable::export_stream))
        .route("/v1/mall/items", get(mall::items))
        .route("/v1/mall/items/{id}", get(mall::item))
        .route("/v1/mall/orders/{id}", get(mall::order))
        .route("/v1/wallets/{account}/orders", get(mall::member_orders))
        .route("/v1/merchants/{account}/orders", get(mall::merchant_orders))
        .route("/v1/merchants/{account}/statement", get(mall::statement))
        .route(
            "/v1/merchants/{account}/settlements",
            get(mall::merchant_settlements),
        )
        .route("/v1/settlements/{id}", get(mall::settlement_by_id))
        .route("/v1/reports/liability", get(mall::liability))
        .route("/v1/entries", get(entries))
        .route("/v1/entries/{seq}", get(entry))
        .fallback(fallback)
        .layer(axum::extract::DefaultBodyLimit::max(body_max))
        .layer(axum::middleware::from_fn_with_state(
            timeout_ms,
            timeout_layer,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(app)
}
