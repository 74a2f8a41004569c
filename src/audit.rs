//! The auditor: checks a whole log end to end, offline or against a live server.
//! Implements the procedure of `ledger-spec/audit.md`.
//!
//! For every entry, in order: it decodes (strictly), links (seq, prev_hash, timestamps),
//! hashes, has a valid signature, and is a valid op under the same [`rules::apply`] the
//! server runs; the invariants hold; and every checkpoint is signed by the checkpoint key
//! named in genesis and matches the Merkle root and head recomputed at its size. The first
//! failure is reported with its seq. Decoding, hashing and signature checks run on all
//! cores; replay is sequential.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rayon::prelude::*;

use crate::chain::{self, Head, LinkError};
use crate::checkpoint::{Checkpoint, NoteError, NoteVerifier};
use crate::codec::{self, CodecError};
use crate::merkle::{self, Frontier};
use crate::op::{AccountId, Entry, Hash32, OpId};
use crate::rules::{self, Ctx, OpIdRecord, Outcome, Rejection, State};

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFailure {
    /// The entry bytes do not decode.
    #[error("entry does not decode: {0}")]
    Decode(CodecError),
    /// The entry does not link to the previous one.
    #[error("{0}")]
    Link(LinkError),
    /// The op's signature does not verify.
    #[error("the op's signature does not verify")]
    BadSignature,
    /// The op is not valid at this point of the chain.
    #[error("the op is invalid here: {} ({})", .0.code(), .0)]
    Rule(Rejection),
    /// The op repeats an op already in the log.
    #[error("the op repeats an earlier op (same signer and op_id)")]
    Repeated,
    /// An invariant does not hold.
    #[error("{0}")]
    Invariant(String),
    /// A checkpoint's signature does not verify under the checkpoint key from genesis.
    #[error("checkpoint of size {size}: {error}")]
    CheckpointSignature {
        /// Tree size claimed.
        size: u64,
        /// Why.
        error: NoteError,
    },
    /// A checkpoint's root differs from the recomputed root.
    #[error("checkpoint of size {size}: Merkle root does not match the log")]
    CheckpointRoot {
        /// Tree size.
        size: u64,
    },
    /// A checkpoint's head differs from the recomputed head.
    #[error("the entry's hash differs from the head signed in the checkpoint of size {size}")]
    CheckpointHead {
        /// Tree size.
        size: u64,
    },
    /// A checkpoint commits to more entries than the log has: entries are missing.
    #[error("checkpoint of size {size} commits to more entries than the log's {entries}: entries are missing")]
    CheckpointBeyondLog {
        /// Tree size.
        size: u64,
        /// Entries in the log.
        entries: u64,
    },
    /// A checkpoint that cannot even be parsed.
    #[error("checkpoint cannot be read: {0}")]
    CheckpointMalformed(NoteError),
    /// A checkpoint was added after the auditor had passed its size.
    #[error("checkpoint of size {size} was given after the entries it covers")]
    CheckpointTooLate {
        /// Tree size.
        size: u64,
    },
    /// The log is empty or does not start with genesis.
    #[error("the log has no genesis entry")]
    NoGenesis,
}

/// The first problem found, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditError {
    /// Seq of the bad entry, if an entry is at fault.
    pub seq: Option<u64>,
    /// What is wrong.
    pub failure: AuditFailure,
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "entry {seq}: {}", self.failure),
            None => write!(f, "{}", self.failure),
        }
    }
}

impl std::error::Error for AuditError {}

/// What a successful audit established.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditReport {
    /// The chain id.
    pub chain_id: String,
    /// Entries checked.
    pub entries: u64,
    /// Accounts that hold or held points.
    pub accounts: u64,
    /// Points in existence.
    pub supply: u64,
    /// Points ever minted.
    pub minted: u64,
    /// Points ever burned.
    pub burned: u64,
    /// Recomputed Merkle root.
    pub root: Hash32,
    /// Recomputed head entry hash.
    pub head: Hash32,
    /// Checkpoints whose signature, root and head were checked.
    pub checkpoints_verified: u64,
    /// Size of the largest checkpoint checked.
    pub last_checkpoint_size: Option<u64>,
}

/// Checks a log fed to it in order, chunk by chunk.
pub struct Auditor {
    state: State,
    op_ids: HashMap<(AccountId, OpId), OpIdRecord>,
    head: Head,
    frontier: Frontier,
    pending_checkpoints: BTreeMap<u64, Vec<String>>,
    checkpoints_verified: u64,
    last_checkpoint_size: Option<u64>,
    nodes: Vec<(u8, u64, merkle::Hash)>,
}

impl Default for Auditor {
    fn default() -> Self {
        Auditor::new()
    }
}

fn fail(seq: u64, failure: AuditFailure) -> AuditError {
    AuditError {
        seq: Some(seq),
        failure,
    }
}

impl Auditor {
    /// An auditor at the start of a log.
    pub fn new() -> Auditor {
        Auditor {
            state: State::new(),
            op_ids: HashMap::new(),
            head: Head::EMPTY,
            frontier: Frontier::new(),
            pending_checkpoints: BTreeMap::new(),
            checkpoints_verified: 0,
            last_checkpoint_size: None,
            nodes: Vec::with_capacity(64),
        }
    }

    /// Entries checked so far.
    pub fn entries(&self) -> u64 {
        self.head.next_seq
    }

    /// The replayed state so far.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Queues a signed checkpoint note; it is checked when the log reaches its size.
    pub fn add_checkpoint(&mut self, note: String) -> Result<(), AuditError> {
        let size = checkpoint_size(&note).map_err(|e| AuditError {
            seq: None,
            failure: AuditFailure::CheckpointMalformed(e),
        })?;
        if size < self.head.next_seq {
            // Already past it: the auditor keeps no old roots, so checkpoints must be added
            // before the entries they cover.
            return Err(AuditError {
                seq: None,
                failure: AuditFailure::CheckpointTooLate { size },
            });
        }
        self.pending_checkpoints.entry(size).or_default().push(note);
        Ok(())
    }

    /// Checks the next entries (canonical bytes, in seq order).
    pub fn feed(&mut self, chunk: &[Vec<u8>]) -> Result<(), AuditError> {
        let first = self.head.next_seq;
        let decoded: Vec<(Result<Entry, CodecError>, Hash32, merkle::Hash)> = chunk
            .par_iter()
            .map(|b| {
                (
                    codec::decode_entry(b),
                    chain::entry_hash(b),
                    merkle::leaf_hash(b),
                )
            })
            .collect();
        let mut entries = Vec::with_capacity(decoded.len());
        let mut hashes = Vec::with_capacity(decoded.len());
        for (i, (entry, hash, leaf)) in decoded.into_iter().enumerate() {
            let entry = entry.map_err(|e| fail(first + i as u64, AuditFailure::Decode(e)))?;
            entries.push(entry);
            hashes.push((hash, leaf));
        }
        let ops: Vec<_> = entries.iter().map(|e| e.signed_op.clone()).collect();
        let verified = rules::verify_many(ops);
        for (i, (entry, verified)) in entries.iter().zip(verified).enumerate() {
            let seq = first + i as u64;
            self.head
                .check_link(entry)
                .map_err(|e| fail(seq, AuditFailure::Link(e)))?;
            let verified = verified.map_err(|_| fail(seq, AuditFailure::BadSignature))?;
            let ctx = Ctx {
                seq,
                timestamp_ms: entry.timestamp_ms,
            };
            match rules::apply(&mut self.state, &mut self.op_ids, ctx, &verified) {
                Ok(Outcome::Applied(_)) => {}
                Ok(Outcome::Duplicate { .. }) => return Err(fail(seq, AuditFailure::Repeated)),
                Err(r) => return Err(fail(seq, AuditFailure::Rule(r))),
            }
            let (hash, leaf) = hashes[i];
            self.nodes.clear();
            self.frontier.append_into(leaf, &mut self.nodes);
            self.head.advance(entry, hash);
            if seq == 0 && self.state.info().is_none() {
                return Err(fail(0, AuditFailure::NoGenesis));
            }
            self.check_checkpoints_at(self.head.next_seq)?;
        }
        if !chunk.is_empty() {
            self.state
                .check_invariants()
                .map_err(|e| fail(self.head.next_seq - 1, AuditFailure::Invariant(e.0)))?;
        }
        Ok(())
    }

    fn check_checkpoints_at(&mut self, size: u64) -> Result<(), AuditError> {
        let Some(notes) = self.pending_checkpoints.remove(&size) else {
            return Ok(());
        };
        let info = self.state.info().ok_or(AuditError {
            seq: None,
            failure: AuditFailure::NoGenesis,
        })?;
        let verifier =
            NoteVerifier::new(&info.chain_id, info.checkpoint_key.0).map_err(|e| AuditError {
                seq: None,
                failure: AuditFailure::CheckpointSignature { size, error: e },
            })?;
        let root = self.frontier.root();
        for note in notes {
            let (cp, _) = Checkpoint::open(&note, &verifier).map_err(|error| AuditError {
                seq: None,
                failure: AuditFailure::CheckpointSignature { size, error },
            })?;
            // The head names the last entry exactly, so check it first: a mismatch pins the
            // damage to entry size - 1.
            if cp.head != self.head.hash.0 {
                return Err(AuditError {
                    seq: Some(size - 1),
                    failure: AuditFailure::CheckpointHead { size },
                });
            }
            if cp.root != root {
                return Err(AuditError {
                    seq: None,
                    failure: AuditFailure::CheckpointRoot { size },
                });
            }
            self.checkpoints_verified += 1;
            self.last_checkpoint_size = Some(size);
        }
        Ok(())
    }

    /// Ends the audit: every queued checkpoint must have been reached.
    pub fn finish(self) -> Result<AuditReport, AuditError> {
        let info = self.state.info().cloned().ok_or(AuditError {
            seq: None,
            failure: AuditFailure::NoGenesis,
        })?;
        if let Some((&size, _)) = self.pending_checkpoints.iter().find(|(s, _)| **s > 0) {
            return Err(AuditError {
                seq: None,
                failure: AuditFailure::CheckpointBeyondLog {
                    size,
                    entries: self.head.next_seq,
                },
            });
        }
        self.state.check_invariants().map_err(|e| AuditError {
            seq: None,
            failure: AuditFailure::Invariant(e.0),
        })?;
        let totals = self.state.totals();
        Ok(AuditReport {
            chain_id: info.chain_id,
            entries: self.head.next_seq,
            accounts: self.state.account_count() as u64,
            supply: totals.supply,
            minted: totals.minted,
            burned: totals.burned,
            root: Hash32(self.frontier.root()),
            head: self.head.hash,
            checkpoints_verified: self.checkpoints_verified,
            last_checkpoint_size: self.last_checkpoint_size,
        })
    }
}

/// Reads the tree size of a checkpoint note without checking its signature.
pub fn checkpoint_size(note: &str) -> Result<u64, NoteError> {
    let body = note.split("\n\n").next().unwrap_or("");
    let mut text = body.to_string();
    text.push('\n');
    Ok(Checkpoint::parse_body(&text)?.size)
}

/// Audits an export stream completely, calling `progress(entries_so_far)` after each chunk.
/// Streams: memory stays bounded by one chunk plus the replayed state.
pub fn audit_export<R: std::io::Read>(
    reader: R,
    chunk_entries: usize,
    mut progress: impl FnMut(u64),
) -> Result<AuditReport, AuditExportError> {
    use crate::export::{ExportError, Frame, Reader};
    let mut r = Reader::new(reader)?;
    let mut auditor = Auditor::new();
    let mut chunk = Vec::with_capacity(chunk_entries.max(1));
    while let Some(frame) = r.next_frame()? {
        match frame {
            Frame::Checkpoint(note) => {
                if auditor.entries() > 0 || !chunk.is_empty() {
                    return Err(ExportError::OutOfOrder.into());
                }
                auditor.add_checkpoint(note)?;
            }
            Frame::Entry(bytes) => {
                chunk.push(bytes);
                if chunk.len() >= chunk_entries.max(1) {
                    auditor.feed(&chunk)?;
                    chunk.clear();
                    progress(auditor.entries());
                }
            }
        }
    }
    auditor.feed(&chunk)?;
    progress(auditor.entries());
    Ok(auditor.finish()?)
}

/// Failure of [`audit_export`].
#[derive(Debug, thiserror::Error)]
pub enum AuditExportError {
    /// The export stream is unreadable.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// The log is not valid.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Audits a stopped store directly (`points audit --data DIR`).
pub fn audit_store(
    store: &crate::store::Store,
    chunk_entries: usize,
    mut progress: impl FnMut(u64),
) -> Result<AuditReport, AuditStoreError> {
    let mut auditor = Auditor::new();
    for item in store.checkpoints() {
        let (_, note) = item?;
        auditor.add_checkpoint(note)?;
    }
    let total = store.entry_count()?;
    let mut chunk = Vec::with_capacity(chunk_entries.max(1));
    let mut seq = 0;
    while seq < total {
        chunk.clear();
        let end = total.min(seq + chunk_entries.max(1) as u64);
        for s in seq..end {
            match store.entry_bytes(s)? {
                Some(b) => chunk.push(b.to_vec()),
                None => {
                    return Err(AuditError {
                        seq: Some(s),
                        failure: AuditFailure::Link(LinkError::SeqGap {
                            expected: s,
                            found: s + 1,
                        }),
                    }
                    .into())
                }
            }
        }
        auditor.feed(&chunk)?;
        progress(auditor.entries());
        seq = end;
    }
    Ok(auditor.finish()?)
}

/// Writes a stopped (or running, read-only) store as an export.
pub fn export_store(
    store: &crate::store::Store,
    out: &mut impl std::io::Write,
) -> Result<u64, AuditStoreError> {
    use crate::export;
    export::write_header(out).map_err(crate::store::StoreError::Io)?;
    let mut size = 0;
    for item in store.checkpoints() {
        let (s, note) = item?;
        size = size.max(s);
        export::write_frame(out, &export::Frame::Checkpoint(note))
            .map_err(crate::store::StoreError::Io)?;
    }
    let total = store.entry_count()?;
    for seq in 0..total {
        let bytes = store
            .entry_bytes(seq)?
            .ok_or(crate::store::StoreError::Corrupt {
                seq,
                detail: "entry is missing".into(),
            })?;
        export::encode_frame(out, export::KIND_ENTRY, &bytes)
            .map_err(crate::store::StoreError::Io)?;
    }
    export::write_end(out).map_err(crate::store::StoreError::Io)?;
    Ok(total)
}

/// Failure of [`audit_store`] / [`export_store`].
#[derive(Debug, thiserror::Error)]
pub enum AuditStoreError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The log is not valid.
    #[error(transparent)]
    Audit(#[from] AuditError),
}
