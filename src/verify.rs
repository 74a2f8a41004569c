//! Member-side verification: check one's own history against a signed checkpoint without
//! trusting the operator, and catch a rewritten history with consistency proofs from the
//! last checkpoint seen. Implements `ledger-spec/audit.md` §2.
//!
//! The pure checks ([`check_checkpoint`], [`check_proven_entry`], [`check_consistency`],
//! [`balance_effect`]) take data, not a connection, so a merchant's system can embed them;
//! [`verify_wallet`] drives them over HTTP with [`crate::client::Client`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::api::dto::{CheckpointView, ConsistencyProofView, ProvenEntry, ProvenHistory};
use crate::chain;
use crate::checkpoint::{Checkpoint, NoteError, NoteVerifier};
use crate::client::{Client, ClientError};
use crate::codec;
use crate::loyalty::EarnRecord;
use crate::mall::OrderRecord;
use crate::merkle::{self, MerkleError};
use crate::op::{AccountId, Entry, Hash32, Op};
use crate::rules::{self, VerifiedOp};

/// What a member keeps between runs: the pinned checkpoint key and the last checkpoint seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    /// The chain id.
    pub chain_id: String,
    /// The checkpoint verifier key (C2SP form), pinned on first use.
    pub checkpoint_verifier: String,
    /// Size of the last verified checkpoint.
    pub size: u64,
    /// Its root.
    pub root: Hash32,
}

impl TrustState {
    /// Reads a state file; `None` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<TrustState>, VerifyError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| VerifyError::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VerifyError::State(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the state file atomically (write to a temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), VerifyError> {
        let tmp = path.with_extension("tmp");
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| VerifyError::State(e.to_string()))?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| VerifyError::State(format!("{}: {e}", path.display())))
    }
}

/// Why verification failed. Every variant means: do not trust what the server says.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The server could not be asked.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The checkpoint is not signed by the pinned key, or is malformed.
    #[error("checkpoint signature invalid: {0}")]
    Checkpoint(NoteError),
    /// The server's checkpoint key differs from the pinned one.
    #[error("the server's checkpoint key changed: pinned {pinned}, server says {served}")]
    KeyChanged {
        /// Pinned key.
        pinned: String,
        /// Key the server now shows.
        served: String,
    },
    /// The served JSON view disagrees with the signed note.
    #[error("the checkpoint's JSON fields do not match its signed note")]
    CheckpointMismatch,
    /// The new checkpoint is older than the last one seen: history was rolled back.
    #[error("the server's checkpoint (size {served}) is older than one already seen (size {seen}): rollback")]
    Rollback {
        /// Size seen before.
        seen: u64,
        /// Size served now.
        served: u64,
    },
    /// The consistency proof from the last seen checkpoint fails: history was rewritten.
    #[error("the log is not consistent with the checkpoint seen before (size {from} → {to}): history was rewritten or forked ({source})")]
    Inconsistent {
        /// Older size.
        from: u64,
        /// Newer size.
        to: u64,
        /// Why.
        source: MerkleError,
    },
    /// An entry fails a check.
    #[error("entry {seq}: {what}")]
    Entry {
        /// The entry.
        seq: u64,
        /// What failed.
        what: String,
    },
    /// The balance implied by the history differs from the one the server reports.
    #[error("the history adds up to {from_history} points but the server reports {reported}")]
    BalanceMismatch {
        /// Sum of the verified history.
        from_history: i128,
        /// Served balance.
        reported: u64,
    },
    /// The local state file.
    #[error("state file: {0}")]
    State(String),
}

/// Witness requirements of a member: checkpoints must carry at least `require` valid
/// cosignatures from `witnesses` (C2SP tlog-cosignature).
#[derive(Debug, Clone, Default)]
pub struct WitnessPolicy {
    /// Accepted witness keys.
    pub witnesses: Vec<NoteVerifier>,
    /// Cosignatures required.
    pub require: usize,
}

/// Opens a served checkpoint with the pinned key and checks its JSON view matches the note.
pub fn check_checkpoint(
    view: &CheckpointView,
    verifier: &NoteVerifier,
) -> Result<Checkpoint, VerifyError> {
    check_checkpoint_with(view, verifier, &WitnessPolicy::default())
}

/// [`check_checkpoint`] that also enforces a witness policy.
pub fn check_checkpoint_with(
    view: &CheckpointView,
    verifier: &NoteVerifier,
    policy: &WitnessPolicy,
) -> Result<Checkpoint, VerifyError> {
    let (cp, _) =
        Checkpoint::open_cosigned(&view.note, verifier, &policy.witnesses, policy.require)
            .map_err(VerifyError::Checkpoint)?;
    if cp.size != view.size
        || cp.root != view.root.0
        || cp.head != view.head.0
        || cp.origin != view.origin
    {
        return Err(VerifyError::CheckpointMismatch);
    }
    Ok(cp)
}

/// Checks one entry of a proven history: its bytes decode to what is shown, its hash, its
/// signature, that it concerns `account`, and its inclusion proof against `cp`.
pub fn check_proven_entry(
    item: &ProvenEntry,
    account: &AccountId,
    cp: &Checkpoint,
    order: Option<&OrderRecord>,
) -> Result<Entry, VerifyError> {
    check_proven_entry_with(item, account, cp, order, None)
}

/// [`check_proven_entry`] for entries that also need the award they confirm or reverse
/// (`earn`, as served by `GET /v1/earns/{id}`; see [`earn_needed`]).
pub fn check_proven_entry_with(
    item: &ProvenEntry,
    account: &AccountId,
    cp: &Checkpoint,
    order: Option<&OrderRecord>,
    earn: Option<&EarnRecord>,
) -> Result<Entry, VerifyError> {
    let seq = item.entry.seq;
    let bad = |what: String| VerifyError::Entry { seq, what };
    let bytes =
        hex::decode(&item.entry.entry).map_err(|_| bad("entry bytes are not hex".into()))?;
    let entry =
        codec::decode_entry(&bytes).map_err(|e| bad(format!("entry bytes do not decode: {e}")))?;
    if entry.seq != seq
        || entry.signed_op != item.entry.op
        || entry.timestamp_ms != item.entry.timestamp_ms
    {
        return Err(bad(
            "the decoded entry differs from the one displayed".into()
        ));
    }
    if chain::entry_hash(&bytes) != item.entry.entry_hash {
        return Err(bad("entry hash does not match its bytes".into()));
    }
    VerifiedOp::verify(entry.signed_op.clone())
        .map_err(|_| bad("signature does not verify".into()))?;
    if balance_effect_with(&entry, account, order, earn)
        .map_err(bad)?
        .is_none()
    {
        return Err(bad(format!("entry does not concern {account}")));
    }
    let proof: Vec<merkle::Hash> = item.proof.iter().map(|h| h.0).collect();
    merkle::verify_inclusion(&merkle::leaf_hash(&bytes), seq, cp.size, &proof, &cp.root).map_err(
        |e| {
            bad(format!(
                "inclusion proof fails against checkpoint {}: {e}",
                cp.size
            ))
        },
    )?;
    Ok(entry)
}

/// Checks that the tree of `new` extends the tree seen before: a larger size needs a valid
/// consistency proof; the same size needs the same root (a different one is a fork); a
/// smaller size is a rollback.
pub fn check_consistency(
    seen: &TrustState,
    new: &Checkpoint,
    proof: Option<&ConsistencyProofView>,
) -> Result<(), VerifyError> {
    if new.size < seen.size {
        return Err(VerifyError::Rollback {
            seen: seen.size,
            served: new.size,
        });
    }
    if new.size == seen.size {
        if new.root != seen.root.0 {
            return Err(VerifyError::Inconsistent {
                from: seen.size,
                to: new.size,
                source: MerkleError::RootMismatch,
            });
        }
        return Ok(());
    }
    let p: Vec<merkle::Hash> = proof
        .map(|p| p.proof.iter().map(|h| h.0).collect())
        .unwrap_or_default();
    merkle::verify_consistency(seen.size, new.size, &seen.root.0, &new.root, &p).map_err(|source| {
        VerifyError::Inconsistent {
            from: seen.size,
            to: new.size,
            source,
        }
    })
}

/// How an entry changes `account`'s balance: `Ok(Some(delta))` if the account is a party to
/// it (delta may be 0), `Ok(None)` if it does not concern the account.
///
/// Mall entries need the order they create or close (`order`, as served by
/// `GET /v1/mall/orders/{id}`): the op itself carries only the maximum unit price. The order
/// is checked against the signed op (member, quantity, price within the signed maximum) so
/// the server can only attest what the member's own signature allows; the exact charge is
/// established by auditors who replay the rules.
pub fn balance_effect(
    entry: &Entry,
    account: &AccountId,
    order: Option<&OrderRecord>,
) -> Result<Option<i128>, String> {
    balance_effect_with(entry, account, order, None)
}

/// [`balance_effect`] with the award a ConfirmEarn or ReverseEarn entry concerns (`earn`, as
/// served by `GET /v1/earns/{id}`): the op names only the earn id, and a reversal's amount
/// depends on what the member still held. The record is checked against the signed op
/// (the signer made the award, this entry confirmed or reversed it, returned + unrecovered
/// = the award); the exact amounts are established by auditors who replay the rules.
/// Pending awards count in the balance from their Earn (`ledger-spec/loyalty.md` §3).
pub fn balance_effect_with(
    entry: &Entry,
    account: &AccountId,
    order: Option<&OrderRecord>,
    earn: Option<&EarnRecord>,
) -> Result<Option<i128>, String> {
    let env = &entry.signed_op.envelope;
    let signer = env.signer;
    let me = |a: &AccountId| a == account;
    let need_order = |id: u64| -> Result<&OrderRecord, String> {
        match order {
            Some(o) if o.order_id == id => Ok(o),
            _ => Err(format!("order {id} is needed to verify this entry")),
        }
    };
    let need_earn = |id: u64| -> Result<&EarnRecord, String> {
        match earn {
            Some(e) if e.earn_id == id && e.merchant == signer => Ok(e),
            Some(_) => Err(format!("the served earn {id} does not match the signed op")),
            _ => Err(format!("earn {id} is needed to verify this entry")),
        }
    };
    Ok(match &env.op {
        Op::Genesis(g) => (me(&signer) || me(&g.checkpoint_key)).then_some(0),
        Op::RegisterMerchant(r) => (me(&signer) || me(&r.merchant)).then_some(0),
        Op::UpdateMerchant(u) => (me(&signer) || me(&u.merchant)).then_some(0),
        Op::RegisterAuditor(r) => (me(&signer) || me(&r.auditor)).then_some(0),
        Op::Mint(m) => {
            if me(&m.to) {
                Some(m.amount.0 as i128)
            } else {
                me(&signer).then_some(0)
            }
        }
        Op::Earn(e) => {
            if me(&e.member) {
                Some(e.amount.0 as i128)
            } else {
                me(&signer).then_some(-(e.amount.0 as i128))
            }
        }
        Op::Transfer(t) => {
            if me(&t.to) {
                Some(t.amount.0 as i128)
            } else {
                me(&signer).then_some(-(t.amount.0 as i128))
            }
        }
        Op::Burn(b) => {
            if me(&b.from) {
                Some(-(b.amount.0 as i128))
            } else {
                me(&signer).then_some(0)
            }
        }
        Op::ListItem(_) | Op::UpdateItem(_) => me(&signer).then_some(0),
        Op::Redeem(r) => {
            let o = need_order(entry.seq)?;
            let bound = u128::from(r.quantity) * u128::from(r.max_unit_price.0);
            if o.member != signer
                || o.item_id != r.item_id
                || o.quantity != r.quantity
                || o.unit_price > r.max_unit_price
                || u128::from(o.total.0) > bound
            {
                return Err("the served order does not match the signed redemption".into());
            }
            if me(&signer) {
                Some(-(o.total.0 as i128))
            } else {
                me(&o.merchant).then_some(o.total.0 as i128)
            }
        }
        Op::FulfillOrder(f) => {
            let o = need_order(f.order_id)?;
            (me(&o.member) || me(&o.merchant)).then_some(0)
        }
        Op::CancelOrder(c) => {
            let o = need_order(c.order_id)?;
            if me(&o.member) {
                Some(o.total.0 as i128)
            } else {
                me(&o.merchant).then_some(-(o.total.0 as i128))
            }
        }
        Op::Settle(st) => {
            if me(&st.merchant) {
                Some(-(st.totals.points_to_burn as i128))
            } else {
                me(&signer).then_some(0)
            }
        }
        Op::Expire(x) => {
            if me(&x.account) {
                Some(-(x.amount.0 as i128))
            } else {
                me(&signer).then_some(0)
            }
        }
        Op::SetTiers(_) => me(&signer).then_some(0),
        Op::ConfirmEarn(c) => {
            let e = need_earn(c.earn_id)?;
            if e.confirmed_seq != Some(entry.seq) {
                return Err("the served earn was not confirmed by this entry".into());
            }
            (me(&e.member) || me(&signer)).then_some(0)
        }
        Op::ReverseEarn(r) => {
            let e = need_earn(r.earn_id)?;
            if e.reversed_seq != Some(entry.seq)
                || e.returned.0.checked_add(e.unrecovered.0) != Some(e.amount.0)
            {
                return Err("the served earn does not match the signed reversal".into());
            }
            if me(&e.member) {
                Some(-(e.returned.0 as i128))
            } else {
                me(&signer).then_some(e.returned.0 as i128)
            }
        }
    })
}

/// The award a ConfirmEarn or ReverseEarn entry concerns, whose record
/// [`balance_effect_with`] needs.
pub fn earn_needed(entry: &Entry) -> Option<u64> {
    match &entry.signed_op.envelope.op {
        Op::ConfirmEarn(c) => Some(c.earn_id),
        Op::ReverseEarn(r) => Some(r.earn_id),
        _ => None,
    }
}

/// The order an entry creates or closes, if it is a mall entry that needs one.
pub fn order_needed(entry: &Entry) -> Option<u64> {
    match &entry.signed_op.envelope.op {
        Op::Redeem(_) => Some(entry.seq),
        Op::FulfillOrder(f) => Some(f.order_id),
        Op::CancelOrder(c) => Some(c.order_id),
        _ => None,
    }
}

fn order_needed_for(item: &ProvenEntry) -> Result<Option<u64>, VerifyError> {
    let e = Entry {
        seq: item.entry.seq,
        prev_hash: item.entry.prev_hash,
        timestamp_ms: item.entry.timestamp_ms,
        signed_op: item.entry.op.clone(),
    };
    Ok(order_needed(&e))
}

fn earn_needed_for(item: &ProvenEntry) -> Option<u64> {
    match &item.entry.op.envelope.op {
        Op::ConfirmEarn(c) => Some(c.earn_id),
        Op::ReverseEarn(r) => Some(r.earn_id),
        _ => None,
    }
}

/// What [`verify_wallet`] established.
#[derive(Debug, Clone, Serialize)]
pub struct WalletVerification {
    /// The account.
    pub account: AccountId,
    /// Entries verified.
    pub entries: u64,
    /// The checkpoint they were verified against.
    pub checkpoint_size: u64,
    /// Its root.
    pub checkpoint_root: Hash32,
    /// The checkpoint seen before, if any, and proven consistent with this one.
    pub consistent_with: Option<u64>,
    /// The balance the verified history adds up to (equal to the served balance).
    pub balance: u64,
    /// Whether the checkpoint key was pinned in this run (first use).
    pub pinned_now: bool,
}

/// Verifies `account`'s whole history on `client`'s server, against the latest checkpoint,
/// pinning the checkpoint key on first use and proving consistency with `trust` when given.
/// Returns the report and the new trust state to keep.
pub async fn verify_wallet(
    client: &Client,
    account: &AccountId,
    trust: Option<TrustState>,
) -> Result<(WalletVerification, TrustState), VerifyError> {
    verify_wallet_with(client, account, trust, &WitnessPolicy::default()).await
}

/// [`verify_wallet`] with a witness policy: the checkpoint verified against is the latest
/// stored one, which must carry the required cosignatures.
pub async fn verify_wallet_with(
    client: &Client,
    account: &AccountId,
    trust: Option<TrustState>,
    policy: &WitnessPolicy,
) -> Result<(WalletVerification, TrustState), VerifyError> {
    let info = client.info().await?;
    let pinned_now = trust.is_none();
    let vkey = match &trust {
        Some(t) => {
            if t.checkpoint_verifier != info.checkpoint_verifier || t.chain_id != info.chain_id {
                return Err(VerifyError::KeyChanged {
                    pinned: t.checkpoint_verifier.clone(),
                    served: info.checkpoint_verifier,
                });
            }
            t.checkpoint_verifier.clone()
        }
        None => info.checkpoint_verifier.clone(),
    };
    let verifier = NoteVerifier::parse(&vkey).map_err(VerifyError::Checkpoint)?;
    let latest: CheckpointView = if policy.require > 0 {
        client.get_json_accept("/v1/checkpoint").await?
    } else {
        client.post_empty("/v1/checkpoint").await?
    };
    let cp = check_checkpoint_with(&latest, &verifier, policy)?;
    let mut consistent_with = None;
    if let Some(seen) = &trust {
        let proof: Option<ConsistencyProofView> = if cp.size > seen.size {
            Some(
                client
                    .get_json(&format!(
                        "/v1/proofs/consistency?from={}&to={}",
                        seen.size, cp.size
                    ))
                    .await?,
            )
        } else {
            None
        };
        check_consistency(seen, &cp, proof.as_ref())?;
        consistent_with = Some(seen.size);
    }
    let mut after: Option<u64> = None;
    let mut entries = 0u64;
    let mut balance: i128 = 0;
    loop {
        let mut path = format!(
            "/v1/wallets/{account}/history?proofs=true&size={}&limit=500",
            cp.size
        );
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        let page: ProvenHistory = client.get_json(&path).await?;
        let page_cp = check_checkpoint_with(&page.checkpoint, &verifier, policy)?;
        if page_cp != cp {
            return Err(VerifyError::CheckpointMismatch);
        }
        for item in &page.items {
            if after.is_some_and(|a| item.entry.seq <= a) {
                return Err(VerifyError::Entry {
                    seq: item.entry.seq,
                    what: "history is not in increasing seq order".into(),
                });
            }
            let order = match order_needed_for(item)? {
                Some(id) => Some(
                    client
                        .get_json::<OrderRecord>(&format!("/v1/mall/orders/{id}"))
                        .await?,
                ),
                None => None,
            };
            let earn = match earn_needed_for(item) {
                Some(id) => Some(
                    client
                        .get_json::<EarnRecord>(&format!("/v1/earns/{id}"))
                        .await?,
                ),
                None => None,
            };
            let entry = check_proven_entry_with(item, account, &cp, order.as_ref(), earn.as_ref())?;
            balance += balance_effect_with(&entry, account, order.as_ref(), earn.as_ref())
                .map_err(|what| VerifyError::Entry {
                    seq: entry.seq,
                    what,
                })?
                .unwrap_or(0);
            entries += 1;
            after = Some(item.entry.seq);
        }
        if page.next_after.is_none() || page.items.is_empty() {
            break;
        }
    }
    // The served balance may include entries after the checkpoint; compare only when the
    // checkpoint covers the whole log.
    let reported = match client.wallet(account).await {
        Ok(w) => Some(w.balance),
        Err(ClientError::Problem(p)) if p.code == "unknown_account" => Some(0),
        Err(e) => return Err(e.into()),
    };
    let tip = client.info().await?.size;
    if let Some(reported) = reported {
        if tip == cp.size && balance != reported as i128 {
            return Err(VerifyError::BalanceMismatch {
                from_history: balance,
                reported,
            });
        }
    }
    let new_trust = TrustState {
        chain_id: info.chain_id,
        checkpoint_verifier: vkey,
        size: cp.size,
        root: Hash32(cp.root),
    };
    Ok((
        WalletVerification {
            account: *account,
            entries,
            checkpoint_size: cp.size,
            checkpoint_root: Hash32(cp.root),
            consistent_with,
            balance: u64::try_from(balance.max(0)).unwrap_or(u64::MAX),
            pinned_now,
        },
        new_trust,
    ))
}

/// Re-exported for callers who check ops themselves.
pub use rules::Rejection;
