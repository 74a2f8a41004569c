//! The rules: a pure, deterministic state machine deciding whether an op is valid and what
//! it does. Implements `ledger-spec/rules.md`.
//!
//! No I/O, no clock, no randomness: the sequencer, crash-recovery replay, the auditor and the
//! fuzzers all call [`apply`], so they cannot disagree. An op is checked completely before
//! anything changes, so a rejected op leaves the state exactly as it was. Checks run in the
//! documented order, each with its own stable [`Rejection`] code.

use std::collections::HashMap;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec;
use crate::crypto;
use crate::loyalty::{self, LoyaltyEffects, LoyaltyState};
use crate::mall::{self, ItemRecord, OrderRecord};
use crate::op::*;
use crate::settlement::{self, BookEvent, MerchantBook, SettlementRecord};

/// Where in the chain an op is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ctx {
    /// The seq the entry will have.
    pub seq: u64,
    /// The entry's timestamp (unix ms).
    pub timestamp_ms: u64,
}

/// A signed op whose signature has been checked under `ledger-spec/signatures.md`.
///
/// The only ways to obtain one are [`VerifiedOp::verify`], [`verify_many`] and, for the
/// store's own fsynced log, [`VerifiedOp::from_trusted_log`].
#[derive(Debug, Clone)]
pub struct VerifiedOp {
    op: SignedOp,
    digest: [u8; 32],
}

impl VerifiedOp {
    /// Checks the signature of one op.
    pub fn verify(op: SignedOp) -> Result<VerifiedOp, Rejection> {
        let payload = codec::signing_payload(&op.envelope);
        crypto::verify(&op.envelope.signer.0, &payload, &op.signature.0)
            .map_err(|_| Rejection::BadSignature)?;
        Ok(VerifiedOp {
            digest: Sha256::digest(&payload).into(),
            op,
        })
    }

    /// Wraps an op read back from the ledger's own durable log, whose signature was checked
    /// when it was appended. Replay after a crash uses this; the auditor never does.
    pub(crate) fn from_trusted_log(op: SignedOp) -> VerifiedOp {
        let payload = codec::signing_payload(&op.envelope);
        VerifiedOp {
            digest: Sha256::digest(&payload).into(),
            op,
        }
    }

    /// The op.
    pub fn signed_op(&self) -> &SignedOp {
        &self.op
    }

    /// Gives the op back.
    pub fn into_inner(self) -> SignedOp {
        self.op
    }

    /// SHA-256 of the signing payload: identifies "the same op" for idempotency.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

/// Checks the signatures of many ops at once (batch verification over all cores). Result `i`
/// is exactly what [`VerifiedOp::verify`] would return for op `i`.
pub fn verify_many(ops: Vec<SignedOp>) -> Vec<Result<VerifiedOp, Rejection>> {
    let payloads: Vec<Vec<u8>> = ops
        .iter()
        .map(|op| codec::signing_payload(&op.envelope))
        .collect();
    let items: Vec<crypto::BatchItem<'_>> = ops
        .iter()
        .zip(&payloads)
        .map(|(op, payload)| crypto::BatchItem {
            public_key: &op.envelope.signer.0,
            msg: payload,
            signature: &op.signature.0,
        })
        .collect();
    let verdicts = crypto::verify_batch(&items);
    drop(items);
    ops.into_iter()
        .zip(payloads)
        .zip(verdicts)
        .map(|((op, payload), verdict)| match verdict {
            Ok(()) => Ok(VerifiedOp {
                digest: Sha256::digest(&payload).into(),
                op,
            }),
            Err(_) => Err(Rejection::BadSignature),
        })
        .collect()
}

/// Every way an op can be refused, in the order the checks run. The snake_case code of each
/// variant is stable: it is the API's problem `type` and is listed in `ledger-spec/rules.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The ledger has no genesis yet and the op is not a genesis at seq 0.
    #[error("the ledger has no genesis entry yet")]
    NotInitialized,
    /// A second genesis.
    #[error("the ledger already has a genesis entry")]
    AlreadyInitialized,
    /// The envelope names another ledger.
    #[error("the op is signed for another chain")]
    WrongChain,
    /// The signature or the signer's key is not acceptable.
    #[error("the signature does not verify under the signer's key")]
    BadSignature,
    /// The signer already used this op id for a different op.
    #[error("the signer already used this op_id for a different op")]
    DuplicateOpId,
    /// `not_after_ms` has passed.
    #[error("the op expired before it could be appended")]
    Expired,
    /// The signer may not perform this op.
    #[error("the signer is not allowed to perform this op")]
    NotAuthorized,
    /// The merchant named (or signing) is not registered.
    #[error("no such merchant")]
    UnknownMerchant,
    /// The merchant is suspended.
    #[error("the merchant is suspended")]
    MerchantSuspended,
    /// The merchant is registered already.
    #[error("the merchant is already registered")]
    MerchantExists,
    /// The auditor is registered already.
    #[error("the auditor is already registered")]
    AuditorExists,
    /// The key already holds another role (issuer, merchant, auditor).
    #[error("the key already holds another role")]
    RoleConflict,
    /// A key in the op is not a valid ed25519 public key.
    #[error("an account in the op is not a valid public key")]
    InvalidAccount,
    /// A field is empty, too long or out of range.
    #[error("invalid field `{0}`")]
    InvalidField(&'static str),
    /// An amount of zero.
    #[error("the amount must be greater than zero")]
    ZeroAmount,
    /// Source and destination are the same account.
    #[error("source and destination are the same account")]
    SelfTransfer,
    /// The account has never held points.
    #[error("the account does not exist")]
    UnknownAccount,
    /// The balance is too small.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// A u64 would overflow.
    #[error("the amount would overflow")]
    Overflow,
    /// No such mall item.
    #[error("no such item")]
    UnknownItem,
    /// The item is not active.
    #[error("the item is not active")]
    ItemInactive,
    /// Outside the item's availability window.
    #[error("the item is not available at this time")]
    NotAvailable,
    /// Over the per-order or per-member limit.
    #[error("the quantity exceeds the item's per-order or per-member limit")]
    LimitExceeded,
    /// The current price is above the maximum the member agreed to.
    #[error("the item's price is above the agreed maximum unit price")]
    PriceAboveMax,
    /// Not enough stock.
    #[error("not enough stock")]
    OutOfStock,
    /// No such order.
    #[error("no such order")]
    UnknownOrder,
    /// The order is already fulfilled or cancelled.
    #[error("the order is already closed")]
    OrderClosed,
    /// The settlement period does not start where the last one ended, or is empty.
    #[error("the period must start at the merchant's last settlement and end before this op")]
    PeriodMismatch,
    /// The merchant's countersignature does not verify.
    #[error("the merchant's countersignature does not verify")]
    BadCountersignature,
    /// The totals differ from the statement recomputed from the chain.
    #[error("the totals differ from the statement recomputed from the chain")]
    StatementMismatch,
    /// An Expire's amount is not exactly the sum of the account's expired lots.
    #[error("the amount is not the sum of the account's lots expired by as_of_ms")]
    ExpiryMismatch,
    /// No such award.
    #[error("no such earn")]
    UnknownEarn,
    /// The award is already released (confirm) or reversed.
    #[error("the earn is no longer pending, or already reversed")]
    EarnClosed,
}

impl Rejection {
    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotInitialized => "not_initialized",
            Rejection::AlreadyInitialized => "already_initialized",
            Rejection::WrongChain => "wrong_chain",
            Rejection::BadSignature => "bad_signature",
            Rejection::DuplicateOpId => "duplicate_op_id",
            Rejection::Expired => "expired",
            Rejection::NotAuthorized => "not_authorized",
            Rejection::UnknownMerchant => "unknown_merchant",
            Rejection::MerchantSuspended => "merchant_suspended",
            Rejection::MerchantExists => "merchant_exists",
            Rejection::AuditorExists => "auditor_exists",
            Rejection::RoleConflict => "role_conflict",
            Rejection::InvalidAccount => "invalid_account",
            Rejection::InvalidField(_) => "invalid_field",
            Rejection::ZeroAmount => "zero_amount",
            Rejection::SelfTransfer => "self_transfer",
            Rejection::UnknownAccount => "unknown_account",
            Rejection::InsufficientFunds => "insufficient_funds",
            Rejection::Overflow => "overflow",
            Rejection::UnknownItem => "unknown_item",
            Rejection::ItemInactive => "item_inactive",
            Rejection::NotAvailable => "not_available",
            Rejection::LimitExceeded => "limit_exceeded",
            Rejection::PriceAboveMax => "price_above_max",
            Rejection::OutOfStock => "out_of_stock",
            Rejection::UnknownOrder => "unknown_order",
            Rejection::OrderClosed => "order_closed",
            Rejection::PeriodMismatch => "period_mismatch",
            Rejection::BadCountersignature => "bad_countersignature",
            Rejection::StatementMismatch => "statement_mismatch",
            Rejection::ExpiryMismatch => "expiry_mismatch",
            Rejection::UnknownEarn => "unknown_earn",
            Rejection::EarnClosed => "earn_closed",
        }
    }

    /// Every code, in the order the checks run: the signature first (verified before the
    /// rules see the op), then as `apply` checks (for documentation and the OpenAPI document).
    pub const ALL_CODES: &'static [&'static str] = &[
        "bad_signature",
        "not_initialized",
        "already_initialized",
        "wrong_chain",
        "duplicate_op_id",
        "expired",
        "not_authorized",
        "unknown_merchant",
        "merchant_suspended",
        "merchant_exists",
        "auditor_exists",
        "role_conflict",
        "invalid_account",
        "invalid_field",
        "zero_amount",
        "self_transfer",
        "unknown_account",
        "insufficient_funds",
        "overflow",
        "unknown_item",
        "item_inactive",
        "not_available",
        "limit_exceeded",
        "price_above_max",
        "out_of_stock",
        "unknown_order",
        "order_closed",
        "period_mismatch",
        "bad_countersignature",
        "statement_mismatch",
        "expiry_mismatch",
        "unknown_earn",
        "earn_closed",
    ];
}

/// The ledger's identity, fixed by the genesis entry.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LedgerInfo {
    /// The chain id every op must carry.
    pub chain_id: String,
    /// The issuer's key (signs genesis, mints, registrations, checkpoints).
    pub issuer: AccountId,
    /// Settlement currency.
    pub currency: String,
    /// Digits of the currency's minor unit.
    pub minor_unit_digits: u8,
    /// The key that signs checkpoints.
    pub checkpoint_key: AccountId,
}

/// A registered merchant.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct MerchantRecord {
    /// Display name.
    pub name: String,
    /// Current issue rate.
    pub issue_rate: Rate,
    /// Current redeem rate.
    pub redeem_rate: Rate,
    /// Current status.
    pub status: MerchantStatus,
    /// Seq of the registering entry.
    pub registered_seq: u64,
}

/// A registered auditor.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct AuditorRecord {
    /// Display name.
    pub name: String,
    /// Seq of the registering entry.
    pub registered_seq: u64,
}

/// Ledger-wide totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Totals {
    /// Points in existence: minted − burned = Σ balances.
    pub supply: u64,
    /// All points ever minted.
    pub minted: u64,
    /// All points ever burned.
    pub burned: u64,
    /// Entries applied (the next seq).
    pub entries: u64,
}

/// What kind of account a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// The program operator.
    Issuer,
    /// A partner merchant.
    Merchant,
    /// An auditor.
    Auditor,
    /// Anyone else.
    Member,
}

/// Where the rules look up and record (signer, op_id) pairs. Kept outside [`State`] because
/// it grows with every op; the store backs it with sled, the auditor and tests with a map.
pub trait OpIdIndex {
    /// The seq and payload digest recorded for this pair, if any.
    fn lookup(&self, signer: &AccountId, op_id: OpId) -> Option<OpIdRecord>;
    /// Records a pair (only called for an op that is being applied).
    fn record(&mut self, signer: AccountId, op_id: OpId, record: OpIdRecord);
}

/// What is kept per (signer, op_id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpIdRecord {
    /// Seq of the entry that holds the op.
    pub seq: u64,
    /// SHA-256 of its signing payload.
    pub digest: [u8; 32],
}

impl OpIdIndex for HashMap<(AccountId, OpId), OpIdRecord> {
    fn lookup(&self, signer: &AccountId, op_id: OpId) -> Option<OpIdRecord> {
        self.get(&(*signer, op_id)).copied()
    }
    fn record(&mut self, signer: AccountId, op_id: OpId, record: OpIdRecord) {
        self.insert((signer, op_id), record);
    }
}

/// The accounts an applied op concerns: each gets the entry in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parties {
    list: [AccountId; 2],
    len: u8,
}

impl Parties {
    pub(crate) fn one(a: AccountId) -> Parties {
        Parties {
            list: [a, a],
            len: 1,
        }
    }
    pub(crate) fn two(a: AccountId, b: AccountId) -> Parties {
        if a == b {
            return Parties::one(a);
        }
        Parties {
            list: [a, b],
            len: 2,
        }
    }
    /// The accounts, without repeats.
    pub fn as_slice(&self) -> &[AccountId] {
        &self.list[..self.len as usize]
    }
}

/// What an applied op changed, so the store knows what to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// Accounts whose history shows this entry (signer and counterparties).
    pub parties: Parties,
    /// Accounts whose balance changed.
    pub balances: Parties,
    /// Whether balances changed at all.
    pub balances_changed: bool,
    /// A merchant record written.
    pub merchant: Option<AccountId>,
    /// An auditor record written.
    pub auditor: Option<AccountId>,
    /// Genesis was applied.
    pub genesis: bool,
    /// A mall item written.
    pub item: Option<u64>,
    /// An order written.
    pub order: Option<u64>,
    /// A (member, item) holding count written.
    pub held: Option<(AccountId, u64)>,
    /// Merchants whose settlement book got an event at this seq.
    pub books: Option<Parties>,
    /// A settlement closed: (merchant, period end, settlement id).
    pub settled: Option<(AccountId, u64, u64)>,
    /// What changed in the loyalty state (lots, awards, order lots, tiers).
    pub loyalty: LoyaltyEffects,
}

impl Effects {
    /// Effects that touch nothing but the parties' histories.
    pub fn none(parties: Parties) -> Effects {
        Effects {
            parties,
            balances: parties,
            balances_changed: false,
            merchant: None,
            auditor: None,
            genesis: false,
            item: None,
            order: None,
            held: None,
            books: None,
            settled: None,
            loyalty: LoyaltyEffects::default(),
        }
    }
}

/// The result of an op that was not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // returned by value once per op; boxing would allocate
pub enum Outcome {
    /// Appended with these effects.
    Applied(Effects),
    /// The same op was already appended at `seq`: nothing changes, the original receipt stands.
    Duplicate {
        /// Seq of the original entry.
        seq: u64,
    },
}

/// All derived state the rules need, in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    info: Option<LedgerInfo>,
    pub(crate) balances: HashMap<AccountId, u64>,
    merchants: HashMap<AccountId, MerchantRecord>,
    auditors: HashMap<AccountId, AuditorRecord>,
    pub(crate) totals: Totals,
    pub(crate) items: HashMap<u64, ItemRecord>,
    pub(crate) orders: HashMap<u64, OrderRecord>,
    pub(crate) held: HashMap<(AccountId, u64), u64>,
    pub(crate) books: HashMap<AccountId, MerchantBook>,
    pub(crate) settlements: HashMap<u64, SettlementRecord>,
    pub(crate) loyalty: LoyaltyState,
}

/// Everything a [`State`] is made of, for loading it from storage.
#[derive(Debug, Default)]
pub struct StateParts {
    /// Ledger identity.
    pub info: Option<LedgerInfo>,
    /// Balances.
    pub balances: HashMap<AccountId, u64>,
    /// Merchants.
    pub merchants: HashMap<AccountId, MerchantRecord>,
    /// Auditors.
    pub auditors: HashMap<AccountId, AuditorRecord>,
    /// Totals.
    pub totals: Totals,
    /// Mall items.
    pub items: HashMap<u64, ItemRecord>,
    /// Orders.
    pub orders: HashMap<u64, OrderRecord>,
    /// Units each member holds of each item.
    pub held: HashMap<(AccountId, u64), u64>,
    /// Merchants' settlement books.
    pub books: HashMap<AccountId, MerchantBook>,
    /// Settlements.
    pub settlements: HashMap<u64, SettlementRecord>,
    /// Lots, pending awards, award records, order lots and tiers.
    pub loyalty: LoyaltyState,
}

/// An invariant that does not hold: always a bug or corruption, never bad input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant violated: {0}")]
pub struct InvariantViolation(pub String);

impl State {
    /// An empty state (before genesis).
    pub fn new() -> State {
        State::default()
    }

    /// Rebuilds a state from stored parts (the store's derived trees).
    pub fn from_parts(p: StateParts) -> State {
        State {
            info: p.info,
            balances: p.balances,
            merchants: p.merchants,
            auditors: p.auditors,
            totals: p.totals,
            items: p.items,
            orders: p.orders,
            held: p.held,
            books: p.books,
            settlements: p.settlements,
            loyalty: p.loyalty,
        }
    }

    /// A mall item.
    pub fn item(&self, item_id: u64) -> Option<&ItemRecord> {
        self.items.get(&item_id)
    }

    /// An order.
    pub fn order(&self, order_id: u64) -> Option<&OrderRecord> {
        self.orders.get(&order_id)
    }

    /// Units of `item_id` that `member` holds in open or fulfilled orders.
    pub fn held(&self, member: &AccountId, item_id: u64) -> u64 {
        self.held.get(&(*member, item_id)).copied().unwrap_or(0)
    }

    /// A merchant's settlement book.
    pub fn book(&self, merchant: &AccountId) -> Option<&MerchantBook> {
        self.books.get(merchant)
    }

    /// A settlement.
    pub fn settlement(&self, id: u64) -> Option<&SettlementRecord> {
        self.settlements.get(&id)
    }

    /// All merchants.
    pub fn merchants(&self) -> &HashMap<AccountId, MerchantRecord> {
        &self.merchants
    }

    /// All mall items.
    pub fn items(&self) -> &HashMap<u64, ItemRecord> {
        &self.items
    }

    /// The ledger identity, once genesis is applied.
    pub fn info(&self) -> Option<&LedgerInfo> {
        self.info.as_ref()
    }

    /// Ledger-wide totals.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// An account's balance (0 if it never held points).
    pub fn balance(&self, account: &AccountId) -> u64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Whether the account ever held points.
    pub fn has_account(&self, account: &AccountId) -> bool {
        self.balances.contains_key(account)
    }

    /// A merchant's record.
    pub fn merchant(&self, account: &AccountId) -> Option<&MerchantRecord> {
        self.merchants.get(account)
    }

    /// An auditor's record.
    pub fn auditor(&self, account: &AccountId) -> Option<&AuditorRecord> {
        self.auditors.get(account)
    }

    /// Number of accounts that ever held points.
    pub fn account_count(&self) -> usize {
        self.balances.len()
    }

    /// All balances.
    pub fn balances(&self) -> &HashMap<AccountId, u64> {
        &self.balances
    }

    /// What kind of account a key is.
    pub fn kind(&self, account: &AccountId) -> AccountKind {
        if self.info.as_ref().is_some_and(|i| i.issuer == *account) {
            AccountKind::Issuer
        } else if self.merchants.contains_key(account) {
            AccountKind::Merchant
        } else if self.auditors.contains_key(account) {
            AccountKind::Auditor
        } else {
            AccountKind::Member
        }
    }

    /// Checks every invariant of `ledger-spec/rules.md` §4 over the whole state (O(accounts)).
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let mut sum: u64 = 0;
        for (account, balance) in &self.balances {
            sum = sum.checked_add(*balance).ok_or_else(|| {
                InvariantViolation(format!("sum of balances overflows at {account}"))
            })?;
        }
        if sum != self.totals.supply {
            return Err(InvariantViolation(format!(
                "sum of balances {sum} != supply {}",
                self.totals.supply
            )));
        }
        if self.totals.minted.checked_sub(self.totals.burned) != Some(self.totals.supply) {
            return Err(InvariantViolation(format!(
                "minted {} - burned {} != supply {}",
                self.totals.minted, self.totals.burned, self.totals.supply
            )));
        }
        loyalty::check_invariants(self)
    }
}

pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(Rejection::InvalidField(field));
    }
    Ok(())
}

pub(crate) fn check_bytes(field: &'static str, value: &Bytes) -> Result<(), Rejection> {
    if value.0.len() > REFERENCE_LEN_MAX {
        return Err(Rejection::InvalidField(field));
    }
    Ok(())
}

pub(crate) fn check_rate(field: &'static str, rate: &Rate) -> Result<(), Rejection> {
    if rate.per_points == 0 {
        return Err(Rejection::InvalidField(field));
    }
    Ok(())
}

/// Whether a chain id is well formed: 1 to 64 bytes of `a-z 0-9 . - _ /`, usable as a
/// checkpoint origin line.
pub fn valid_chain_id(chain_id: &str) -> bool {
    !chain_id.is_empty()
        && chain_id.len() <= CHAIN_ID_LEN_MAX
        && chain_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
}

pub(crate) fn check_amount(amount: Points) -> Result<u64, Rejection> {
    if amount.0 == 0 {
        return Err(Rejection::ZeroAmount);
    }
    Ok(amount.0)
}

impl State {
    pub(crate) fn check_new_account(&self, account: &AccountId) -> Result<(), Rejection> {
        if self.balances.contains_key(account) {
            return Ok(());
        }
        crypto::check_public_key(&account.0).map_err(|_| Rejection::InvalidAccount)
    }

    pub(crate) fn check_merchant_signer(&self, signer: &AccountId) -> Result<(), Rejection> {
        match self.merchants.get(signer) {
            None => Err(Rejection::NotAuthorized),
            Some(m) if m.status == MerchantStatus::Suspended => Err(Rejection::MerchantSuspended),
            Some(_) => Ok(()),
        }
    }

    fn check_not_suspended(&self, signer: &AccountId) -> Result<(), Rejection> {
        match self.merchants.get(signer) {
            Some(m) if m.status == MerchantStatus::Suspended => Err(Rejection::MerchantSuspended),
            _ => Ok(()),
        }
    }

    /// Checks a debit and a credit without applying them: `from` must be able to spend
    /// `amount` at `now_ms` (unexpired lots; `ledger-spec/loyalty.md` §2).
    pub(crate) fn check_move(
        &self,
        from: &AccountId,
        to: &AccountId,
        amount: u64,
        now_ms: u64,
    ) -> Result<(), Rejection> {
        if self.spendable(from, now_ms) < amount {
            return Err(Rejection::InsufficientFunds);
        }
        self.balance(to)
            .checked_add(amount)
            .ok_or(Rejection::Overflow)?;
        Ok(())
    }

    /// Burns `amount` spendable points from `from` (already checked to be covered).
    pub(crate) fn burn_from(
        &mut self,
        from: &AccountId,
        amount: u64,
        now_ms: u64,
    ) -> Result<(), Rejection> {
        if amount == 0 {
            return Ok(());
        }
        if self.spendable(from, now_ms) < amount {
            return Err(Rejection::InsufficientFunds);
        }
        let burned = self
            .totals
            .burned
            .checked_add(amount)
            .ok_or(Rejection::Overflow)?;
        let balance = self
            .balances
            .get_mut(from)
            .ok_or(Rejection::UnknownAccount)?;
        *balance = balance
            .checked_sub(amount)
            .ok_or(Rejection::InsufficientFunds)?;
        self.totals.burned = burned;
        self.totals.supply -= amount;
        loyalty::take_burned(self, from, amount, now_ms);
        Ok(())
    }

    /// Moves `amount` (checked by [`State::check_move`]) and its lots; returns the lots taken.
    pub(crate) fn do_move(
        &mut self,
        from: &AccountId,
        to: &AccountId,
        amount: u64,
        now_ms: u64,
    ) -> loyalty::Lots {
        let from_balance = self.balances.entry(*from).or_insert(0);
        *from_balance -= amount;
        let to_balance = self.balances.entry(*to).or_insert(0);
        *to_balance += amount;
        loyalty::move_lots(self, from, to, amount, now_ms)
    }
}

/// Applies one verified op at `ctx` to `state`, or says why it is refused (state unchanged).
///
/// The order of checks is normative (`ledger-spec/rules.md` §3): genesis/chain, op id, expiry,
/// then the op's own checks (authority, fields, accounts, funds, overflow). Before them, the
/// pending awards of the accounts the op touches whose release time has come are released
/// (`ledger-spec/loyalty.md` §3.4); a refused or duplicate op puts them back.
pub fn apply(
    state: &mut State,
    op_ids: &mut impl OpIdIndex,
    ctx: Ctx,
    verified: &VerifiedOp,
) -> Result<Outcome, Rejection> {
    let released = loyalty::release_due(state, &verified.signed_op().envelope, ctx.timestamp_ms);
    match apply_op(state, op_ids, ctx, verified) {
        Ok(Outcome::Applied(mut effects)) => {
            effects.loyalty.holdings |= effects.balances_changed || released.any();
            Ok(Outcome::Applied(effects))
        }
        other => {
            loyalty::undo_release(state, released);
            other
        }
    }
}

fn apply_op(
    state: &mut State,
    op_ids: &mut impl OpIdIndex,
    ctx: Ctx,
    verified: &VerifiedOp,
) -> Result<Outcome, Rejection> {
    let signed = verified.signed_op();
    let env = &signed.envelope;
    let signer = env.signer;

    // 1. Genesis and chain id.
    let issuer = match (&state.info, &env.op) {
        (None, Op::Genesis(_)) if ctx.seq == 0 => signer,
        (None, _) => return Err(Rejection::NotInitialized),
        (Some(_), Op::Genesis(_)) => {
            // The exact genesis op again is an idempotent retry like any other op.
            return match op_ids.lookup(&signer, env.op_id) {
                Some(r) if r.digest == *verified.digest() => Ok(Outcome::Duplicate { seq: r.seq }),
                _ => Err(Rejection::AlreadyInitialized),
            };
        }
        (Some(info), _) => {
            if info.chain_id != env.chain_id {
                return Err(Rejection::WrongChain);
            }
            info.issuer
        }
    };

    // 2. Idempotency.
    if let Some(record) = op_ids.lookup(&signer, env.op_id) {
        if record.digest == *verified.digest() {
            return Ok(Outcome::Duplicate { seq: record.seq });
        }
        return Err(Rejection::DuplicateOpId);
    }

    // 3. Expiry.
    if ctx.timestamp_ms > env.not_after_ms {
        return Err(Rejection::Expired);
    }

    // 4. The op's own checks, then its effects.
    let is_issuer = signer == issuer;
    let effects = match &env.op {
        Op::Genesis(g) => {
            if !valid_chain_id(&env.chain_id) {
                return Err(Rejection::InvalidField("chain_id"));
            }
            if g.currency.len() != 3 || !g.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(Rejection::InvalidField("currency"));
            }
            if g.minor_unit_digits > 4 {
                return Err(Rejection::InvalidField("minor_unit_digits"));
            }
            crypto::check_public_key(&g.checkpoint_key.0)
                .map_err(|_| Rejection::InvalidField("checkpoint_key"))?;
            state.info = Some(LedgerInfo {
                chain_id: env.chain_id.clone(),
                issuer: signer,
                currency: g.currency.clone(),
                minor_unit_digits: g.minor_unit_digits,
                checkpoint_key: g.checkpoint_key,
            });
            Effects {
                genesis: true,
                ..Effects::none(Parties::one(signer))
            }
        }
        Op::RegisterMerchant(r) => {
            if !is_issuer {
                return Err(Rejection::NotAuthorized);
            }
            check_text("name", &r.name, NAME_LEN_MAX)?;
            check_rate("issue_rate", &r.issue_rate)?;
            check_rate("redeem_rate", &r.redeem_rate)?;
            crypto::check_public_key(&r.merchant.0).map_err(|_| Rejection::InvalidAccount)?;
            if state.merchants.contains_key(&r.merchant) {
                return Err(Rejection::MerchantExists);
            }
            if r.merchant == issuer || state.auditors.contains_key(&r.merchant) {
                return Err(Rejection::RoleConflict);
            }
            state.merchants.insert(
                r.merchant,
                MerchantRecord {
                    name: r.name.clone(),
                    issue_rate: r.issue_rate,
                    redeem_rate: r.redeem_rate,
                    status: MerchantStatus::Active,
                    registered_seq: ctx.seq,
                },
            );
            Effects {
                balances: Parties::one(r.merchant),
                merchant: Some(r.merchant),
                ..Effects::none(Parties::two(signer, r.merchant))
            }
        }
        Op::UpdateMerchant(u) => {
            if !is_issuer {
                return Err(Rejection::NotAuthorized);
            }
            if let Some(name) = &u.name {
                check_text("name", name, NAME_LEN_MAX)?;
            }
            if let Some(rate) = &u.issue_rate {
                check_rate("issue_rate", rate)?;
            }
            if let Some(rate) = &u.redeem_rate {
                check_rate("redeem_rate", rate)?;
            }
            let record = state
                .merchants
                .get_mut(&u.merchant)
                .ok_or(Rejection::UnknownMerchant)?;
            if let Some(name) = &u.name {
                record.name = name.clone();
            }
            if let Some(rate) = u.issue_rate {
                record.issue_rate = rate;
            }
            if let Some(rate) = u.redeem_rate {
                record.redeem_rate = rate;
            }
            if let Some(status) = u.status {
                record.status = status;
            }
            Effects {
                balances: Parties::one(u.merchant),
                merchant: Some(u.merchant),
                ..Effects::none(Parties::two(signer, u.merchant))
            }
        }
        Op::RegisterAuditor(r) => {
            if !is_issuer {
                return Err(Rejection::NotAuthorized);
            }
            check_text("name", &r.name, NAME_LEN_MAX)?;
            crypto::check_public_key(&r.auditor.0).map_err(|_| Rejection::InvalidAccount)?;
            if state.auditors.contains_key(&r.auditor) {
                return Err(Rejection::AuditorExists);
            }
            if r.auditor == issuer || state.merchants.contains_key(&r.auditor) {
                return Err(Rejection::RoleConflict);
            }
            state.auditors.insert(
                r.auditor,
                AuditorRecord {
                    name: r.name.clone(),
                    registered_seq: ctx.seq,
                },
            );
            Effects {
                balances: Parties::one(r.auditor),
                auditor: Some(r.auditor),
                ..Effects::none(Parties::two(signer, r.auditor))
            }
        }
        Op::Mint(m) => {
            if !is_issuer {
                return Err(Rejection::NotAuthorized);
            }
            check_bytes("memo", &m.memo)?;
            let amount = check_amount(m.amount)?;
            state.check_new_account(&m.to)?;
            loyalty::check_new_lot(state, ctx, &m.to, m.expires_at_ms)?;
            let supply = state
                .totals
                .supply
                .checked_add(amount)
                .ok_or(Rejection::Overflow)?;
            let minted = state
                .totals
                .minted
                .checked_add(amount)
                .ok_or(Rejection::Overflow)?;
            // Σ balances = supply, so no single balance can overflow if the supply does not.
            state.totals.supply = supply;
            state.totals.minted = minted;
            *state.balances.entry(m.to).or_insert(0) += amount;
            loyalty::credit_minted(state, &m.to, amount, m.expires_at_ms);
            let rate = state.merchants.get(&m.to).map(|r| r.issue_rate);
            if let Some(rate) = rate {
                settlement::record(
                    state,
                    &m.to,
                    ctx.seq,
                    BookEvent::Purchased {
                        points: amount,
                        rate,
                    },
                );
            }
            Effects {
                balances: Parties::one(m.to),
                balances_changed: true,
                books: rate.map(|_| Parties::one(m.to)),
                ..Effects::none(Parties::two(signer, m.to))
            }
        }
        Op::Earn(e) => loyalty::earn(state, ctx, signer, e)?,
        Op::Transfer(t) => {
            state.check_not_suspended(&signer)?;
            check_bytes("memo", &t.memo)?;
            let amount = check_amount(t.amount)?;
            if t.to == signer {
                return Err(Rejection::SelfTransfer);
            }
            state.check_new_account(&t.to)?;
            state.check_move(&signer, &t.to, amount, ctx.timestamp_ms)?;
            state.do_move(&signer, &t.to, amount, ctx.timestamp_ms);
            settlement::record(
                state,
                &signer,
                ctx.seq,
                BookEvent::TransferredOut { points: amount },
            );
            settlement::record(
                state,
                &t.to,
                ctx.seq,
                BookEvent::TransferredIn { points: amount },
            );
            let both = Parties::two(signer, t.to);
            Effects {
                balances: both,
                balances_changed: true,
                books: Some(both),
                ..Effects::none(both)
            }
        }
        Op::Burn(b) => {
            let own = b.from == signer;
            if !own && !is_issuer {
                return Err(Rejection::NotAuthorized);
            }
            if b.reason != BurnReason::Voluntary && !is_issuer {
                return Err(Rejection::NotAuthorized);
            }
            // Only the holder gives points up voluntarily; the issuer burns others' points
            // only for expiry or correction, and says which.
            if !own && b.reason == BurnReason::Voluntary {
                return Err(Rejection::InvalidField("reason"));
            }
            state.check_not_suspended(&signer)?;
            let amount = check_amount(b.amount)?;
            if !state.balances.contains_key(&b.from) {
                return Err(Rejection::UnknownAccount);
            }
            if state.spendable(&b.from, ctx.timestamp_ms) < amount {
                return Err(Rejection::InsufficientFunds);
            }
            let burned = state
                .totals
                .burned
                .checked_add(amount)
                .ok_or(Rejection::Overflow)?;
            state.totals.burned = burned;
            state.totals.supply -= amount;
            *state.balances.entry(b.from).or_insert(0) -= amount;
            loyalty::take_burned(state, &b.from, amount, ctx.timestamp_ms);
            settlement::record(
                state,
                &b.from,
                ctx.seq,
                BookEvent::Burned { points: amount },
            );
            Effects {
                balances: Parties::one(b.from),
                balances_changed: true,
                books: Some(Parties::one(b.from)),
                ..Effects::none(Parties::two(signer, b.from))
            }
        }
        Op::ListItem(op) => mall::list_item(state, ctx, signer, op)?,
        Op::UpdateItem(op) => mall::update_item(state, ctx, signer, op)?,
        Op::Redeem(op) => {
            state.check_not_suspended(&signer)?;
            mall::redeem(state, ctx, signer, op)?
        }
        Op::FulfillOrder(op) => mall::fulfill_order(state, ctx, signer, op)?,
        Op::CancelOrder(op) => mall::cancel_order(state, ctx, signer, op)?,
        Op::Settle(op) => {
            let chain_id = env.chain_id.clone();
            settlement::settle(state, ctx, signer, issuer, &chain_id, op)?
        }
        Op::Expire(op) => loyalty::expire(state, ctx, signer, issuer, op)?,
        Op::ConfirmEarn(op) => loyalty::confirm_earn(state, ctx, signer, op)?,
        Op::ReverseEarn(op) => loyalty::reverse_earn(state, ctx, signer, op)?,
        Op::SetTiers(op) => loyalty::set_tiers(state, ctx, signer, issuer, op)?,
    };

    op_ids.record(
        signer,
        env.op_id,
        OpIdRecord {
            seq: ctx.seq,
            digest: *verified.digest(),
        },
    );
    state.totals.entries = ctx.seq + 1;
    Ok(Outcome::Applied(effects))
}
