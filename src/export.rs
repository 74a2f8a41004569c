//! The export format: the whole log and its checkpoints in one byte stream, for offline
//! audit. Implements `ledger-spec/export.md`.
//!
//! ```text
//! magic   "points-ledger-export/v1\n"         (24 bytes)
//! frame*  kind: u8 | length: u32 LE | payload
//!           kind 2 = checkpoint (a signed note, UTF-8), all before the first entry
//!           kind 1 = entry (canonical entry bytes, in seq order from 0)
//! end     kind 0 | length 0
//! ```
//! A stream without the end frame is truncated and refused.

use std::io::{self, Read, Write};

/// The first bytes of every export.
pub const MAGIC: &[u8; 24] = b"points-ledger-export/v1\n";
/// Frame kind: end of stream.
pub const KIND_END: u8 = 0;
/// Frame kind: an entry.
pub const KIND_ENTRY: u8 = 1;
/// Frame kind: a checkpoint note.
pub const KIND_CHECKPOINT: u8 = 2;
/// Largest frame payload accepted, in bytes.
pub const FRAME_BYTES_MAX: u32 = 1 << 20;

/// One frame of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Canonical entry bytes.
    Entry(Vec<u8>),
    /// A signed checkpoint note.
    Checkpoint(String),
}

/// Why an export could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// Not an export.
    #[error("not a points-ledger export (bad magic)")]
    BadMagic,
    /// The stream ends before its end frame.
    #[error("export is truncated (no end frame)")]
    Truncated,
    /// A frame kind that is not defined.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A frame larger than allowed.
    #[error("frame of {0} bytes exceeds the limit")]
    FrameTooLarge(u32),
    /// A checkpoint frame after an entry frame.
    #[error("checkpoint frame after the first entry frame")]
    OutOfOrder,
    /// A checkpoint that is not UTF-8.
    #[error("checkpoint frame is not UTF-8")]
    NotUtf8,
}

/// Writes the magic.
pub fn write_header(out: &mut impl Write) -> io::Result<()> {
    out.write_all(MAGIC)
}

/// Writes one frame.
pub fn write_frame(out: &mut impl Write, frame: &Frame) -> io::Result<()> {
    let (kind, bytes) = match frame {
        Frame::Entry(b) => (KIND_ENTRY, b.as_slice()),
        Frame::Checkpoint(s) => (KIND_CHECKPOINT, s.as_bytes()),
    };
    encode_frame(out, kind, bytes)
}

/// Writes a frame of `kind` around `bytes`.
pub fn encode_frame(out: &mut impl Write, kind: u8, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame too large"))?;
    out.write_all(&[kind])?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// Writes the end frame.
pub fn write_end(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&[KIND_END, 0, 0, 0, 0])
}

/// Reads frames from an export stream.
pub struct Reader<R: Read> {
    inner: R,
    done: bool,
}

impl<R: Read> Reader<R> {
    /// Checks the magic and returns a reader positioned at the first frame.
    pub fn new(mut inner: R) -> Result<Reader<R>, ExportError> {
        let mut magic = [0u8; 24];
        inner.read_exact(&mut magic).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ExportError::BadMagic,
            _ => ExportError::Io(e),
        })?;
        if &magic != MAGIC {
            return Err(ExportError::BadMagic);
        }
        Ok(Reader { inner, done: false })
    }

    /// The next frame, or `None` after the end frame.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ExportError> {
        if self.done {
            return Ok(None);
        }
        let mut head = [0u8; 5];
        self.inner
            .read_exact(&mut head)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => ExportError::Truncated,
                _ => ExportError::Io(e),
            })?;
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if kind == KIND_END {
            self.done = true;
            return Ok(None);
        }
        if kind != KIND_ENTRY && kind != KIND_CHECKPOINT {
            return Err(ExportError::UnknownKind(kind));
        }
        if len > FRAME_BYTES_MAX {
            return Err(ExportError::FrameTooLarge(len));
        }
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => ExportError::Truncated,
                _ => ExportError::Io(e),
            })?;
        Ok(Some(match kind {
            KIND_ENTRY => Frame::Entry(buf),
            _ => Frame::Checkpoint(String::from_utf8(buf).map_err(|_| ExportError::NotUtf8)?),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        write_frame(&mut out, &Frame::Entry(vec![1, 2, 3])).unwrap();
        write_frame(&mut out, &Frame::Checkpoint("x\n".into())).unwrap();
        write_end(&mut out).unwrap();
        let mut r = Reader::new(out.as_slice()).unwrap();
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Entry(vec![1, 2, 3])));
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Checkpoint("x\n".into()))
        );
        assert_eq!(r.next_frame().unwrap(), None);
        let cut = &out[..out.len() - 5];
        let mut r = Reader::new(cut).unwrap();
        r.next_frame().unwrap();
        r.next_frame().unwrap();
        assert!(matches!(r.next_frame(), Err(ExportError::Truncated)));
        assert!(matches!(
            Reader::new(&b"nope"[..]),
            Err(ExportError::BadMagic)
        ));
    }
}
