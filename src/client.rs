//! A client for merchants' systems, member apps and auditors: build and sign ops locally,
//! submit them with retries that are safe because op ids are idempotent, and read the ledger.
//!
//! A client made [`Client::with_key`] signs every request (`ledger-spec/api.md` §3), so it
//! may read what that key may read: its own wallet, a merchant's orders and statements, or
//! everything for an auditor or the issuer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use serde::de::DeserializeOwned;

use crate::api::dto::*;
use crate::api::error::Problem;
use crate::codec;
use crate::crypto::Keypair;
use crate::op::*;
use crate::store::Receipt;

/// How long a signed op stays valid by default (10 minutes).
pub const DEFAULT_TTL_MS: u64 = 10 * 60 * 1000;

/// The current time in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh random op id.
pub fn random_op_id() -> OpId {
    let mut b = [0u8; 16];
    OsRng.fill_bytes(&mut b);
    OpId(u128::from_le_bytes(b))
}

/// Signs an op: `signature = sign(OP_SIGNING_DOMAIN || canonical(envelope))`.
pub fn sign_op(key: &Keypair, chain_id: &str, op_id: OpId, not_after_ms: u64, op: Op) -> SignedOp {
    let envelope = Envelope {
        chain_id: chain_id.to_string(),
        signer: AccountId(key.public_key()),
        op_id,
        not_after_ms,
        op,
    };
    let signature = Signature(key.sign(&codec::signing_payload(&envelope)));
    SignedOp {
        envelope,
        signature,
    }
}

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a problem.
    #[error("{} ({}): {}", .0.code, .0.status, .0.detail)]
    Problem(Problem),
    /// The request did not complete.
    #[error("cannot reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something that is not what the API documents.
    #[error("unexpected response: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The problem code, when the server gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem(p) => Some(&p.code),
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Problem(p) => p.status == 503,
            ClientError::Unexpected(_) => false,
        }
    }
}

/// The key a client signs requests with, and what the signature needs.
#[derive(Debug)]
struct RequestSigner {
    key: Keypair,
    /// The server's chain id, learned from `/v1/info` on first use.
    chain_id: OnceLock<String>,
    /// The last `ts` used: each request gets a later one, so two identical requests from
    /// this client never carry the same signature (the server refuses a replayed one).
    last_ts_ms: AtomicU64,
}

impl RequestSigner {
    fn next_ts(&self) -> u64 {
        let now = now_ms();
        let mut last = self.last_ts_ms.load(Ordering::Relaxed);
        loop {
            let ts = now.max(last + 1);
            match self.last_ts_ms.compare_exchange_weak(
                last,
                ts,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return ts,
                Err(seen) => last = seen,
            }
        }
    }
}

/// An HTTP client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    signer: Option<Arc<RequestSigner>>,
    /// Attempts for a submission (idempotent, so retrying is safe).
    pub submit_attempts: u32,
}

impl Client {
    /// A client of the server at `base` (e.g. `http://127.0.0.1:8700`).
    pub fn new(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .expect("building an HTTP client");
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            signer: None,
            submit_attempts: 5,
        }
    }

    /// This client, signing every request with `key` from now on.
    pub fn with_key(mut self, key: Keypair) -> Client {
        self.signer = Some(Arc::new(RequestSigner {
            key,
            chain_id: OnceLock::new(),
            last_ts_ms: AtomicU64::new(0),
        }));
        self
    }

    /// This client, signing for `chain_id` without asking the server for it first.
    pub fn with_chain_id(self, chain_id: &str) -> Client {
        if let Some(s) = &self.signer {
            let _ = s.chain_id.set(chain_id.to_string());
        }
        self
    }

    /// The account requests are signed by, if any.
    pub fn signer(&self) -> Option<AccountId> {
        self.signer.as_ref().map(|s| AccountId(s.key.public_key()))
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/`), signed when the client has a key.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let url = reqwest::Url::parse(&format!("{}{}", self.base, path))
            .map_err(|e| ClientError::Unexpected(format!("bad URL {}{path}: {e}", self.base)))?;
        let Some(signer) = &self.signer else {
            return Ok(self.http.request(method, url));
        };
        let chain_id = match signer.chain_id.get() {
            Some(c) => c.clone(),
            None => {
                let info: InfoResponse = Self::decode(
                    self.http
                        .get(format!("{}/v1/info", self.base))
                        .send()
                        .await?,
                )
                .await?;
                signer.chain_id.get_or_init(|| info.chain_id).clone()
            }
        };
        // Sign the path and query exactly as they go on the wire (after URL normalisation).
        let mut path_and_query = url.path().to_string();
        if let Some(q) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        let value = crate::api::auth::authorization_value(
            &signer.key,
            method.as_str(),
            &path_and_query,
            signer.next_ts(),
            &chain_id,
        );
        Ok(self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, value))
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Unexpected(format!("{e}: {}", String::from_utf8_lossy(&bytes)))
            });
        }
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(p) => Err(ClientError::Problem(p)),
            Err(_) => Err(ClientError::Unexpected(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    /// GETs a JSON document at `path` (starting with `/`).
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .await?
            .send()
            .await?;
        Self::decode(resp).await
    }

    /// GETs `path` asking for JSON (`Accept: application/json`), for routes that also serve text.
    pub async fn get_json_accept<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .await?
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        Self::decode(resp).await
    }

    /// POSTs an empty body to `path` and decodes the JSON answer.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self
            .request(reqwest::Method::POST, path)
            .await?
            .send()
            .await?;
        Self::decode(resp).await
    }

    /// POSTs a text body to `path` and decodes the JSON answer.
    pub async fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        body: String,
    ) -> Result<T, ClientError> {
        let resp = self
            .request(reqwest::Method::POST, path)
            .await?
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await?;
        Self::decode(resp).await
    }

    /// Streams the export (`GET /v1/export`) into `out`; returns the bytes written.
    pub async fn export_to(
        &self,
        out: &mut (impl std::io::Write + Send),
    ) -> Result<u64, ClientError> {
        let mut resp = self
            .request(reqwest::Method::GET, "/v1/export")
            .await?
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(Self::decode::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or_else(|| ClientError::Unexpected("export failed".into())));
        }
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            out.write_all(&chunk)
                .map_err(|e| ClientError::Unexpected(format!("writing the export: {e}")))?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// GETs a text document at `path`.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let resp = self
            .request(reqwest::Method::GET, path)
            .await?
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status.is_success() {
            return Ok(text);
        }
        match serde_json::from_str::<Problem>(&text) {
            Ok(p) => Err(ClientError::Problem(p)),
            Err(_) => Err(ClientError::Unexpected(format!("HTTP {status}: {text}"))),
        }
    }

    /// The ledger's identity and tip.
    pub async fn info(&self) -> Result<InfoResponse, ClientError> {
        self.get_json("/v1/info").await
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, ClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut delay = Duration::from_millis(50);
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(e) if e.retryable() && tries < self.submit_attempts => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Submits one signed op (canonical bytes), retrying transport failures and 503s: the op
    /// id makes a retry of an op that did land return the original receipt.
    pub async fn submit(&self, op: &SignedOp) -> Result<Receipt, ClientError> {
        let bytes = codec::encode_signed_op(op);
        self.with_retries(|| async {
            let resp = self
                .http
                .post(format!("{}/v1/ops", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
                .send()
                .await?;
            Self::decode(resp).await
        })
        .await
    }

    /// Submits many signed ops in one request; one result per op.
    pub async fn submit_batch(&self, ops: &[SignedOp]) -> Result<Vec<BatchItem>, ClientError> {
        let bytes = codec::encode_batch(ops);
        self.with_retries(|| async {
            let resp = self
                .http
                .post(format!("{}/v1/ops/batch", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
                .send()
                .await?;
            let r: BatchResponse = Self::decode(resp).await?;
            Ok(r.results)
        })
        .await
    }

    /// A wallet's balance and kind.
    pub async fn wallet(&self, account: &AccountId) -> Result<WalletResponse, ClientError> {
        self.get_json(&format!("/v1/wallets/{account}")).await
    }

    /// One page of a wallet's history.
    pub async fn history(
        &self,
        account: &AccountId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<Receipt>, ClientError> {
        let mut path = format!("/v1/wallets/{account}/history?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.get_json(&path).await
    }

    /// One entry.
    pub async fn entry(&self, seq: u64) -> Result<EntryView, ClientError> {
        self.get_json(&format!("/v1/entries/{seq}")).await
    }

    /// One page of entries.
    pub async fn entries(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Page<EntryView>, ClientError> {
        let mut path = format!("/v1/entries?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.get_json(&path).await
    }

    /// Health.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get_json("/healthz").await
    }
}

/// A key plus the ledger it signs for: builds, signs and submits ops in one call.
pub struct Wallet {
    /// The key.
    pub key: Keypair,
    /// The ledger's chain id.
    pub chain_id: String,
    /// The server.
    pub client: Client,
    /// Validity window of each op.
    pub ttl_ms: u64,
}

impl Wallet {
    /// Connects: learns the chain id from the server.
    /// The client signs its reads with the wallet's key.
    pub async fn connect(key: Keypair, client: Client) -> Result<Wallet, ClientError> {
        let info = client.info().await?;
        let client = client.with_key(key.clone()).with_chain_id(&info.chain_id);
        Ok(Wallet {
            key,
            chain_id: info.chain_id,
            client,
            ttl_ms: DEFAULT_TTL_MS,
        })
    }

    /// This wallet's account.
    pub fn account(&self) -> AccountId {
        AccountId(self.key.public_key())
    }

    /// Signs an op with a fresh op id.
    pub fn sign(&self, op: Op) -> SignedOp {
        sign_op(
            &self.key,
            &self.chain_id,
            random_op_id(),
            now_ms() + self.ttl_ms,
            op,
        )
    }

    /// Signs and submits an op.
    pub async fn send(&self, op: Op) -> Result<Receipt, ClientError> {
        let signed = self.sign(op);
        self.client.submit(&signed).await
    }
}
