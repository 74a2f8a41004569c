//! Prometheus metrics of one server (`ledger-spec/api.md` §7), kept in a registry of its
//! own (no global recorder, no listener of its own) and rendered by `GET /metrics`.
//!
//! Counters are bumped where the events happen (op outcomes in the submit handlers, HTTP
//! requests in a middleware, authentication failures in [`super::auth`]); group-commit
//! statistics come from the sequencer's [`crate::store::Sequencer::watch_stats`]; the
//! ledger gauges (entries, accounts, supply, checkpoint) are read when rendering.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use super::auth::MetricsReader;
use super::error::Problem;
use super::AppState;
use crate::store::{GroupStats, Sequencer};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a counted number of accounts is reused before it is counted again.
const ACCOUNTS_RECOUNT: Duration = Duration::from_secs(10);

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    ops_accepted: IntCounterVec,
    ops_rejected: IntCounterVec,
    group_ops: Histogram,
    group_commit_seconds: Histogram,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    auth_rejections: IntCounterVec,
    entries: IntGauge,
    accounts: IntGauge,
    supply: IntGauge,
    minted: IntGauge,
    burned: IntGauge,
    checkpoint_size: IntGauge,
    replay_cache: IntGauge,
    accounts_counted: Mutex<Option<(Instant, u64)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid gauge");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid histogram");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let seconds = exponential_buckets(0.0005, 2.0, 15).expect("valid buckets");
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "points_http_request_duration_seconds",
                "Time to answer an HTTP request (to the response head), by route.",
            )
            .buckets(seconds.clone()),
            &["route"],
        )
        .expect("valid histogram");
        r.register(Box::new(http_seconds.clone()))
            .expect("unique metric");
        Metrics {
            ops_accepted: counter(
                &r,
                "points_ops_accepted_total",
                "Ops applied (idempotent retries included), by op type.",
                &["type"],
            ),
            ops_rejected: counter(
                &r,
                "points_ops_rejected_total",
                "Ops refused by the rules, by op type and rejection code.",
                &["type", "reason"],
            ),
            group_ops: histogram(
                &r,
                "points_group_ops",
                "Ops per group commit (sampled: groups landing faster than the metrics task wakes are counted once).",
                exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
            group_commit_seconds: histogram(
                &r,
                "points_group_commit_seconds",
                "Time from taking a group to having it durable (sampled like points_group_ops).",
                seconds,
            ),
            http_requests: counter(
                &r,
                "points_http_requests_total",
                "HTTP requests answered, by method, route and status.",
                &["method", "route", "status"],
            ),
            http_seconds,
            auth_rejections: counter(
                &r,
                "points_auth_rejections_total",
                "Signed-request authentication failures, by reason.",
                &["reason"],
            ),
            entries: gauge(&r, "points_entries", "Entries in the log (the tree size)."),
            accounts: gauge(
                &r,
                "points_accounts",
                "Accounts that ever held points (recounted at most every 10 s).",
            ),
            supply: gauge(&r, "points_supply", "Points in existence."),
            minted: gauge(&r, "points_minted", "Points ever minted."),
            burned: gauge(&r, "points_burned", "Points ever burned."),
            checkpoint_size: gauge(
                &r,
                "points_last_checkpoint_size",
                "Tree size of the latest signed checkpoint.",
            ),
            replay_cache: gauge(
                &r,
                "points_replay_cache_signatures",
                "Request signatures remembered for replay detection.",
            ),
            registry: r,
            accounts_counted: Mutex::new(None),
        }
    }

    /// Counts the outcome of one op.
    pub fn op(&self, op_type: &str, rejection: Option<&str>) {
        match rejection {
            None => self.ops_accepted.with_label_values(&[op_type]).inc(),
            Some(code) => self.ops_rejected.with_label_values(&[op_type, code]).inc(),
        }
    }

    /// Counts an authentication failure.
    pub fn auth_rejected(&self, reason: &str) {
        self.auth_rejections.with_label_values(&[reason]).inc();
    }

    /// Observes one group commit.
    pub fn group(&self, stats: &GroupStats) {
        self.group_ops.observe(stats.ops as f64);
        self.group_commit_seconds.observe(stats.commit_seconds);
    }

    /// Follows the sequencer's group statistics until it stops.
    pub fn watch(self: std::sync::Arc<Self>, sequencer: &Sequencer) {
        let mut rx = sequencer.watch_stats();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let stats = *rx.borrow_and_update();
                if let Some(s) = stats {
                    self.group(&s);
                }
            }
        });
    }

    fn http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_seconds
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Middleware: counts every request by method, route template and status.
pub(super) async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_string(),
        _ => "other".to_string(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    app.metrics.http(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

fn refresh_accounts(app: &AppState) -> Result<(), Problem> {
    let fresh = {
        let counted = app
            .metrics
            .accounts_counted
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counted.is_some_and(|(at, _)| at.elapsed() < ACCOUNTS_RECOUNT)
    };
    if !fresh {
        let n = app.store.account_count()?;
        *app.metrics
            .accounts_counted
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), n));
        app.metrics.accounts.set(gauge_value(n));
    }
    Ok(())
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "The Prometheus text exposition (version 0.0.4). Only the issuer and auditors may read it, unless the server runs with `--metrics-public`: op volumes by type reveal business data, and a scraper on a private network can be let in explicitly.",
    security(("points_ed25519" = [])),
    responses(
        (status = 200, description = "Every metric", content_type = "text/plain", body = String),
    )
)]
pub(super) async fn metrics(
    State(app): State<AppState>,
    _reader: MetricsReader,
) -> Result<Response, Problem> {
    let a = app.clone();
    tokio::task::spawn_blocking(move || refresh_accounts(&a))
        .await
        .map_err(|e| {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    let m = &app.metrics;
    m.entries.set(gauge_value(app.sequencer.tip().size));
    let totals = app.store.totals()?;
    m.supply.set(gauge_value(totals.supply));
    m.minted.set(gauge_value(totals.minted));
    m.burned.set(gauge_value(totals.burned));
    let cp = app.store.latest_checkpoint()?.map_or(0, |(s, _)| s);
    m.checkpoint_size.set(gauge_value(cp));
    m.replay_cache
        .set(gauge_value(app.auth.replay.len() as u64));
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], m.render()).into_response())
}
