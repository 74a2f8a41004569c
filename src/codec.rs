//! Canonical encoding: the one place where bytes are produced from and parsed into ledger
//! types. Implements `ledger-spec/encoding.md`.
//!
//! The encoding is bincode 2.0.1 with one fixed configuration: little-endian, fixed-width
//! integers (u8 1 byte, u64 8 bytes, u128 16 bytes), enum tags as u32, `Option` as one tag
//! byte (0 none, 1 some), `Vec`/`String` as a u64 length then the items, fixed arrays with no
//! length, structs as their fields in order. Nothing else in the crate calls bincode, so the
//! encoder could be replaced by a byte-identical one; the spec vectors guard the bytes.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::error::DecodeError;
use bincode::{Decode, Encode};

use crate::op::{Entry, Envelope, SignedOp, OP_SIGNING_DOMAIN};

/// Largest canonical message accepted by the decoder, in bytes. A length prefix claiming more
/// is refused before anything is allocated.
pub const DECODE_BYTES_MAX: usize = 64 * 1024;

/// Largest batch of signed ops in one encoded batch.
pub const BATCH_OPS_MAX: usize = 4096;

type Canonical = Configuration<LittleEndian, Fixint, Limit<DECODE_BYTES_MAX>>;

/// A canonical batch is bounded as a whole (16 MiB) rather than per op; it also holds at most
/// `BATCH_OPS_MAX` ops.
type CanonicalBatch = Configuration<LittleEndian, Fixint, Limit<{ 16 * 1024 * 1024 }>>;

const fn config() -> Canonical {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<DECODE_BYTES_MAX>()
}

const fn batch_config() -> CanonicalBatch {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ 16 * 1024 * 1024 }>()
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended before the value did.
    #[error("input ends early: {additional} more bytes needed")]
    UnexpectedEnd {
        /// Bytes missing.
        additional: usize,
    },
    /// Bytes were left after a complete value.
    #[error("{trailing} trailing bytes after a complete value")]
    TrailingBytes {
        /// Bytes left over.
        trailing: usize,
    },
    /// An enum tag that names no variant.
    #[error("unknown tag {found} for {type_name}")]
    UnknownTag {
        /// The enum.
        type_name: &'static str,
        /// The tag read.
        found: u32,
    },
    /// A length prefix or a whole message larger than the decoder accepts.
    #[error("length exceeds the limit of {limit} bytes")]
    TooLong {
        /// The limit.
        limit: usize,
    },
    /// A string that is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A boolean other than 0 or 1 (a bad `Option` tag is reported as [`CodecError::UnknownTag`]).
    #[error("invalid tag byte {0} (expected 0 or 1)")]
    InvalidBool(u8),
    /// A batch with more ops than allowed.
    #[error("batch of {count} ops exceeds the limit of {limit}")]
    BatchTooLarge {
        /// Ops in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Any other malformation.
    #[error("malformed: {0}")]
    Malformed(String),
}

impl From<DecodeError> for CodecError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::UnexpectedEnd { additional } => CodecError::UnexpectedEnd { additional },
            DecodeError::LimitExceeded => CodecError::TooLong {
                limit: DECODE_BYTES_MAX,
            },
            DecodeError::UnexpectedVariant {
                type_name, found, ..
            } => CodecError::UnknownTag { type_name, found },
            DecodeError::Utf8 { .. } => CodecError::InvalidUtf8,
            DecodeError::InvalidBooleanValue(b) => CodecError::InvalidBool(b),
            DecodeError::OutsideUsizeRange(_) => CodecError::TooLong {
                limit: DECODE_BYTES_MAX,
            },
            other => CodecError::Malformed(other.to_string()),
        }
    }
}

fn encode_into<T: Encode>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every ledger type is encodable.
    bincode::encode_into_std_write(value, out, config()).expect("encoding into a Vec never fails");
}

fn decode_exact<T: Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > DECODE_BYTES_MAX {
        return Err(CodecError::TooLong {
            limit: DECODE_BYTES_MAX,
        });
    }
    let (value, used): (T, usize) = bincode::decode_from_slice(bytes, config())?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            trailing: bytes.len() - used,
        });
    }
    Ok(value)
}

/// Canonical bytes of a signed op.
pub fn encode_signed_op(op: &SignedOp) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_into(op, &mut out);
    out
}

/// Parses a signed op, refusing trailing bytes, unknown tags and over-long lengths.
pub fn decode_signed_op(bytes: &[u8]) -> Result<SignedOp, CodecError> {
    decode_exact(bytes)
}

/// Canonical bytes of an entry: also the Merkle leaf data.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(320);
    encode_into(entry, &mut out);
    out
}

/// Parses an entry, refusing trailing bytes, unknown tags and over-long lengths.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, CodecError> {
    decode_exact(bytes)
}

/// Canonical bytes of an envelope.
pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    encode_into(envelope, &mut out);
    out
}

/// The exact bytes a signer signs: `OP_SIGNING_DOMAIN || canonical(envelope)`.
pub fn signing_payload(envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(OP_SIGNING_DOMAIN.len() + 192);
    out.extend_from_slice(OP_SIGNING_DOMAIN);
    encode_into(envelope, &mut out);
    out
}

/// Canonical bytes of a batch of signed ops: a u64 count, then each op.
pub fn encode_batch(ops: &[SignedOp]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 256 * ops.len());
    bincode::encode_into_std_write(ops, &mut out, batch_config())
        .expect("encoding into a Vec never fails");
    out
}

/// Parses a batch of signed ops (at most [`BATCH_OPS_MAX`]).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<SignedOp>, CodecError> {
    if bytes.len() >= 8 {
        let mut count = [0u8; 8];
        count.copy_from_slice(&bytes[..8]);
        let count = u64::from_le_bytes(count);
        if count > BATCH_OPS_MAX as u64 {
            return Err(CodecError::BatchTooLarge {
                count: usize::try_from(count).unwrap_or(usize::MAX),
                limit: BATCH_OPS_MAX,
            });
        }
    }
    let (ops, used): (Vec<SignedOp>, usize) =
        bincode::decode_from_slice(bytes, batch_config()).map_err(CodecError::from)?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            trailing: bytes.len() - used,
        });
    }
    Ok(ops)
}

/// Encodes a derived-state record (store values; not part of the chain's format).
pub fn encode_record<T: Encode>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

/// Decodes a derived-state record written by [`encode_record`].
pub fn decode_record<T: Decode<()>>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_exact(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::*;

    fn sample() -> SignedOp {
        SignedOp {
            envelope: Envelope {
                chain_id: "points.example/test".into(),
                signer: AccountId([1; 32]),
                op_id: OpId(7),
                not_after_ms: 1_000,
                op: Op::Transfer(Transfer {
                    to: AccountId([2; 32]),
                    amount: Points(5),
                    memo: Bytes(vec![0xaa]),
                }),
            },
            signature: Signature([3; 64]),
        }
    }

    #[test]
    fn round_trip() {
        let op = sample();
        let bytes = encode_signed_op(&op);
        assert_eq!(decode_signed_op(&bytes).unwrap(), op);
    }

    #[test]
    fn layout_is_fixed_width_little_endian() {
        let bytes = encode_signed_op(&sample());
        // chain id: u64 length then bytes
        assert_eq!(&bytes[..8], &19u64.to_le_bytes());
        assert_eq!(&bytes[8..27], b"points.example/test");
        assert_eq!(&bytes[27..59], &[1u8; 32]);
        assert_eq!(&bytes[59..75], &7u128.to_le_bytes());
        assert_eq!(&bytes[75..83], &1_000u64.to_le_bytes());
        // op tag 6 = Transfer, as u32
        assert_eq!(&bytes[83..87], &6u32.to_le_bytes());
        assert_eq!(bytes.len(), 87 + 32 + 8 + 8 + 1 + 64);
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode_signed_op(&sample());
        bytes.push(0);
        assert_eq!(
            decode_signed_op(&bytes),
            Err(CodecError::TrailingBytes { trailing: 1 })
        );
    }

    #[test]
    fn rejects_unknown_tag() {
        let mut bytes = encode_signed_op(&sample());
        bytes[83..87].copy_from_slice(&200u32.to_le_bytes());
        assert!(matches!(
            decode_signed_op(&bytes),
            Err(CodecError::UnknownTag { found: 200, .. })
        ));
    }

    #[test]
    fn rejects_overlong_length() {
        let mut bytes = encode_signed_op(&sample());
        bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_signed_op(&bytes).is_err());
        bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            decode_signed_op(&bytes),
            Err(CodecError::TooLong { .. }) | Err(CodecError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn rejects_truncation_everywhere() {
        let bytes = encode_signed_op(&sample());
        for cut in 0..bytes.len() {
            assert!(decode_signed_op(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn batch_round_trip_and_limit() {
        let ops = vec![sample(), sample()];
        let bytes = encode_batch(&ops);
        assert_eq!(decode_batch(&bytes).unwrap(), ops);
        let mut huge = ((BATCH_OPS_MAX as u64) + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert!(matches!(
            decode_batch(&huge),
            Err(CodecError::BatchTooLarge { .. })
        ));
    }
}
