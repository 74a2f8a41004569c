//! Who may read what: signed requests and the extractors that check them
//! (`ledger-spec/api.md` §3).
//!
//! Writes need no session: each op carries its own signature. Reads of private data (a
//! wallet's balance and history, orders, statements, the whole log) are made with a request
//! signed by a key:
//!
//! ```text
//! Authorization: Points-Ed25519 key=<64 hex>, ts=<unix ms>, sig=<128 hex>
//! sig = ed25519(key, "points-ledger/request/v1\0" || method || "\n" || path_and_query
//!                    || "\n" || ts || "\n" || chain_id)
//! ```
//!
//! The [`Caller`] extractor authenticates (401 `unauthorized` for a missing, malformed,
//! stale, badly signed or replayed request) and says what kind of account signed. The
//! narrower extractors [`Overseer`] and [`AccountAccess`] also authorize (403 `forbidden`),
//! so a handler's signature says who may call it.

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::error::Problem;
use super::{parse_account, AppState, P};
use crate::crypto::{self, Keypair};
use crate::op::AccountId;
use crate::rules::AccountKind;

/// Domain tag prefixed to every signed request.
pub const REQUEST_SIGNING_DOMAIN: &[u8] = b"points-ledger/request/v1\0";

/// The HTTP authentication scheme name.
pub const SCHEME: &str = "Points-Ed25519";

/// Settings of request authentication, with documented defaults.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// How far a request's `ts` may be from the server clock, either way, in ms.
    pub clock_skew_ms_max: u64,
    /// Most signatures remembered for replay detection. When it is full of signatures that
    /// are still inside the window, signed requests are refused with 503 `unavailable`
    /// (failing closed) until old ones age out.
    pub replay_cache_max: usize,
    /// Serve `/metrics` without a signature (for a Prometheus scraper on a private
    /// network); by default only the issuer and auditors may read it.
    pub metrics_public: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            clock_skew_ms_max: 60_000,
            replay_cache_max: 100_000,
            metrics_public: false,
        }
    }
}

/// The bytes a request signature covers.
pub fn request_payload(method: &str, path_and_query: &str, ts_ms: u64, chain_id: &str) -> Vec<u8> {
    let ts = ts_ms.to_string();
    let mut out = Vec::with_capacity(
        REQUEST_SIGNING_DOMAIN.len() + method.len() + path_and_query.len() + ts.len() + 3 + 64,
    );
    out.extend_from_slice(REQUEST_SIGNING_DOMAIN);
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(path_and_query.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(ts.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(chain_id.as_bytes());
    out
}

/// The `Authorization` header value for a request signed by `key`.
pub fn authorization_value(
    key: &Keypair,
    method: &str,
    path_and_query: &str,
    ts_ms: u64,
    chain_id: &str,
) -> String {
    let sig = key.sign(&request_payload(method, path_and_query, ts_ms, chain_id));
    format!(
        "{SCHEME} key={}, ts={ts_ms}, sig={}",
        hex::encode(key.public_key()),
        hex::encode(sig)
    )
}

/// The parameters of an `Authorization: Points-Ed25519 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The signing key.
    pub key: [u8; 32],
    /// The request time (unix ms).
    pub ts_ms: u64,
    /// The signature.
    pub sig: [u8; 64],
}

fn lower_hex<const N: usize>(name: &str, s: &str) -> Result<[u8; N], String> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("`{name}` must be {} lowercase hex digits", 2 * N));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| format!("`{name}`: {e}"))?;
    Ok(out)
}

/// Parses an `Authorization` value: the scheme (case-insensitive), then `key`, `ts` and
/// `sig`, each exactly once, in any order, separated by commas.
pub fn parse_authorization(value: &str) -> Result<Credentials, String> {
    let (scheme, params) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("expected `{SCHEME} key=…, ts=…, sig=…`"))?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(format!("scheme `{scheme}`: use `{SCHEME}`"));
    }
    let (mut key, mut ts, mut sig) = (None, None, None);
    for part in params.split(',') {
        let (name, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("parameter `{}` has no value", part.trim()))?;
        let slot = match name {
            "key" => &mut key,
            "ts" => &mut ts,
            "sig" => &mut sig,
            other => return Err(format!("unknown parameter `{other}`")),
        };
        if slot.replace(v).is_some() {
            return Err(format!("parameter `{name}` is given twice"));
        }
    }
    let (Some(key), Some(ts), Some(sig)) = (key, ts, sig) else {
        return Err("`key`, `ts` and `sig` are all required".into());
    };
    if ts.is_empty()
        || ts.len() > 20
        || !ts.bytes().all(|b| b.is_ascii_digit())
        || (ts.len() > 1 && ts.starts_with('0'))
    {
        return Err("`ts` must be unix milliseconds in decimal, without leading zeros".into());
    }
    Ok(Credentials {
        key: lower_hex("key", key)?,
        ts_ms: ts.parse().map_err(|_| "`ts` is out of range".to_string())?,
        sig: lower_hex("sig", sig)?,
    })
}

/// Why a signature could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// It was seen before, inside the window.
    Replayed,
    /// The cache is full of signatures that are still inside the window.
    Full,
}

/// The signatures seen inside the time window, bounded.
///
/// A request is accepted only while `|now − ts| ≤ window`, so a signature must be
/// remembered until `ts + window`; after that the timestamp check refuses it anyway.
#[derive(Debug)]
pub struct ReplayCache {
    seen: Mutex<BTreeSet<(u64, [u8; 64])>>,
    window_ms: u64,
    max: usize,
}

impl ReplayCache {
    /// An empty cache for a window of `window_ms` holding at most `max` signatures.
    pub fn new(window_ms: u64, max: usize) -> ReplayCache {
        ReplayCache {
            seen: Mutex::new(BTreeSet::new()),
            window_ms,
            max,
        }
    }

    /// Records `(ts, sig)`, first forgetting every signature too old to be accepted again.
    pub fn check_and_insert(
        &self,
        ts_ms: u64,
        sig: &[u8; 64],
        now_ms: u64,
    ) -> Result<(), ReplayError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((ts, _)) = seen.first() {
            if ts.saturating_add(self.window_ms) < now_ms {
                seen.pop_first();
            } else {
                break;
            }
        }
        if seen.contains(&(ts_ms, *sig)) {
            return Err(ReplayError::Replayed);
        }
        if seen.len() >= self.max {
            return Err(ReplayError::Full);
        }
        seen.insert((ts_ms, *sig));
        Ok(())
    }

    /// Signatures remembered now.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Authentication state shared by every request.
#[derive(Debug)]
pub struct Auth {
    /// Settings.
    pub config: AuthConfig,
    /// Signatures seen inside the window.
    pub replay: ReplayCache,
}

impl Auth {
    /// Authentication with these settings and an empty replay cache.
    pub fn new(config: AuthConfig) -> Auth {
        Auth {
            replay: ReplayCache::new(config.clock_skew_ms_max, config.replay_cache_max),
            config,
        }
    }
}

fn unauthorized(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// 403 `forbidden`.
pub(crate) fn forbidden(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

/// An authenticated caller: the key that signed the request and what kind of account it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The signing key.
    pub account: AccountId,
    /// Issuer, auditor, merchant or member.
    pub kind: AccountKind,
}

impl Caller {
    /// The issuer and registered auditors may read everything.
    pub fn is_overseer(&self) -> bool {
        matches!(self.kind, AccountKind::Issuer | AccountKind::Auditor)
    }

    /// Allows an overseer or one of `parties`; 403 otherwise.
    pub fn require_party(&self, parties: &[AccountId], what: &str) -> Result<(), Problem> {
        if self.is_overseer() || parties.contains(&self.account) {
            return Ok(());
        }
        Err(forbidden(format!(
            "{} may not read {what}: only its parties, auditors and the issuer may",
            self.account
        )))
    }

    /// Authenticates the request in `parts`.
    pub(crate) fn authenticate(parts: &Parts, app: &AppState) -> Result<Caller, Problem> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            app.metrics.auth_rejected("missing");
            unauthorized(format!(
                "this route needs a signed request: `Authorization: {SCHEME} key=<hex>, ts=<unix ms>, sig=<hex>`"
            ))
        })?;
        let creds = value
            .to_str()
            .map_err(|_| "the header is not ASCII".to_string())
            .and_then(parse_authorization)
            .map_err(|e| {
                app.metrics.auth_rejected("malformed");
                unauthorized(format!("malformed Authorization header: {e}"))
            })?;
        let now = crate::client::now_ms();
        let window = app.auth.config.clock_skew_ms_max;
        if creds.ts_ms.abs_diff(now) > window {
            app.metrics.auth_rejected("stale");
            let (dir, off) = if creds.ts_ms > now {
                ("ahead of", creds.ts_ms - now)
            } else {
                ("behind", now - creds.ts_ms)
            };
            return Err(unauthorized(format!(
                "the request's ts {} is {off} ms {dir} the server clock ({now}); at most {window} ms either way is accepted: sign it again with the current time",
                creds.ts_ms
            )));
        }
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
        let payload = request_payload(
            parts.method.as_str(),
            path_and_query,
            creds.ts_ms,
            &app.chain_id,
        );
        crypto::verify(&creds.key, &payload, &creds.sig).map_err(|e| {
            app.metrics.auth_rejected("bad_signature");
            unauthorized(format!(
                "the signature does not verify ({e}); it must cover the method, the path and query as sent, ts and the chain id `{}`",
                app.chain_id
            ))
        })?;
        app.auth
            .replay
            .check_and_insert(creds.ts_ms, &creds.sig, now)
            .map_err(|e| match e {
                ReplayError::Replayed => {
                    app.metrics.auth_rejected("replayed");
                    unauthorized("this signature was already used: sign every request afresh")
                }
                ReplayError::Full => {
                    app.metrics.auth_rejected("replay_cache_full");
                    tracing::warn!("replay cache full: refusing signed requests");
                    Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "too many signed requests in the replay window; retry shortly",
                    )
                }
            })?;
        let account = AccountId(creds.key);
        let kind = if app.issuer == account {
            AccountKind::Issuer
        } else if app.store.auditor(&account)?.is_some() {
            AccountKind::Auditor
        } else if app.store.merchant(&account)?.is_some() {
            AccountKind::Merchant
        } else {
            AccountKind::Member
        };
        Ok(Caller { account, kind })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        Caller::authenticate(parts, app)
    }
}

/// A caller that may read everything: the issuer or a registered auditor.
#[derive(Debug, Clone, Copy)]
pub struct Overseer(pub Caller);

impl FromRequestParts<AppState> for Overseer {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        let caller = Caller::authenticate(parts, app)?;
        if !caller.is_overseer() {
            return Err(forbidden(format!(
                "{} may not read this: only auditors and the issuer may",
                caller.account
            )));
        }
        Ok(Overseer(caller))
    }
}

/// The `{account}` of the path, which the caller may read: the account's own key, an
/// auditor or the issuer.
#[derive(Debug, Clone, Copy)]
pub struct AccountAccess {
    /// The account named in the path.
    pub account: AccountId,
    /// Who asks.
    pub caller: Caller,
}

impl FromRequestParts<AppState> for AccountAccess {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        let caller = Caller::authenticate(parts, app)?;
        let P(raw) = P::<String>::from_request_parts(parts, app).await?;
        let account = parse_account(&raw)?;
        caller.require_party(&[account], &format!("account {account}'s data"))?;
        Ok(AccountAccess { account, caller })
    }
}

/// `/metrics` readers: overseers, or anyone when [`AuthConfig::metrics_public`] is set.
#[derive(Debug, Clone, Copy)]
pub struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        if !app.auth.config.metrics_public {
            Overseer::from_request_parts(parts, app).await?;
        }
        Ok(MetricsReader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let k = Keypair::from_seed([7; 32]);
        let v = authorization_value(&k, "GET", "/v1/wallets/ab?limit=1", 1234, "c");
        let c = parse_authorization(&v).expect("parses");
        assert_eq!(c.key, k.public_key());
        assert_eq!(c.ts_ms, 1234);
        let payload = request_payload("GET", "/v1/wallets/ab?limit=1", 1234, "c");
        assert!(crypto::verify(&c.key, &payload, &c.sig).is_ok());
        assert_eq!(
            payload,
            b"points-ledger/request/v1\0GET\n/v1/wallets/ab?limit=1\n1234\nc".to_vec()
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let k = "a".repeat(64);
        let s = "b".repeat(128);
        for bad in [
            String::new(),
            "Bearer abc".to_string(),
            format!("Points-Ed25519 key={k}, ts=1"),
            format!("Points-Ed25519 key={k}, ts=1, sig={s}, sig={s}"),
            format!("Points-Ed25519 key={k}, ts=-1, sig={s}"),
            format!("Points-Ed25519 key={}, ts=1, sig={s}", k.to_uppercase()),
            format!("Points-Ed25519 key={k}, ts=1, sig={s}, extra=1"),
            format!("Points-Ed25519 key={k}, ts=99999999999999999999999, sig={s}"),
            format!("Points-Ed25519 key={k}, ts=0123, sig={s}"),
        ] {
            assert!(parse_authorization(&bad).is_err(), "{bad}");
        }
        assert!(parse_authorization(&format!("points-ed25519 sig={s},ts=5,key={k}")).is_ok());
    }

    #[test]
    fn replay_cache_forgets_old_and_stays_bounded() {
        let c = ReplayCache::new(10, 2);
        assert_eq!(c.check_and_insert(100, &[1; 64], 100), Ok(()));
        assert_eq!(
            c.check_and_insert(100, &[1; 64], 105),
            Err(ReplayError::Replayed)
        );
        assert_eq!(c.check_and_insert(101, &[2; 64], 105), Ok(()));
        assert_eq!(
            c.check_and_insert(102, &[3; 64], 105),
            Err(ReplayError::Full)
        );
        // 100 + 10 < 111: the first is too old to be accepted again, so it is forgotten.
        assert_eq!(c.check_and_insert(102, &[3; 64], 111), Ok(()));
        assert_eq!(c.len(), 2);
    }
}
