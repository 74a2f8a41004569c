//! JSON request and response bodies of the HTTP API (`ledger-spec/api.md`). Shared by the
//! server and [`crate::client`], so both sides agree by construction.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::Problem;
use crate::op::{AccountId, Hash32, MerchantStatus, Rate};
use crate::rules::AccountKind;
use crate::store::Receipt;

/// `POST /v1/ops` as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubmitRequest {
    /// Canonical SignedOp bytes, lowercase hex.
    pub signed_op: String,
}

/// `POST /v1/ops/batch` as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// Canonical SignedOp bytes of each op, lowercase hex.
    pub signed_ops: Vec<String>,
}

/// Outcome of one op in a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// `applied` (also for an idempotent retry) or `rejected`.
    pub status: String,
    /// The receipt, when applied.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub receipt: Option<Receipt>,
    /// Why not, when rejected.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<Problem>,
}

/// `POST /v1/ops/batch` response: one item per op, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// Per-op outcomes.
    pub results: Vec<BatchItem>,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InfoResponse {
    /// The chain id every op must carry.
    pub chain_id: String,
    /// The issuer's key.
    pub issuer: AccountId,
    /// The key that signs checkpoints.
    pub checkpoint_key: AccountId,
    /// The checkpoint verifier key in C2SP note form (`name+keyid+key`).
    pub checkpoint_verifier: String,
    /// Settlement currency.
    pub currency: String,
    /// Digits of its minor unit.
    pub minor_unit_digits: u8,
    /// Entries in the log.
    pub size: u64,
    /// Hash of the last entry.
    pub head: Hash32,
    /// Merkle root at `size`.
    pub root: Hash32,
    /// Points in existence.
    pub supply: u64,
    /// Points ever minted.
    pub minted: u64,
    /// Points ever burned.
    pub burned: u64,
}

/// Merchant details in a wallet response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MerchantView {
    /// Display name.
    pub name: String,
    /// Money owed per point minted to the merchant.
    pub issue_rate: Rate,
    /// Money owed per point redeemed with the merchant.
    pub redeem_rate: Rate,
    /// Active or suspended.
    pub status: MerchantStatus,
    /// Seq of the registration.
    pub registered_seq: u64,
}

/// `GET /v1/wallets/{account}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WalletResponse {
    /// The account.
    pub account: AccountId,
    /// Issuer, merchant, auditor or member.
    pub kind: AccountKind,
    /// Spendable points.
    pub balance: u64,
    /// Merchant details, for merchants.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub merchant: Option<MerchantView>,
}

/// A page of receipts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_after: Option<u64>,
}

/// One entry with everything needed to check it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    /// Seq.
    pub seq: u64,
    /// Hash of the entry.
    pub entry_hash: Hash32,
    /// Hash of the previous entry.
    pub prev_hash: Hash32,
    /// Timestamp.
    pub timestamp_ms: u64,
    /// The canonical entry bytes, lowercase hex (the Merkle leaf data).
    pub entry: String,
    /// The op, decoded.
    pub op: crate::op::SignedOp,
}

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Entries in the log.
    pub size: u64,
}

/// A checkpoint, parsed, with its signed note.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    /// The chain id.
    pub origin: String,
    /// Tree size (entries covered).
    pub size: u64,
    /// Merkle root at `size`.
    pub root: Hash32,
    /// Hash of entry `size - 1`.
    pub head: Hash32,
    /// When it was signed (unix ms).
    pub time_ms: u64,
    /// The signed note (C2SP signed-note text), with any cosignatures.
    pub note: String,
}

/// `GET /v1/proofs/inclusion`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionProofView {
    /// The entry.
    pub seq: u64,
    /// Tree size the proof is for.
    pub size: u64,
    /// RFC 9162 leaf hash of the entry.
    pub leaf_hash: Hash32,
    /// Sibling hashes, leaf to root.
    pub proof: Vec<Hash32>,
}

/// `GET /v1/proofs/consistency`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProofView {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
    /// RFC 9162 consistency proof.
    pub proof: Vec<Hash32>,
}

/// One history entry with its inclusion proof.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvenEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: EntryView,
    /// Inclusion proof against the page's checkpoint.
    pub proof: Vec<Hash32>,
}

/// `GET /v1/wallets/{account}/history?proofs=true`: a page verifiable against one checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvenHistory {
    /// The account.
    pub account: AccountId,
    /// The checkpoint every proof is against.
    pub checkpoint: CheckpointView,
    /// Entries, oldest first.
    pub items: Vec<ProvenEntry>,
    /// Pass as `after` (with `size`) for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_after: Option<u64>,
}
