//! Operation types: the `SignedOp` envelope, every `Op`, and the `Entry` of the chain.
//!
//! These are plain data. Their byte encoding lives in [`crate::codec`] and is specified in
//! `ledger-spec/encoding.md`; their meaning lives in [`crate::rules`] (`ledger-spec/rules.md`).
//! Field order and enum variant order are part of the wire format: never reorder, only
//! append new variants at the end.

use std::fmt;
use std::str::FromStr;

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Domain tag prefixed to the canonical envelope bytes before signing (`ledger-spec/encoding.md` §5).
pub const OP_SIGNING_DOMAIN: &[u8] = b"points-ledger/op/v1\0";

/// Longest chain id, in bytes.
pub const CHAIN_ID_LEN_MAX: usize = 64;
/// Longest human-readable name (merchant, auditor, currency), in bytes.
pub const NAME_LEN_MAX: usize = 64;
/// Longest opaque reference or memo, in bytes.
pub const REFERENCE_LEN_MAX: usize = 64;

macro_rules! hex_bytes_type {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Lowercase hex of the bytes.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = ParseHexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; $len];
                if s.len() != 2 * $len {
                    return Err(ParseHexError::Length { expected: 2 * $len, actual: s.len() });
                }
                if s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(ParseHexError::NotLowercase);
                }
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseHexError::NotHex)?;
                Ok($name(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseHexError {
    /// Wrong number of hex digits.
    #[error("expected {expected} hex digits, got {actual}")]
    Length {
        /// Digits expected.
        expected: usize,
        /// Digits given.
        actual: usize,
    },
    /// Not hex.
    #[error("not a hex string")]
    NotHex,
    /// Uppercase digits: the canonical form is lowercase.
    #[error("hex must be lowercase")]
    NotLowercase,
}

hex_bytes_type!(
    /// An account: the 32-byte ed25519 public key of its holder.
    AccountId,
    32
);
hex_bytes_type!(
    /// A 64-byte ed25519 signature.
    Signature,
    64
);
hex_bytes_type!(
    /// A SHA-256 digest: entry hashes, Merkle roots and nodes.
    Hash32,
    32
);

impl Hash32 {
    /// All zeros: the `prev_hash` of entry 0.
    pub const ZERO: Hash32 = Hash32([0u8; 32]);
}

/// An amount of points. Arithmetic on it is always checked.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Points(pub u64);

impl fmt::Debug for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pts", self.0)
    }
}

impl fmt::Display for Points {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A signer's idempotency key: unique per signer, forever.
///
/// In JSON it is a decimal string, because JSON numbers lose precision above 2^53.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Encode, Decode)]
pub struct OpId(pub u128);

impl Serialize for OpId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for OpId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse::<u128>()
            .map(OpId)
            .map_err(serde::de::Error::custom)
    }
}

/// Opaque bytes (references, memos) shown as lowercase hex in JSON.
#[derive(Clone, PartialEq, Eq, Hash, Default, Encode, Decode)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({})", hex::encode(&self.0))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom(ParseHexError::NotLowercase));
        }
        hex::decode(s.as_ref())
            .map(Bytes)
            .map_err(|_| serde::de::Error::custom(ParseHexError::NotHex))
    }
}

/// An exchange rate between points and money: `minor_units` of the ledger's currency per
/// `per_points` points, kept as an exact fraction.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct Rate {
    /// Numerator: money in minor units (cents, fen).
    pub minor_units: u64,
    /// Denominator: points. Never zero.
    pub per_points: u64,
}

/// Whether a merchant may act.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MerchantStatus {
    /// May award points, list goods and accept redemptions.
    Active,
    /// Registered but refused for every op it signs.
    Suspended,
}

/// Why points were earned, so a member can always see it.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EarnReason {
    /// A purchase; the reference is the receipt id.
    Purchase,
    /// A completed task (survey, check-in, review).
    Task,
    /// A campaign or promotion bonus.
    Campaign,
    /// A referral bonus.
    Referral,
    /// A goodwill or correcting adjustment.
    Adjustment,
}

/// Why points were destroyed.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BurnReason {
    /// The holder gave them up.
    Voluntary,
    /// They expired under the program's terms (issuer only).
    Expiry,
    /// An operator correction (issuer only).
    Correction,
}

/// Entry 0: creates the ledger. Signed by the issuer, whose key becomes the issuer key.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Genesis {
    /// ISO 4217 code of the currency settlements are made in, e.g. `CNY`.
    pub currency: String,
    /// Digits after the decimal point of that currency's minor unit (2 for fen and cents).
    pub minor_unit_digits: u8,
    /// The key that signs checkpoints (the log key), kept apart from the issuer key so the
    /// issuer key can stay offline.
    pub checkpoint_key: AccountId,
}

/// Registers a partner merchant.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterMerchant {
    /// The merchant's key.
    pub merchant: AccountId,
    /// Display name.
    pub name: String,
    /// Money the merchant owes per point minted into its float.
    pub issue_rate: Rate,
    /// Money the operator owes per point the merchant receives from redemptions.
    pub redeem_rate: Rate,
}

/// Changes a merchant's name, rates or status; absent fields stay as they are.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpdateMerchant {
    /// The merchant's key.
    pub merchant: AccountId,
    /// New display name.
    pub name: Option<String>,
    /// New issue rate, effective from this op's seq.
    pub issue_rate: Option<Rate>,
    /// New redeem rate, effective from this op's seq.
    pub redeem_rate: Option<Rate>,
    /// New status.
    pub status: Option<MerchantStatus>,
}

/// Registers an auditor: a key allowed to read everything.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterAuditor {
    /// The auditor's key.
    pub auditor: AccountId,
    /// Display name.
    pub name: String,
}

/// Creates points in an account (usually a merchant's float). Issuer only.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mint {
    /// Receiving account.
    pub to: AccountId,
    /// Points created.
    pub amount: Points,
    /// Opaque memo (invoice number).
    pub memo: Bytes,
    /// When the minted lot expires (unix ms); none = never (`ledger-spec/loyalty.md` §2).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// A merchant awards points from its float to a member.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Earn {
    /// The member receiving points.
    pub member: AccountId,
    /// Points awarded.
    pub amount: Points,
    /// Why.
    pub reason: EarnReason,
    /// Opaque reference: receipt or task id (never personal data).
    pub reference: Bytes,
    /// When the awarded lot expires (unix ms); none = never (`ledger-spec/loyalty.md` §2).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// Held back until released: none = available at once (`ledger-spec/loyalty.md` §3).
    #[serde(default)]
    pub pending: Option<Pending>,
}

/// Terms of a pending award: the points are the member's but cannot be spent until released.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct Pending {
    /// Released at this time (unix ms); none = only when the merchant confirms (ConfirmEarn).
    pub release_at_ms: Option<u64>,
}

/// Moves points from the signer to another account.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transfer {
    /// Receiving account.
    pub to: AccountId,
    /// Points moved.
    pub amount: Points,
    /// Opaque memo.
    pub memo: Bytes,
}

/// Destroys points: the holder's own, or any account's when the issuer signs (expiry, correction).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Burn {
    /// Account the points leave.
    pub from: AccountId,
    /// Points destroyed.
    pub amount: Points,
    /// Why.
    pub reason: BurnReason,
}

/// Deserializes a field that is present (so `Some`) and may be `null` (so `Some(None)`).
fn present_maybe_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// Lists a new item in the redemption mall. Its item id is the seq of this entry.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListItem {
    /// Title (1–80 bytes).
    pub title: String,
    /// Short description (up to 280 bytes).
    pub description: String,
    /// Price of one unit, in points.
    pub price: Points,
    /// Units available.
    pub stock: u64,
    /// Most units in one order (0 = no limit).
    pub limit_per_order: u64,
    /// Most units one member may hold in open or fulfilled orders (0 = no limit).
    pub limit_per_member: u64,
    /// Redeemable from this time (unix ms; 0 = at once).
    pub available_from_ms: u64,
    /// Redeemable until this time (unix ms, exclusive); none = no end.
    pub available_until_ms: Option<u64>,
    /// Whether it can be redeemed now.
    pub active: bool,
}

/// Changes an item; absent fields stay as they are. Only the listing merchant may sign it.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpdateItem {
    /// The item (seq of its ListItem entry).
    pub item_id: u64,
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New price.
    pub price: Option<Points>,
    /// Units to add (positive) or withdraw (negative); 0 leaves stock alone.
    pub stock_delta: i64,
    /// New per-order limit.
    pub limit_per_order: Option<u64>,
    /// New per-member limit.
    pub limit_per_member: Option<u64>,
    /// New start of availability.
    pub available_from_ms: Option<u64>,
    /// New end of availability (`Some(None)` removes the end). In JSON: absent = unchanged,
    /// `null` = remove the end, a number = the new end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_maybe_null"
    )]
    pub available_until_ms: Option<Option<u64>>,
    /// New active flag.
    pub active: Option<bool>,
}

/// A member redeems an item: points move to the merchant, stock goes down, and an order is
/// created whose id is the seq of this entry.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Redeem {
    /// The item.
    pub item_id: u64,
    /// Units.
    pub quantity: u64,
    /// The most the member agreed to pay per unit; a higher current price is refused.
    pub max_unit_price: Points,
}

/// The merchant marks an open order delivered.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FulfillOrder {
    /// The order (seq of its Redeem entry).
    pub order_id: u64,
    /// Opaque fulfilment reference (shipment, voucher code hash).
    pub reference: Bytes,
}

/// Cancels an open order: refunds the points to the member and restores the stock. The
/// merchant may cancel any open order; the member may cancel their own open order.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelOrder {
    /// The order.
    pub order_id: u64,
    /// Opaque reason.
    pub reason: Bytes,
}

/// Closes a merchant's settlement period. Signed by the issuer in the envelope and
/// countersigned by the merchant over the same statement (`ledger-spec/settlement.md`).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settle {
    /// The merchant.
    pub merchant: AccountId,
    /// Period start (exclusive): the previous settlement's `to_seq`, or 0.
    pub from_seq: u64,
    /// Period end (inclusive).
    pub to_seq: u64,
    /// The statement totals both parties agree on.
    pub totals: crate::settlement::StatementTotals,
    /// The merchant's signature over `SETTLE_DOMAIN || canonical(SettleBody)`.
    pub merchant_signature: Signature,
}

/// Burns an account's lots that expired by `as_of_ms`. Issuer only; `amount` must equal
/// their sum exactly (`ledger-spec/loyalty.md` §2.4).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Expire {
    /// The account whose expired lots are burned.
    pub account: AccountId,
    /// Lots expiring at or before this time (unix ms) are burned; at most the entry's timestamp.
    pub as_of_ms: u64,
    /// The sum of those lots.
    pub amount: Points,
}

/// The merchant releases one of its pending awards now (`ledger-spec/loyalty.md` §3.2).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfirmEarn {
    /// The award (seq of its Earn entry).
    pub earn_id: u64,
}

/// The merchant takes back one of its awards (a returned purchase): a pending award is
/// cancelled, a released one clawed back as far as the member's points allow
/// (`ledger-spec/loyalty.md` §3.3).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReverseEarn {
    /// The award (seq of its Earn entry).
    pub earn_id: u64,
    /// Opaque reason (return id).
    pub reason: Bytes,
}

/// One membership tier.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tier {
    /// Display name (text rule).
    pub name: String,
    /// Growth within the window needed to hold the tier.
    pub min_growth: u64,
}

/// A growth rate for one earn reason, overriding the default.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct ReasonRate {
    /// The reason.
    pub reason: EarnReason,
    /// Growth per point for it (`minor_units` growth per `per_points` points).
    pub rate: Rate,
}

/// Sets the program's tiers and how growth (成长值) accrues. Issuer only; applies to awards
/// made from this entry on (`ledger-spec/loyalty.md` §4).
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SetTiers {
    /// Tiers, lowest first: the first needs 0 growth, each next one more.
    pub tiers: Vec<Tier>,
    /// Growth counts for this long after its award is released (rolling window), in ms.
    pub window_ms: u64,
    /// Growth per point awarded: `minor_units` growth per `per_points` points, rounded down.
    pub growth_per_point: Rate,
    /// Per-reason rates replacing `growth_per_point` (each reason at most once).
    pub reason_rates: Vec<ReasonRate>,
}

/// Every operation. The variant index is the enum tag on the wire: append only.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// Tag 0.
    Genesis(Genesis),
    /// Tag 1.
    RegisterMerchant(RegisterMerchant),
    /// Tag 2.
    UpdateMerchant(UpdateMerchant),
    /// Tag 3.
    RegisterAuditor(RegisterAuditor),
    /// Tag 4.
    Mint(Mint),
    /// Tag 5.
    Earn(Earn),
    /// Tag 6.
    Transfer(Transfer),
    /// Tag 7.
    Burn(Burn),
    /// Tag 8.
    ListItem(ListItem),
    /// Tag 9.
    UpdateItem(UpdateItem),
    /// Tag 10.
    Redeem(Redeem),
    /// Tag 11.
    FulfillOrder(FulfillOrder),
    /// Tag 12.
    CancelOrder(CancelOrder),
    /// Tag 13.
    Settle(Settle),
    /// Tag 14.
    Expire(Expire),
    /// Tag 15.
    ConfirmEarn(ConfirmEarn),
    /// Tag 16.
    ReverseEarn(ReverseEarn),
    /// Tag 17.
    SetTiers(SetTiers),
}

impl Op {
    /// The stable snake_case name of the op type (used in metrics and the API).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Genesis(_) => "genesis",
            Op::RegisterMerchant(_) => "register_merchant",
            Op::UpdateMerchant(_) => "update_merchant",
            Op::RegisterAuditor(_) => "register_auditor",
            Op::Mint(_) => "mint",
            Op::Earn(_) => "earn",
            Op::Transfer(_) => "transfer",
            Op::Burn(_) => "burn",
            Op::ListItem(_) => "list_item",
            Op::UpdateItem(_) => "update_item",
            Op::Redeem(_) => "redeem",
            Op::FulfillOrder(_) => "fulfill_order",
            Op::CancelOrder(_) => "cancel_order",
            Op::Settle(_) => "settle",
            Op::Expire(_) => "expire",
            Op::ConfirmEarn(_) => "confirm_earn",
            Op::ReverseEarn(_) => "reverse_earn",
            Op::SetTiers(_) => "set_tiers",
        }
    }
}

/// What the signer signs: everything in a [`SignedOp`] but the signature.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Envelope {
    /// The ledger this op is meant for; a signature never replays across ledgers.
    pub chain_id: String,
    /// Who signs.
    pub signer: AccountId,
    /// The signer's idempotency key.
    pub op_id: OpId,
    /// Last moment (unix ms) at which the op may be appended.
    pub not_after_ms: u64,
    /// What to do.
    pub op: Op,
}

/// An envelope with its signature over `OP_SIGNING_DOMAIN || canonical(envelope)`.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignedOp {
    /// The signed content.
    pub envelope: Envelope,
    /// ed25519 signature by `envelope.signer`.
    pub signature: Signature,
}

/// One link of the chain.
#[derive(Clone, PartialEq, Eq, Debug, Encode, Decode, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Entry hash of entry `seq - 1`; all zero for entry 0.
    pub prev_hash: Hash32,
    /// When the sequencer appended it (unix ms); never decreases.
    pub timestamp_ms: u64,
    /// The op.
    pub signed_op: SignedOp,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `UpdateItem.available_until_ms` keeps its three meanings through JSON.
    #[test]
    fn regression_update_item_until_round_trips_through_json() {
        for until in [None, Some(None), Some(Some(5u64))] {
            let op = UpdateItem {
                item_id: 1,
                title: None,
                description: None,
                price: None,
                stock_delta: 0,
                limit_per_order: None,
                limit_per_member: None,
                available_from_ms: None,
                available_until_ms: until,
                active: None,
            };
            let json = serde_json::to_string(&op).unwrap();
            let back: UpdateItem = serde_json::from_str(&json).unwrap();
            assert_eq!(back, op, "{json}");
        }
    }
}
