//! The hash chain: entry hashes, linking new entries to the head, and checking links.
//! Implements `ledger-spec/encoding.md` §6 (entry hash) and `ledger-spec/rules.md` §2 (links).

use sha2::{Digest, Sha256};

use crate::codec;
use crate::op::{Entry, Hash32, SignedOp};

/// Domain tag prefixed to the canonical entry bytes before hashing.
pub const ENTRY_HASH_DOMAIN: &[u8] = b"points-ledger/entry/v1\0";

/// `SHA-256(ENTRY_HASH_DOMAIN || entry_bytes)`.
pub fn entry_hash(entry_bytes: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(ENTRY_HASH_DOMAIN);
    h.update(entry_bytes);
    Hash32(h.finalize().into())
}

/// The end of the chain: what the next entry links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Seq the next entry gets (= number of entries).
    pub next_seq: u64,
    /// Hash of the last entry (zero before entry 0).
    pub hash: Hash32,
    /// Timestamp of the last entry (0 before entry 0).
    pub timestamp_ms: u64,
}

impl Head {
    /// The head of an empty chain.
    pub const EMPTY: Head = Head {
        next_seq: 0,
        hash: Hash32::ZERO,
        timestamp_ms: 0,
    };

    /// Builds the next entry for `signed_op`, stamping it no earlier than the last entry.
    pub fn next_entry(&self, signed_op: SignedOp, now_ms: u64) -> Entry {
        Entry {
            seq: self.next_seq,
            prev_hash: self.hash,
            timestamp_ms: now_ms.max(self.timestamp_ms),
            signed_op,
        }
    }

    /// Moves the head past `entry`, whose canonical bytes hash to `hash`.
    pub fn advance(&mut self, entry: &Entry, hash: Hash32) {
        debug_assert_eq!(entry.seq, self.next_seq);
        self.next_seq = entry.seq + 1;
        self.hash = hash;
        self.timestamp_ms = entry.timestamp_ms;
    }

    /// Checks that `entry` correctly follows this head.
    pub fn check_link(&self, entry: &Entry) -> Result<(), LinkError> {
        if entry.seq != self.next_seq {
            return Err(LinkError::SeqGap {
                expected: self.next_seq,
                found: entry.seq,
            });
        }
        if entry.prev_hash != self.hash {
            return Err(LinkError::PrevHashMismatch { seq: entry.seq });
        }
        if entry.timestamp_ms < self.timestamp_ms {
            return Err(LinkError::TimeWentBack { seq: entry.seq });
        }
        Ok(())
    }
}

/// How an entry fails to follow the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Seq is not the previous seq + 1.
    #[error("expected seq {expected}, found {found}")]
    SeqGap {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// prev_hash is not the previous entry's hash.
    #[error("entry {seq}: prev_hash does not match the hash of entry {}", seq.saturating_sub(1))]
    PrevHashMismatch {
        /// The entry.
        seq: u64,
    },
    /// The timestamp is earlier than the previous entry's.
    #[error("entry {seq}: timestamp is earlier than the previous entry's")]
    TimeWentBack {
        /// The entry.
        seq: u64,
    },
}

/// Encodes an entry and returns its bytes and hash.
pub fn seal(entry: &Entry) -> (Vec<u8>, Hash32) {
    let bytes = codec::encode_entry(entry);
    let hash = entry_hash(&bytes);
    (bytes, hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::*;

    fn op() -> SignedOp {
        SignedOp {
            envelope: Envelope {
                chain_id: "t".into(),
                signer: AccountId([1; 32]),
                op_id: OpId(1),
                not_after_ms: 5,
                op: Op::Burn(Burn {
                    from: AccountId([1; 32]),
                    amount: Points(1),
                    reason: BurnReason::Voluntary,
                }),
            },
            signature: Signature([0; 64]),
        }
    }

    #[test]
    fn links_and_detects_breaks() {
        let mut head = Head::EMPTY;
        let e0 = head.next_entry(op(), 10);
        head.check_link(&e0).unwrap();
        let (_, h0) = seal(&e0);
        head.advance(&e0, h0);
        let e1 = head.next_entry(op(), 5);
        assert_eq!(e1.timestamp_ms, 10, "timestamps never go back");
        assert_eq!(e1.prev_hash, h0);
        head.check_link(&e1).unwrap();
        let mut bad = e1.clone();
        bad.prev_hash = Hash32([9; 32]);
        assert_eq!(
            head.check_link(&bad),
            Err(LinkError::PrevHashMismatch { seq: 1 })
        );
        let mut bad = e1.clone();
        bad.seq = 2;
        assert!(matches!(
            head.check_link(&bad),
            Err(LinkError::SeqGap { .. })
        ));
        let mut bad = e1;
        bad.timestamp_ms = 9;
        assert_eq!(
            head.check_link(&bad),
            Err(LinkError::TimeWentBack { seq: 1 })
        );
    }
}
