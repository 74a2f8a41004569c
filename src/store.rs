//! Storage in sled and the single-writer sequencer. Implements `ledger-spec/storage.md`.
//!
//! Trees:
//! - `entries`: seq (u64 big-endian) → canonical entry bytes. The only authoritative data,
//!   and the only tree made durable (flush + fdatasync) before an op is acknowledged.
//! - `derived`: everything that can be rebuilt by replaying `entries` — balances, merchants,
//!   auditors, op ids, per-account history, Merkle nodes, totals and the applied head — in one
//!   tree under one-byte key prefixes, so each group's derived writes land in one atomic sled
//!   batch together with the marker saying how far they go.
//! - `checkpoints`: tree size (u64 big-endian) → signed checkpoint note.
//!
//! Crash recovery: on open, load the derived state, then replay every entry past the applied
//! marker through the same rules (`rules::apply`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::chain::{self, Head, LinkError};
use crate::codec::{self, CodecError};
use crate::mall::{ItemRecord, OrderRecord};
use crate::merkle::{self, Frontier, MerkleError, NodeSource};
use crate::op::*;
use crate::rules::{
    self, AuditorRecord, Ctx, Effects, LedgerInfo, MerchantRecord, OpIdIndex, OpIdRecord, Outcome,
    Rejection, State, StateParts, Totals, VerifiedOp,
};
use crate::settlement::{BookEvent, BookHeader, MerchantBook, SettlementRecord};

mod loyalty;

const P_BALANCE: u8 = b'A';
const P_MERCHANT: u8 = b'M';
const P_AUDITOR: u8 = b'U';
const P_OPID: u8 = b'O';
const P_HISTORY: u8 = b'H';
const P_NODE: u8 = b'N';
const P_ITEM: u8 = b'I';
const P_ORDER: u8 = b'R';
const P_HELD: u8 = b'Q';
const P_BOOK: u8 = b'K';
const P_BOOK_EVENT: u8 = b'E';
const P_SETTLEMENT: u8 = b'S';
const P_MERCHANT_ITEMS: u8 = b'i';
const P_MEMBER_ORDERS: u8 = b'w';
const P_MERCHANT_ORDERS: u8 = b'x';
const P_MERCHANT_SETTLEMENTS: u8 = b's';
// Loyalty records (`store/loyalty.rs`).
const P_HOLDINGS: u8 = b'l';
const P_EARN: u8 = b'e';
const P_MEMBER_EARNS: u8 = b'j';
const P_MERCHANT_EARNS: u8 = b'k';
const P_ORDER_LOTS: u8 = b'o';
const K_TIERS: &[u8] = b"Gtiers";
const K_INFO: &[u8] = b"Ginfo";
const K_TOTALS: &[u8] = b"Gtotals";
const K_HEAD: &[u8] = b"Ghead";

/// Entries replayed per derived batch during recovery and reindex.
const REPLAY_CHUNK_ENTRIES: usize = 8192;
/// Entries whose links are re-checked on every open.
const TAIL_CHECK_ENTRIES: u64 = 64;
/// Free space a write must find beyond its own bytes: sled may pad out its current log
/// buffer and rewrite whole tree nodes, and the derived writes of the previous group reach
/// the file with the next flush.
const SPACE_HEADROOM_BYTES: u64 = 128 * 1024;
/// Disk bytes assumed per canonical byte of a write (entry, derived records, sled framing).
const SPACE_PROBE_FACTOR: u64 = 6;
/// Name of the free-space probe file in the database folder (empty between probes).
const SPACE_PROBE_FILE: &str = "space.probe";

/// Tunables of the store, with documented defaults.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// sled page cache, in bytes.
    pub cache_bytes: u64,
    /// Most ops taken into one group commit.
    pub group_ops_max: usize,
    /// Requests that may wait for the sequencer before submitters are made to wait.
    pub queue_requests_max: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_bytes: 256 * 1024 * 1024,
            group_ops_max: 8192,
            queue_requests_max: 4096,
        }
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the store.
    #[error("the ledger at {0} is in use by another process (only one `points serve` may open a data folder)")]
    Locked(PathBuf),
    /// sled failed.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode.
    #[error("corrupt record {what}: {source}")]
    Decode {
        /// Which record.
        what: String,
        /// Why.
        source: CodecError,
    },
    /// The log itself is damaged.
    #[error("the log is corrupt at seq {seq}: {detail}. Stop the service, run `points audit --data DIR` to see the damage, and restore the data folder from a backup or a peer's export")]
    Corrupt {
        /// First bad seq.
        seq: u64,
        /// What is wrong.
        detail: String,
    },
    /// A Merkle node is missing or inconsistent.
    #[error("merkle tree: {0}")]
    Merkle(#[from] MerkleError),
    /// The disk holding the ledger cannot take the next write; nothing was written.
    #[error("the disk holding {path} has less than {bytes} bytes free ({source}); writes are refused until space is freed")]
    NoSpace {
        /// The ledger folder.
        path: PathBuf,
        /// Bytes the write needed free.
        bytes: u64,
        /// What the probe write got.
        source: std::io::Error,
    },
    /// An earlier write failed and the database could not be reloaded; this process refuses
    /// writes until it is restarted (reads still work).
    #[error("the store refuses writes until the service is restarted: {0}")]
    Failed(String),
}

/// What an accepted op gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// Seq of the entry holding the op.
    pub seq: u64,
    /// Hash of that entry.
    pub entry_hash: Hash32,
    /// Its timestamp.
    pub timestamp_ms: u64,
    /// The op.
    #[serde(rename = "op")]
    pub signed_op: SignedOp,
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

fn key_account(prefix: u8, account: &AccountId) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = prefix;
    k[1..].copy_from_slice(&account.0);
    k
}

fn key_history(account: &AccountId, seq: u64) -> [u8; 41] {
    let mut k = [0u8; 41];
    k[0] = P_HISTORY;
    k[1..33].copy_from_slice(&account.0);
    k[33..].copy_from_slice(&be(seq));
    k
}

fn key_opid(signer: &AccountId, op_id: OpId) -> [u8; 49] {
    let mut k = [0u8; 49];
    k[0] = P_OPID;
    k[1..33].copy_from_slice(&signer.0);
    k[33..].copy_from_slice(&op_id.0.to_be_bytes());
    k
}

fn key_id(prefix: u8, id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&be(id));
    k
}

fn key_account_id(prefix: u8, account: &AccountId, id: u64) -> [u8; 41] {
    let mut k = [0u8; 41];
    k[0] = prefix;
    k[1..33].copy_from_slice(&account.0);
    k[33..].copy_from_slice(&be(id));
    k
}

fn decode_rec<T: bincode::Decode<()>>(v: &[u8], what: &str) -> Result<T, StoreError> {
    codec::decode_record(v).map_err(|source| StoreError::Decode {
        what: what.to_string(),
        source,
    })
}

fn account_at(k: &[u8], at: usize) -> AccountId {
    let mut id = [0u8; 32];
    id.copy_from_slice(&k[at..at + 32]);
    AccountId(id)
}

fn key_node(level: u8, index: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = P_NODE;
    k[1] = level;
    k[2..].copy_from_slice(&be(index));
    k
}

fn head_bytes(head: &Head) -> [u8; 48] {
    let mut v = [0u8; 48];
    v[..8].copy_from_slice(&be(head.next_seq));
    v[8..40].copy_from_slice(&head.hash.0);
    v[40..].copy_from_slice(&be(head.timestamp_ms));
    v
}

fn read_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Decode {
        what: what.to_string(),
        source: CodecError::Malformed(format!("expected 8 bytes, found {}", bytes.len())),
    })?;
    Ok(u64::from_be_bytes(arr))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The sled database of one ledger. Cheap to share: reads go straight to sled and never wait
/// for the writer.
pub struct Store {
    db: sled::Db,
    entries: sled::Tree,
    derived: sled::Tree,
    checkpoints: sled::Tree,
    db_file: File,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the sled database in `path`.
    pub fn open(path: &Path, config: &StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(path)?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(config.cache_bytes)
            .mode(sled::Mode::HighThroughput)
            // Every write reaches the file inside `commit_group` or `put_checkpoint`, after
            // their free-space probe: a failed write poisons a sled database until it is
            // reopened, so none may happen behind the writer's back (durability never relied
            // on the timer: `sync` is explicit).
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::Locked(path.to_path_buf())
                }
                other => StoreError::Sled(other),
            })?;
        let entries = db.open_tree("entries")?;
        let derived = db.open_tree("derived")?;
        let checkpoints = db.open_tree("checkpoints")?;
        let db_file = File::open(path.join("db"))?;
        Ok(Store {
            db,
            entries,
            derived,
            checkpoints,
            db_file,
            path: path.to_path_buf(),
        })
    }

    /// The folder of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything written so far durable: sled's flush (which writes but does not
    /// fsync), then an fdatasync of the database file.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.db_file.sync_data()?;
        Ok(())
    }

    /// Number of entries in the log.
    pub fn entry_count(&self) -> Result<u64, StoreError> {
        match self.entries.last()? {
            None => Ok(0),
            Some((k, _)) => Ok(read_u64(&k, "entries key")? + 1),
        }
    }

    /// Canonical bytes of entry `seq`.
    pub fn entry_bytes(&self, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.entries.get(be(seq))?)
    }

    /// Entry `seq`, decoded.
    pub fn entry(&self, seq: u64) -> Result<Option<Entry>, StoreError> {
        match self.entry_bytes(seq)? {
            None => Ok(None),
            Some(bytes) => {
                codec::decode_entry(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Decode {
                        what: format!("entry {seq}"),
                        source,
                    })
            }
        }
    }

    /// The receipt of entry `seq`.
    pub fn receipt(&self, seq: u64) -> Result<Option<Receipt>, StoreError> {
        let Some(bytes) = self.entry_bytes(seq)? else {
            return Ok(None);
        };
        let entry = codec::decode_entry(&bytes).map_err(|source| StoreError::Decode {
            what: format!("entry {seq}"),
            source,
        })?;
        Ok(Some(Receipt {
            seq,
            entry_hash: chain::entry_hash(&bytes),
            timestamp_ms: entry.timestamp_ms,
            signed_op: entry.signed_op,
        }))
    }

    /// Up to `limit` receipts with seq > `after` (or from 0).
    pub fn receipts_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Receipt>, StoreError> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.entries.range(be(start)..).take(limit) {
            let (k, _) = item?;
            let seq = read_u64(&k, "entries key")?;
            if let Some(r) = self.receipt(seq)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The ledger identity (after genesis).
    pub fn info(&self) -> Result<Option<LedgerInfo>, StoreError> {
        self.derived
            .get(K_INFO)?
            .map(|v| decode_rec(&v, "ledger info"))
            .transpose()
    }

    /// Totals as of the last applied group.
    pub fn totals(&self) -> Result<Totals, StoreError> {
        Ok(self
            .derived
            .get(K_TOTALS)?
            .map(|v| decode_rec(&v, "totals"))
            .transpose()?
            .unwrap_or_default())
    }

    /// The head as of the last applied group.
    pub fn applied_head(&self) -> Result<Head, StoreError> {
        let Some(v) = self.derived.get(K_HEAD)? else {
            return Ok(Head::EMPTY);
        };
        if v.len() != 48 {
            return Err(StoreError::Decode {
                what: "head".into(),
                source: CodecError::Malformed("expected 48 bytes".into()),
            });
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&v[8..40]);
        Ok(Head {
            next_seq: read_u64(&v[..8], "head")?,
            hash: Hash32(hash),
            timestamp_ms: read_u64(&v[40..], "head")?,
        })
    }

    /// Accounts that ever held points: a scan of the balance index, O(accounts) (metrics).
    pub fn account_count(&self) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for key in self.derived.scan_prefix([P_BALANCE]).keys() {
            key?;
            n += 1;
        }
        Ok(n)
    }

    /// An account's balance, `None` if it never held points.
    pub fn balance(&self, account: &AccountId) -> Result<Option<u64>, StoreError> {
        self.derived
            .get(key_account(P_BALANCE, account))?
            .map(|v| read_u64(&v, "balance"))
            .transpose()
    }

    /// A merchant's record.
    pub fn merchant(&self, account: &AccountId) -> Result<Option<MerchantRecord>, StoreError> {
        self.derived
            .get(key_account(P_MERCHANT, account))?
            .map(|v| decode_rec(&v, &format!("merchant {account}")))
            .transpose()
    }

    /// An auditor's record.
    pub fn auditor(&self, account: &AccountId) -> Result<Option<AuditorRecord>, StoreError> {
        self.derived
            .get(key_account(P_AUDITOR, account))?
            .map(|v| decode_rec(&v, &format!("auditor {account}")))
            .transpose()
    }

    /// Every registered merchant.
    pub fn merchants(&self) -> Result<Vec<(AccountId, MerchantRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.derived.scan_prefix([P_MERCHANT]) {
            let (k, v) = item?;
            out.push((account_at(&k, 1), decode_rec(&v, "merchant")?));
        }
        Ok(out)
    }

    /// Seqs of the entries in `account`'s history with seq > `after`, at most `limit`.
    pub fn history(
        &self,
        account: &AccountId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let start = key_history(account, after.map_or(0, |a| a.saturating_add(1)));
        let end = key_history(account, u64::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        if after == Some(u64::MAX) {
            return Ok(out);
        }
        for item in self.derived.range(start..=end).take(limit) {
            let (k, _) = item?;
            out.push(read_u64(&k[33..], "history key")?);
        }
        Ok(out)
    }

    /// The latest stored checkpoint note and its tree size.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        match self.checkpoints.last()? {
            None => Ok(None),
            Some((k, v)) => Ok(Some((
                read_u64(&k, "checkpoint key")?,
                String::from_utf8_lossy(&v).into_owned(),
            ))),
        }
    }

    /// The checkpoint note for tree size `size`.
    pub fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .checkpoints
            .get(be(size))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The first checkpoint whose size is at least `size`.
    pub fn checkpoint_at_least(&self, size: u64) -> Result<Option<(u64, String)>, StoreError> {
        match self.checkpoints.range(be(size)..).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                Ok(Some((
                    read_u64(&k, "checkpoint key")?,
                    String::from_utf8_lossy(&v).into_owned(),
                )))
            }
        }
    }

    /// Checks that the ledger's disk can take a write of about `bytes` (plus headroom for
    /// sled's own overhead) by writing that much to a probe file and truncating it again.
    /// A write that fails inside sled poisons the database until it is reopened, so every
    /// write is preceded by this probe and refused cleanly instead (`NoSpace`).
    fn check_space(&self, bytes: u64) -> Result<(), StoreError> {
        let total = bytes
            .saturating_mul(SPACE_PROBE_FACTOR)
            .saturating_add(SPACE_HEADROOM_BYTES);
        let probe = self.path.join(SPACE_PROBE_FILE);
        let result = (|| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&probe)?;
            let zeros = [0u8; 64 * 1024];
            let mut left = total;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            f.set_len(0)
        })();
        result.map_err(|source| {
            // Give the space back even when the probe stopped half-way.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(&probe)
                .and_then(|f| f.set_len(0));
            StoreError::NoSpace {
                path: self.path.clone(),
                bytes: total,
                source,
            }
        })
    }

    /// Test hook for corruption tests: overwrites the stored bytes of entry `seq` with
    /// `bytes`, unchecked, and makes that durable. Never called by the ledger itself.
    #[doc(hidden)]
    pub fn raw_put_entry(&self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.entries.insert(be(seq), bytes)?;
        self.sync()
    }

    /// Test hook for corruption tests: deletes entry `seq`, unchecked, and makes that
    /// durable. Never called by the ledger itself.
    #[doc(hidden)]
    pub fn raw_remove_entry(&self, seq: u64) -> Result<(), StoreError> {
        self.entries.remove(be(seq))?;
        self.sync()
    }

    /// Stores a signed checkpoint note (durably).
    pub fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.check_space(note.len() as u64)?;
        self.checkpoints.insert(be(size), note.as_bytes())?;
        self.sync()
    }

    /// Every checkpoint, in size order.
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<(u64, String), StoreError>> + '_ {
        self.checkpoints.iter().map(|item| {
            let (k, v) = item?;
            Ok((
                read_u64(&k, "checkpoint key")?,
                String::from_utf8_lossy(&v).into_owned(),
            ))
        })
    }

    /// Removes all derived state (for `points reindex`); entries and checkpoints stay.
    pub fn clear_derived(&self) -> Result<(), StoreError> {
        self.derived.clear()?;
        self.sync()
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn load_state(&self) -> Result<State, StoreError> {
        let mut p = StateParts {
            info: self.info()?,
            totals: self.totals()?,
            ..StateParts::default()
        };
        for item in self.derived.scan_prefix([P_BALANCE]) {
            let (k, v) = item?;
            p.balances
                .insert(account_at(&k, 1), read_u64(&v, "balance")?);
        }
        p.merchants = self.merchants()?.into_iter().collect();
        for item in self.derived.scan_prefix([P_AUDITOR]) {
            let (k, v) = item?;
            p.auditors
                .insert(account_at(&k, 1), decode_rec(&v, "auditor")?);
        }
        for item in self.derived.scan_prefix([P_ITEM]) {
            let (k, v) = item?;
            p.items
                .insert(read_u64(&k[1..], "item key")?, decode_rec(&v, "item")?);
        }
        for item in self.derived.scan_prefix([P_ORDER]) {
            let (k, v) = item?;
            p.orders
                .insert(read_u64(&k[1..], "order key")?, decode_rec(&v, "order")?);
        }
        for item in self.derived.scan_prefix([P_HELD]) {
            let (k, v) = item?;
            p.held.insert(
                (account_at(&k, 1), read_u64(&k[33..], "held key")?),
                read_u64(&v, "held")?,
            );
        }
        for item in self.derived.scan_prefix([P_BOOK]) {
            let (k, v) = item?;
            let header: BookHeader = decode_rec(&v, "book")?;
            let book = p.books.entry(account_at(&k, 1)).or_default();
            book.settled_to = header.settled_to;
            book.settlements = header.settlements;
        }
        for item in self.derived.scan_prefix([P_BOOK_EVENT]) {
            let (k, v) = item?;
            let event: BookEvent = decode_rec(&v, "book event")?;
            p.books
                .entry(account_at(&k, 1))
                .or_default()
                .events
                .push((read_u64(&k[33..], "book event key")?, event));
        }
        for item in self.derived.scan_prefix([P_SETTLEMENT]) {
            let (k, v) = item?;
            p.settlements.insert(
                read_u64(&k[1..], "settlement key")?,
                decode_rec(&v, "settlement")?,
            );
        }
        p.loyalty = loyalty::load(self)?;
        Ok(State::from_parts(p))
    }

    /// Replays entries `0..=seq` into a fresh state (the log is trusted: it is this store's
    /// own, checked when appended). Used for reports as of a past seq.
    pub fn replay_to(&self, seq: u64) -> Result<State, StoreError> {
        let mut state = State::new();
        let mut op_ids = HashMap::new();
        for s in 0..=seq {
            let entry = self.entry(s)?.ok_or(StoreError::Corrupt {
                seq: s,
                detail: "entry is missing".into(),
            })?;
            let ctx = Ctx {
                seq: s,
                timestamp_ms: entry.timestamp_ms,
            };
            let v = VerifiedOp::from_trusted_log(entry.signed_op);
            rules::apply(&mut state, &mut op_ids, ctx, &v).map_err(|r| StoreError::Corrupt {
                seq: s,
                detail: format!("entry's op is invalid: {}", r.code()),
            })?;
        }
        Ok(state)
    }

    /// A mall item.
    pub fn item(&self, item_id: u64) -> Result<Option<ItemRecord>, StoreError> {
        self.derived
            .get(key_id(P_ITEM, item_id))?
            .map(|v| decode_rec(&v, "item"))
            .transpose()
    }

    /// Items with id > `after`, in id order, at most `limit` (all merchants, or one).
    pub fn items(
        &self,
        merchant: Option<&AccountId>,
        after: Option<u64>,
        limit: usize,
        mut keep: impl FnMut(&ItemRecord) -> bool,
    ) -> Result<(Vec<ItemRecord>, bool), StoreError> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        let mut more = false;
        let ids: Box<dyn Iterator<Item = Result<u64, StoreError>>> = match merchant {
            Some(m) => Box::new(
                self.derived
                    .range(
                        key_account_id(P_MERCHANT_ITEMS, m, start)
                            ..=key_account_id(P_MERCHANT_ITEMS, m, u64::MAX),
                    )
                    .map(|r| {
                        r.map_err(StoreError::from)
                            .and_then(|(k, _)| read_u64(&k[33..], "item index"))
                    }),
            ),
            None => Box::new(
                self.derived
                    .range(key_id(P_ITEM, start)..=key_id(P_ITEM, u64::MAX))
                    .map(|r| {
                        r.map_err(StoreError::from)
                            .and_then(|(k, _)| read_u64(&k[1..], "item key"))
                    }),
            ),
        };
        for id in ids {
            if after == Some(u64::MAX) {
                break;
            }
            let Some(item) = self.item(id?)? else {
                continue;
            };
            if keep(&item) {
                if out.len() == limit {
                    more = true;
                    break;
                }
                out.push(item);
            }
        }
        Ok((out, more))
    }

    /// An order.
    pub fn order(&self, order_id: u64) -> Result<Option<OrderRecord>, StoreError> {
        self.derived
            .get(key_id(P_ORDER, order_id))?
            .map(|v| decode_rec(&v, "order"))
            .transpose()
    }

    /// Orders of a member (`by_merchant = false`) or a merchant, id > `after`, filtered.
    pub fn orders_of(
        &self,
        account: &AccountId,
        by_merchant: bool,
        after: Option<u64>,
        limit: usize,
        mut keep: impl FnMut(&OrderRecord) -> bool,
    ) -> Result<(Vec<OrderRecord>, bool), StoreError> {
        let prefix = if by_merchant {
            P_MERCHANT_ORDERS
        } else {
            P_MEMBER_ORDERS
        };
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        let mut more = false;
        if after == Some(u64::MAX) {
            return Ok((out, more));
        }
        for r in self.derived.range(
            key_account_id(prefix, account, start)..=key_account_id(prefix, account, u64::MAX),
        ) {
            let (k, _) = r?;
            let Some(order) = self.order(read_u64(&k[33..], "order index")?)? else {
                continue;
            };
            if keep(&order) {
                if out.len() == limit {
                    more = true;
                    break;
                }
                out.push(order);
            }
        }
        Ok((out, more))
    }

    /// A settlement.
    pub fn settlement(&self, id: u64) -> Result<Option<SettlementRecord>, StoreError> {
        self.derived
            .get(key_id(P_SETTLEMENT, id))?
            .map(|v| decode_rec(&v, "settlement"))
            .transpose()
    }

    /// A merchant's settlements, id > `after`.
    pub fn settlements_of(
        &self,
        merchant: &AccountId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<SettlementRecord>, StoreError> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        let mut out = Vec::new();
        if after == Some(u64::MAX) {
            return Ok(out);
        }
        for r in self
            .derived
            .range(
                key_account_id(P_MERCHANT_SETTLEMENTS, merchant, start)
                    ..=key_account_id(P_MERCHANT_SETTLEMENTS, merchant, u64::MAX),
            )
            .take(limit)
        {
            let (k, _) = r?;
            if let Some(s) = self.settlement(read_u64(&k[33..], "settlement index")?)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// A merchant's settlement book as stored (header and open-period events).
    pub fn book(&self, merchant: &AccountId) -> Result<MerchantBook, StoreError> {
        let mut book = MerchantBook::default();
        if let Some(v) = self.derived.get(key_account(P_BOOK, merchant))? {
            let h: BookHeader = decode_rec(&v, "book")?;
            book.settled_to = h.settled_to;
            book.settlements = h.settlements;
        }
        for r in self
            .derived
            .scan_prefix(key_account(P_BOOK_EVENT, merchant))
        {
            let (k, v) = r?;
            book.events.push((
                read_u64(&k[33..], "book event key")?,
                decode_rec(&v, "book event")?,
            ));
        }
        Ok(book)
    }
}

impl NodeSource for Store {
    fn node(&self, level: u8, index: u64) -> Result<merkle::Hash, MerkleError> {
        match self.derived.get(key_node(level, index)) {
            Ok(Some(v)) if v.len() == 32 => {
                let mut h = [0u8; 32];
                h.copy_from_slice(&v);
                Ok(h)
            }
            Ok(_) => Err(MerkleError::MissingNode { level, index }),
            Err(e) => Err(MerkleError::Storage(e.to_string())),
        }
    }
}

/// Op-id lookups for one group: the group's own new pairs first, then sled.
struct OpIdView<'a> {
    derived: &'a sled::Tree,
    pending: HashMap<(AccountId, OpId), OpIdRecord>,
    failed: std::cell::RefCell<Option<sled::Error>>,
}

impl OpIdIndex for OpIdView<'_> {
    fn lookup(&self, signer: &AccountId, op_id: OpId) -> Option<OpIdRecord> {
        if let Some(r) = self.pending.get(&(*signer, op_id)) {
            return Some(*r);
        }
        match self.derived.get(key_opid(signer, op_id)) {
            Ok(Some(v)) if v.len() == 40 => {
                let mut digest = [0u8; 32];
                digest.copy_from_slice(&v[8..]);
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&v[..8]);
                Some(OpIdRecord {
                    seq: u64::from_be_bytes(seq),
                    digest,
                })
            }
            Ok(_) => None,
            Err(e) => {
                *self.failed.borrow_mut() = Some(e);
                // Refuse rather than risk applying an op twice; the caller sees `failed`.
                Some(OpIdRecord {
                    seq: u64::MAX,
                    digest: [0; 32],
                })
            }
        }
    }

    fn record(&mut self, signer: AccountId, op_id: OpId, record: OpIdRecord) {
        self.pending.insert((signer, op_id), record);
    }
}

impl OpIdView<'_> {
    fn check(&mut self) -> Result<(), StoreError> {
        match self.failed.borrow_mut().take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// What the writer publishes after every durable group: the verified tip of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Entries in the log (= tree size).
    pub size: u64,
    /// Merkle root at that size.
    pub root: Hash32,
    /// Hash of the last entry.
    pub head: Hash32,
    /// Timestamp of the last entry.
    pub timestamp_ms: u64,
}

/// The single writer: owns the in-memory state, the head and the Merkle frontier.
pub struct Writer {
    store: Arc<Store>,
    state: State,
    head: Head,
    frontier: Frontier,
    /// Set when a failed group could not be undone by reloading: writes stay refused.
    broken: Option<String>,
}

/// Stages the derived writes of one applied entry.
fn stage_effects(
    batch: &mut sled::Batch,
    derived: &sled::Tree,
    group_first: u64,
    state: &State,
    entry: &Entry,
    digest: &[u8; 32],
    effects: &Effects,
) {
    let seq = entry.seq;
    let env = &entry.signed_op.envelope;
    let mut opid_value = [0u8; 40];
    opid_value[..8].copy_from_slice(&be(seq));
    opid_value[8..].copy_from_slice(digest);
    batch.insert(&key_opid(&env.signer, env.op_id)[..], &opid_value[..]);
    for account in effects.parties.as_slice() {
        batch.insert(&key_history(account, seq)[..], &[][..]);
    }
    if effects.balances_changed {
        for account in effects.balances.as_slice() {
            batch.insert(
                &key_account(P_BALANCE, account)[..],
                &be(state.balance(account))[..],
            );
        }
    }
    if let Some(m) = effects.merchant {
        if let Some(rec) = state.merchant(&m) {
            batch.insert(&key_account(P_MERCHANT, &m)[..], codec::encode_record(rec));
        }
    }
    if let Some(a) = effects.auditor {
        if let Some(rec) = state.auditor(&a) {
            batch.insert(&key_account(P_AUDITOR, &a)[..], codec::encode_record(rec));
        }
    }
    if effects.genesis {
        if let Some(info) = state.info() {
            batch.insert(K_INFO, codec::encode_record(info));
        }
    }
    if let Some(id) = effects.item {
        if let Some(item) = state.item(id) {
            batch.insert(&key_id(P_ITEM, id)[..], codec::encode_record(item));
            batch.insert(
                &key_account_id(P_MERCHANT_ITEMS, &item.merchant, id)[..],
                &[][..],
            );
        }
    }
    if let Some(id) = effects.order {
        if let Some(order) = state.order(id) {
            batch.insert(&key_id(P_ORDER, id)[..], codec::encode_record(order));
            batch.insert(
                &key_account_id(P_MEMBER_ORDERS, &order.member, id)[..],
                &[][..],
            );
            batch.insert(
                &key_account_id(P_MERCHANT_ORDERS, &order.merchant, id)[..],
                &[][..],
            );
        }
    }
    if let Some((member, item)) = effects.held {
        batch.insert(
            &key_account_id(P_HELD, &member, item)[..],
            &be(state.held(&member, item))[..],
        );
    }
    if let Some(merchants) = effects.books {
        for m in merchants.as_slice() {
            let Some(book) = state.book(m) else { continue };
            let header = BookHeader {
                settled_to: book.settled_to,
                settlements: book.settlements,
            };
            batch.insert(&key_account(P_BOOK, m)[..], codec::encode_record(&header));
            // Book events are stored one per (merchant, seq): every op adds at most one
            // event to a merchant's book.
            debug_assert!(
                book.events
                    .iter()
                    .rev()
                    .take_while(|(s, _)| *s == seq)
                    .count()
                    <= 1,
                "two book events for one merchant at seq {seq}"
            );
            if let Some((s, event)) = book.events.last() {
                if *s == seq {
                    batch.insert(
                        &key_account_id(P_BOOK_EVENT, m, seq)[..],
                        codec::encode_record(event),
                    );
                }
            }
        }
    }
    if let Some((merchant, to_seq, id)) = effects.settled {
        // Drop the settled events: those already stored, and those staged earlier in this
        // same group (seq >= group_first), which are not in the tree yet.
        // A failed read here leaves stale events behind only if sled itself is failing, in
        // which case the group's writes fail too and the writer reloads from disk.
        for (k, _) in derived
            .range(
                key_account_id(P_BOOK_EVENT, &merchant, 0)
                    ..=key_account_id(P_BOOK_EVENT, &merchant, to_seq),
            )
            .flatten()
        {
            batch.remove(k);
        }
        for s in group_first..=to_seq {
            batch.remove(&key_account_id(P_BOOK_EVENT, &merchant, s)[..]);
        }
        if let Some(rec) = state.settlement(id) {
            batch.insert(&key_id(P_SETTLEMENT, id)[..], codec::encode_record(rec));
            batch.insert(
                &key_account_id(P_MERCHANT_SETTLEMENTS, &merchant, id)[..],
                &[][..],
            );
        }
    }
    loyalty::stage(batch, state, entry, effects);
}

fn stage_nodes(batch: &mut sled::Batch, nodes: &[(u8, u64, merkle::Hash)]) {
    for (level, index, hash) in nodes {
        batch.insert(&key_node(*level, *index)[..], &hash[..]);
    }
}

fn stage_tail(batch: &mut sled::Batch, state: &State, head: &Head) {
    batch.insert(K_TOTALS, codec::encode_record(&state.totals()));
    batch.insert(K_HEAD, &head_bytes(head)[..]);
}

impl Writer {
    /// Loads the derived state, replays any entries it misses, and checks the log's tail.
    pub fn open(store: Arc<Store>) -> Result<Writer, StoreError> {
        let state = store.load_state()?;
        let head = store.applied_head()?;
        if head.next_seq != state.totals().entries {
            return Err(StoreError::Corrupt {
                seq: head.next_seq,
                detail: format!(
                    "derived state disagrees with itself (head {} vs totals {}); run `points reindex`",
                    head.next_seq,
                    state.totals().entries
                ),
            });
        }
        let frontier = Frontier::load(head.next_seq, store.as_ref())?;
        let mut writer = Writer {
            store,
            state,
            head,
            frontier,
            broken: None,
        };
        writer.check_tail()?;
        writer.replay()?;
        writer
            .state
            .check_invariants()
            .map_err(|e| StoreError::Corrupt {
                seq: writer.head.next_seq,
                detail: e.to_string(),
            })?;
        Ok(writer)
    }

    /// Re-checks the last applied entries against the stored head, newest first: entry
    /// `n - 1` must hash to the head's hash, and every entry must hash to the `prev_hash`
    /// its successor recorded. Walking back from the trusted head names the damaged entry
    /// itself, not the one after it.
    fn check_tail(&self) -> Result<(), StoreError> {
        let n = self.head.next_seq;
        let first = n.saturating_sub(TAIL_CHECK_ENTRIES);
        let mut expected = self.head.hash;
        for seq in (first..n).rev() {
            let bytes = self.store.entry_bytes(seq)?.ok_or(StoreError::Corrupt {
                seq,
                detail: "entry is missing".into(),
            })?;
            if chain::entry_hash(&bytes) != expected {
                return Err(StoreError::Corrupt {
                    seq,
                    detail: if seq + 1 == n {
                        "entry's hash differs from the recorded head".into()
                    } else {
                        format!(
                            "entry's hash differs from the prev_hash recorded in entry {}",
                            seq + 1
                        )
                    },
                });
            }
            let entry = codec::decode_entry(&bytes).map_err(|e| StoreError::Corrupt {
                seq,
                detail: format!("entry does not decode: {e}"),
            })?;
            if entry.seq != seq {
                return Err(StoreError::Corrupt {
                    seq,
                    detail: format!("entry stored under seq {seq} says seq {}", entry.seq),
                });
            }
            expected = entry.prev_hash;
        }
        if n > 0 && first == 0 && expected != Hash32::ZERO {
            return Err(StoreError::Corrupt {
                seq: 0,
                detail: "entry 0's prev_hash is not zero".into(),
            });
        }
        Ok(())
    }

    /// Replays entries past the applied head through the rules.
    fn replay(&mut self) -> Result<u64, StoreError> {
        let total = self.store.entry_count()?;
        let verify_signatures = self.head.next_seq > 0;
        let mut replayed = 0;
        while self.head.next_seq < total {
            let mut batch = sled::Batch::default();
            let mut ops = OpIdView {
                derived: &self.store.derived,
                pending: HashMap::new(),
                failed: Default::default(),
            };
            let mut nodes = Vec::new();
            let chunk_first = self.head.next_seq;
            let end = total.min(self.head.next_seq + REPLAY_CHUNK_ENTRIES as u64);
            for seq in self.head.next_seq..end {
                let bytes = self.store.entry_bytes(seq)?.ok_or(StoreError::Corrupt {
                    seq,
                    detail: "entry is missing".into(),
                })?;
                let entry = codec::decode_entry(&bytes).map_err(|e| StoreError::Corrupt {
                    seq,
                    detail: format!("entry does not decode: {e}"),
                })?;
                self.head
                    .check_link(&entry)
                    .map_err(|e: LinkError| StoreError::Corrupt {
                        seq,
                        detail: e.to_string(),
                    })?;
                // Crash recovery replays at most a group or two past the applied head:
                // re-check their signatures, so a damaged entry that still decodes is caught
                // here. A rebuild from zero (`points reindex`) trusts the log it is rebuilding
                // from; `points audit --data` checks every signature.
                let verified = if verify_signatures {
                    VerifiedOp::verify(entry.signed_op.clone()).map_err(|_| {
                        StoreError::Corrupt {
                            seq,
                            detail: "the op's signature does not verify".into(),
                        }
                    })?
                } else {
                    VerifiedOp::from_trusted_log(entry.signed_op.clone())
                };
                let ctx = Ctx {
                    seq,
                    timestamp_ms: entry.timestamp_ms,
                };
                match rules::apply(&mut self.state, &mut ops, ctx, &verified) {
                    Ok(Outcome::Applied(effects)) => {
                        stage_effects(
                            &mut batch,
                            &self.store.derived,
                            chunk_first,
                            &self.state,
                            &entry,
                            verified.digest(),
                            &effects,
                        );
                    }
                    Ok(Outcome::Duplicate { .. }) => {
                        return Err(StoreError::Corrupt {
                            seq,
                            detail: "entry repeats an op already in the log".into(),
                        })
                    }
                    Err(r) => {
                        return Err(StoreError::Corrupt {
                            seq,
                            detail: format!("entry's op is invalid: {}", r.code()),
                        })
                    }
                }
                nodes.clear();
                nodes.extend(self.frontier.append(merkle::leaf_hash(&bytes)));
                stage_nodes(&mut batch, &nodes);
                self.head.advance(&entry, chain::entry_hash(&bytes));
                replayed += 1;
            }
            ops.check()?;
            stage_tail(&mut batch, &self.state, &self.head);
            self.store.derived.apply_batch(batch)?;
        }
        if replayed > 0 {
            self.store.sync()?;
            tracing::info!(replayed, "replayed entries missing from derived state");
        }
        Ok(replayed)
    }

    /// The current tip.
    pub fn tip(&self) -> Tip {
        Tip {
            size: self.head.next_seq,
            root: Hash32(self.frontier.root()),
            head: self.head.hash,
            timestamp_ms: self.head.timestamp_ms,
        }
    }

    /// The in-memory state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Verifies, applies and durably appends a group of ops; one result per op, in order.
    /// `Err` means the group could not be made durable: nothing in it is acknowledged, and
    /// the writer has reloaded its state from disk.
    pub fn commit_group(
        &mut self,
        ops: Vec<SignedOp>,
    ) -> Result<Vec<Result<Receipt, Rejection>>, StoreError> {
        if let Some(reason) = &self.broken {
            return Err(StoreError::Failed(reason.clone()));
        }
        // Refuse the group before anything changes if the disk cannot take it.
        let bytes: u64 = ops
            .iter()
            .map(|op| codec::encode_signed_op(op).len() as u64)
            .sum();
        self.store.check_space(bytes)?;
        let durable_head = self.head;
        let durable_frontier = self.frontier.clone();
        let verified = rules::verify_many(ops);
        let now = now_ms();
        let first_new = self.head.next_seq;
        let mut results: Vec<Result<Result<usize, u64>, Rejection>> =
            Vec::with_capacity(verified.len());
        let mut new_entries: Vec<(Entry, Hash32)> = Vec::new();
        let mut entries_batch = sled::Batch::default();
        let mut derived_batch = sled::Batch::default();
        let mut nodes = Vec::new();
        let mut op_ids = OpIdView {
            derived: &self.store.derived,
            pending: HashMap::new(),
            failed: Default::default(),
        };
        for v in verified {
            let v = match v {
                Ok(v) => v,
                Err(r) => {
                    results.push(Err(r));
                    continue;
                }
            };
            let ctx = Ctx {
                seq: self.head.next_seq,
                timestamp_ms: now.max(self.head.timestamp_ms),
            };
            match rules::apply(&mut self.state, &mut op_ids, ctx, &v) {
                Err(r) => results.push(Err(r)),
                Ok(Outcome::Duplicate { seq }) => results.push(Ok(Err(seq))),
                Ok(Outcome::Applied(effects)) => {
                    let digest = *v.digest();
                    let entry = self.head.next_entry(v.into_inner(), now);
                    debug_assert_eq!(entry.timestamp_ms, ctx.timestamp_ms);
                    let (bytes, hash) = chain::seal(&entry);
                    stage_effects(
                        &mut derived_batch,
                        &self.store.derived,
                        first_new,
                        &self.state,
                        &entry,
                        &digest,
                        &effects,
                    );
                    nodes.clear();
                    nodes.extend(self.frontier.append(merkle::leaf_hash(&bytes)));
                    stage_nodes(&mut derived_batch, &nodes);
                    entries_batch.insert(&be(entry.seq)[..], bytes);
                    self.head.advance(&entry, hash);
                    results.push(Ok(Ok(new_entries.len())));
                    new_entries.push((entry, hash));
                }
            }
        }
        let durable = op_ids.check().and_then(|()| {
            if new_entries.is_empty() {
                return Ok(());
            }
            stage_tail(&mut derived_batch, &self.state, &self.head);
            self.store.entries.apply_batch(entries_batch)?;
            self.store.sync()?;
            self.store.derived.apply_batch(derived_batch)?;
            Ok(())
        });
        if let Err(e) = durable {
            tracing::error!(error = %e, "group commit failed; reloading state from disk");
            self.recover_after_failure(
                first_new,
                new_entries.len() as u64,
                durable_head,
                durable_frontier,
            );
            return Err(e);
        }
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            out.push(match r {
                Err(rej) => Err(rej),
                Ok(Ok(i)) => {
                    let (entry, hash) = &new_entries[i];
                    Ok(Receipt {
                        seq: entry.seq,
                        entry_hash: *hash,
                        timestamp_ms: entry.timestamp_ms,
                        signed_op: entry.signed_op.clone(),
                    })
                }
                Ok(Err(seq)) if seq >= first_new => {
                    let (entry, hash) = &new_entries[(seq - first_new) as usize];
                    Ok(Receipt {
                        seq,
                        entry_hash: *hash,
                        timestamp_ms: entry.timestamp_ms,
                        signed_op: entry.signed_op.clone(),
                    })
                }
                Ok(Err(seq)) => match self.store.receipt(seq) {
                    Ok(Some(r)) => Ok(r),
                    _ => Err(Rejection::DuplicateOpId),
                },
            });
        }
        Ok(out)
    }

    /// After a failed group: take the group's entries back out of the log if they got in, and
    /// reload the state from what is on disk. If that reload fails too (a write failure
    /// inside sled poisons the database until it is reopened), go back to the last durable
    /// head, so nothing of the failed group is ever published, and refuse every later group.
    fn recover_after_failure(
        &mut self,
        first_new: u64,
        count: u64,
        durable_head: Head,
        durable_frontier: Frontier,
    ) {
        for seq in first_new..first_new + count {
            let _ = self.store.entries.remove(be(seq));
        }
        let _ = self.store.sync();
        match Writer::open(self.store.clone()) {
            Ok(fresh) => *self = fresh,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "reload after a failed commit also failed; refusing writes until restarted"
                );
                self.head = durable_head;
                self.frontier = durable_frontier;
                self.broken = Some(format!(
                    "a group commit failed and the reload after it failed: {e}"
                ));
            }
        }
    }
}

/// Why a submission got no per-op answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    /// The store could not make the group durable; nothing in it was acknowledged.
    #[error("the ledger cannot accept writes right now: {0}")]
    Unavailable(String),
    /// The sequencer has stopped (shutting down).
    #[error("the ledger is shutting down")]
    ShuttingDown,
}

/// One result per submitted op.
pub type SubmitResults = Vec<Result<Receipt, Rejection>>;

struct Request {
    ops: Vec<SignedOp>,
    reply: oneshot::Sender<Result<SubmitResults, SubmitError>>,
}

/// Statistics of one group commit, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct GroupStats {
    /// Ops in the group.
    pub ops: usize,
    /// Entries appended.
    pub appended: usize,
    /// Time from taking the group to having it durable.
    pub commit_seconds: f64,
}

/// A handle to submit ops to the sequencer. Cloneable.
#[derive(Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Request>,
    tip: watch::Receiver<Tip>,
    stats: watch::Receiver<Option<GroupStats>>,
}

impl Sequencer {
    /// Starts the writer thread. It stops once every `Sequencer` clone is dropped and the
    /// queue is drained; join the returned handle to wait for that.
    pub fn start(writer: Writer, config: &StoreConfig) -> (Sequencer, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Request>(config.queue_requests_max);
        let (tip_tx, tip_rx) = watch::channel(writer.tip());
        let (stats_tx, stats_rx) = watch::channel(None);
        let group_ops_max = config.group_ops_max;
        let handle = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || {
                let mut writer = writer;
                let mut pending: Option<Request> = None;
                loop {
                    let first = match pending.take() {
                        Some(r) => r,
                        None => match rx.blocking_recv() {
                            Some(r) => r,
                            None => break,
                        },
                    };
                    let started = Instant::now();
                    let mut group = vec![first];
                    let mut count = group[0].ops.len();
                    while count < group_ops_max {
                        match rx.try_recv() {
                            Ok(r) => {
                                if count + r.ops.len() > group_ops_max {
                                    pending = Some(r);
                                    break;
                                }
                                count += r.ops.len();
                                group.push(r);
                            }
                            Err(_) => break,
                        }
                    }
                    let mut ops = Vec::with_capacity(count);
                    let mut shape = Vec::with_capacity(group.len());
                    for req in &mut group {
                        shape.push(req.ops.len());
                        ops.append(&mut req.ops);
                    }
                    let result = writer.commit_group(ops);
                    let appended_before = tip_tx.borrow().size;
                    let _ = tip_tx.send(writer.tip());
                    let _ = stats_tx.send(Some(GroupStats {
                        ops: count,
                        appended: (writer.tip().size.saturating_sub(appended_before)) as usize,
                        commit_seconds: started.elapsed().as_secs_f64(),
                    }));
                    match result {
                        Ok(results) => {
                            let mut it = results.into_iter();
                            for (req, n) in group.into_iter().zip(shape) {
                                let part: Vec<_> = it.by_ref().take(n).collect();
                                let _ = req.reply.send(Ok(part));
                            }
                        }
                        Err(e) => {
                            for req in group {
                                let _ =
                                    req.reply.send(Err(SubmitError::Unavailable(e.to_string())));
                            }
                        }
                    }
                }
                tracing::info!("sequencer stopped");
            })
            .expect("spawning the sequencer thread");
        (
            Sequencer {
                tx,
                tip: tip_rx,
                stats: stats_rx,
            },
            handle,
        )
    }

    /// Submits ops and waits until each is durable or refused.
    pub async fn submit(&self, ops: Vec<SignedOp>) -> Result<SubmitResults, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { ops, reply })
            .await
            .map_err(|_| SubmitError::ShuttingDown)?;
        rx.await.map_err(|_| SubmitError::ShuttingDown)?
    }

    /// The latest durable tip.
    pub fn tip(&self) -> Tip {
        *self.tip.borrow()
    }

    /// A receiver that changes whenever a group lands.
    pub fn watch_tip(&self) -> watch::Receiver<Tip> {
        self.tip.clone()
    }

    /// Stats of the last group.
    pub fn watch_stats(&self) -> watch::Receiver<Option<GroupStats>> {
        self.stats.clone()
    }
}
