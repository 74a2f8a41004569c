//! The loyalty records in the derived tree (`ledger-spec/storage.md`, `ledger-spec/loyalty.md`
//! §6): each account's holdings (lots and pending awards), award records with their member
//! and merchant indexes, the lots of open orders, and the tier configuration. Written from
//! [`LoyaltyEffects`](crate::loyalty::LoyaltyEffects) by `stage_effects`, read back by
//! `load_state`, so restart and `points reindex` rebuild them like every derived record.

use std::collections::HashMap;

use super::{
    account_at, decode_rec, key_account, key_account_id, key_id, read_u64, Store, StoreError,
    K_TIERS, P_EARN, P_HOLDINGS, P_MEMBER_EARNS, P_MERCHANT_EARNS, P_ORDER_LOTS,
};
use crate::codec;
use crate::loyalty::{EarnRecord, Holdings, Lots, LoyaltyState, TierConfig};
use crate::op::{AccountId, Entry};
use crate::rules::{Effects, State};

/// Stages the loyalty writes of one applied entry.
pub(super) fn stage(batch: &mut sled::Batch, state: &State, _entry: &Entry, effects: &Effects) {
    let l = effects.loyalty;
    let loyalty = state.loyalty();
    if l.holdings {
        let accounts = effects
            .parties
            .as_slice()
            .iter()
            .chain(effects.balances.as_slice());
        for account in accounts {
            let key = key_account(P_HOLDINGS, account);
            match loyalty.holdings(account) {
                Some(h) => batch.insert(&key[..], codec::encode_record(h)),
                None => batch.remove(&key[..]),
            }
        }
    }
    if let Some(id) = l.earn {
        if let Some(e) = loyalty.earn(id) {
            batch.insert(&key_id(P_EARN, id)[..], codec::encode_record(e));
            batch.insert(&key_account_id(P_MEMBER_EARNS, &e.member, id)[..], &[][..]);
            batch.insert(
                &key_account_id(P_MERCHANT_EARNS, &e.merchant, id)[..],
                &[][..],
            );
        }
    }
    if let Some(id) = l.order_lots {
        let key = key_id(P_ORDER_LOTS, id);
        match loyalty.order_lots(id) {
            Some(lots) => batch.insert(&key[..], codec::encode_record(lots)),
            None => batch.remove(&key[..]),
        }
    }
    if l.tiers {
        if let Some(t) = loyalty.tiers() {
            batch.insert(K_TIERS, codec::encode_record(t));
        }
    }
}

/// Loads the loyalty state from the derived tree.
pub(super) fn load(store: &Store) -> Result<LoyaltyState, StoreError> {
    let mut holdings: HashMap<AccountId, Holdings> = HashMap::new();
    for item in store.derived.scan_prefix([P_HOLDINGS]) {
        let (k, v) = item?;
        holdings.insert(account_at(&k, 1), decode_rec(&v, "holdings")?);
    }
    let mut earns: HashMap<u64, EarnRecord> = HashMap::new();
    for item in store.derived.scan_prefix([P_EARN]) {
        let (k, v) = item?;
        earns.insert(read_u64(&k[1..], "earn key")?, decode_rec(&v, "earn")?);
    }
    let mut order_lots: HashMap<u64, Lots> = HashMap::new();
    for item in store.derived.scan_prefix([P_ORDER_LOTS]) {
        let (k, v) = item?;
        order_lots.insert(
            read_u64(&k[1..], "order lots key")?,
            decode_rec(&v, "order lots")?,
        );
    }
    let tiers = store.tier_config()?;
    Ok(LoyaltyState::from_parts(holdings, earns, order_lots, tiers))
}

impl Store {
    /// An account's lots and pending awards as last written (pending awards whose release
    /// time has passed are released at the account's next entry; see
    /// [`crate::loyalty::lots_view`]).
    pub fn holdings(&self, account: &AccountId) -> Result<Option<Holdings>, StoreError> {
        self.derived
            .get(key_account(P_HOLDINGS, account))?
            .map(|v| decode_rec(&v, "holdings"))
            .transpose()
    }

    /// An award.
    pub fn earn(&self, earn_id: u64) -> Result<Option<EarnRecord>, StoreError> {
        self.derived
            .get(key_id(P_EARN, earn_id))?
            .map(|v| decode_rec(&v, "earn"))
            .transpose()
    }

    /// Awards of a member (or, `by_merchant`, made by a merchant) with id > `after`, in id
    /// order, at most `limit`; and whether there are more.
    pub fn earns_of(
        &self,
        account: &AccountId,
        by_merchant: bool,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<EarnRecord>, bool), StoreError> {
        let prefix = if by_merchant {
            P_MERCHANT_EARNS
        } else {
            P_MEMBER_EARNS
        };
        let mut out = Vec::new();
        let Some(start) = after.map_or(Some(0), |a| a.checked_add(1)) else {
            return Ok((out, false));
        };
        let range =
            key_account_id(prefix, account, start)..=key_account_id(prefix, account, u64::MAX);
        for r in self.derived.range(range) {
            let (k, _) = r?;
            if out.len() == limit {
                return Ok((out, true));
            }
            if let Some(e) = self.earn(read_u64(&k[33..], "earn index")?)? {
                out.push(e);
            }
        }
        Ok((out, false))
    }

    /// Every award of a member (for its tier: O(its awards)).
    pub fn all_earns_of(&self, member: &AccountId) -> Result<Vec<EarnRecord>, StoreError> {
        Ok(self.earns_of(member, false, None, usize::MAX)?.0)
    }

    /// The tier configuration, once set.
    pub fn tier_config(&self) -> Result<Option<TierConfig>, StoreError> {
        self.derived
            .get(K_TIERS)?
            .map(|v| decode_rec(&v, "tiers"))
            .transpose()
    }
}
