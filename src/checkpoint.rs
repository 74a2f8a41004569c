//! Signed checkpoints of the ledger's Merkle tree, in the C2SP formats: signed
//! notes (c2sp.org/signed-note, Ed25519), checkpoint bodies
//! (c2sp.org/tlog-checkpoint) carrying the ledger's `head` and `time`
//! extension lines, and witness cosignatures (c2sp.org/tlog-cosignature,
//! Ed25519 `cosignature/v1`).
//!
//! Implements `ledger-spec/checkpoints.md`. Pure: no clock, no I/O; signing
//! and verification go through `crate::crypto`.
//!
//! Verifiers ([`open_note`], [`Checkpoint::parse_body`], [`Checkpoint::open`],
//! [`Checkpoint::open_cosigned`], [`verify_cosignature`],
//! [`NoteVerifier::parse`]) return a [`NoteError`] for any input and never
//! panic. The signing functions take trusted input from this process and
//! panic when it breaks the format (see each `# Panics`); check untrusted
//! input first with [`check_note_text`], [`is_valid_key_name`] or
//! [`Checkpoint::validate`].

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::crypto::{self, Keypair};
use crate::merkle::{empty_root, Hash};

/// The largest note [`open_note`] accepts, in bytes (text and signatures).
pub const MAX_NOTE_BYTES: usize = 128 * 1024;
/// The longest line [`open_note`] accepts, in bytes, without its newline.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// The most signature lines [`open_note`] accepts (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 64;

/// The first two bytes of a signature line: em dash (U+2014) and a space.
const SIG_LINE_PREFIX: &str = "\u{2014} ";
/// Header line of the message an Ed25519 cosigner signs.
const COSIGNATURE_HEADER: &str = "cosignature/v1\n";
/// Length of an Ed25519 signature.
const ED25519_SIG_LEN: usize = 64;
/// Length of a cosignature's `timestamped_signature`: u64 time + Ed25519 signature.
const COSIG_LEN: usize = 8 + ED25519_SIG_LEN;

/// Why a note, a verifier key, a checkpoint or a cosignature was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_BYTES`].
    #[error("note is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The note's length in bytes.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A line is longer than [`MAX_LINE_BYTES`].
    #[error("line {line} is over the {max}-byte limit")]
    LineTooLong {
        /// The line number, from 1.
        line: u64,
        /// The limit.
        max: u64,
    },
    /// The note has more than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: u64,
    },
    /// The text contains an ASCII control character other than newline.
    #[error("note contains a control character other than newline")]
    ControlCharacter,
    /// The text to sign is empty or does not end with a newline.
    #[error("note text is empty or does not end with a newline")]
    TextNotNewlineTerminated,
    /// The note does not have the shape text, blank line, signature lines.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// A key name is empty or contains a space or a plus sign.
    #[error("invalid key name")]
    InvalidKeyName,
    /// A verifier key string is not `<name>+<8 hex key id>+<base64 key>`.
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// A verifier key has a signature type other than 0x01 or 0x04.
    #[error("unsupported key type 0x{0:02x}")]
    UnsupportedKeyType(u8),
    /// No signature from a known key (or, for [`verify_cosignature`], the
    /// line is not from the given witness).
    #[error("no signature from a known key")]
    NoKnownSignature,
    /// A signature whose key name and key id match a known key does not
    /// verify (wrong length or wrong signature).
    #[error("signature by {name} does not verify")]
    BadSignature {
        /// The key name on the signature line.
        name: String,
    },
    /// A cosignature's timestamp is above 2^63 - 1.
    #[error("cosignature by {name} has a timestamp above 2^63-1")]
    CosignatureTimeOutOfRange {
        /// The cosigner's key name.
        name: String,
    },
    /// A verifier of the wrong signature type was given.
    #[error("expected a verifier of type 0x{expected:02x}")]
    WrongKeyType {
        /// The signature type byte required.
        expected: u8,
    },
    /// The note text is not a checkpoint body in the ledger's format.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// The checkpoint's origin is not the log key's name.
    #[error("checkpoint origin {origin:?} is not the log key name {key_name:?}")]
    OriginMismatch {
        /// The checkpoint's origin line.
        origin: String,
        /// The log verifier's key name.
        key_name: String,
    },
    /// Fewer witnesses cosigned than required.
    #[error("{have} valid cosignatures, {need} required")]
    NotEnoughCosignatures {
        /// Distinct known witnesses whose cosignature verified.
        have: u64,
        /// The number required.
        need: u64,
    },
}

/// A signature type of c2sp.org/signed-note that this module speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// 0x01: an Ed25519 signature over the note text (the log's own key).
    Ed25519,
    /// 0x04: a timestamped Ed25519 witness cosignature (`cosignature/v1`).
    CosignatureV1,
}

impl KeyType {
    /// The signature type identifier byte.
    pub fn byte(self) -> u8 {
        match self {
            KeyType::Ed25519 => 0x01,
            KeyType::CosignatureV1 => 0x04,
        }
    }

    /// The type of an identifier byte, if supported.
    pub fn from_byte(byte: u8) -> Option<KeyType> {
        match byte {
            0x01 => Some(KeyType::Ed25519),
            0x04 => Some(KeyType::CosignatureV1),
            _ => None,
        }
    }
}

/// The key id of a key: the first four bytes, big-endian, of
/// `SHA-256(name || 0x0A || type byte || public key)`.
pub fn key_id(name: &str, key_type: KeyType, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', key_type.byte()]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Whether `name` may be a key name (and so a checkpoint origin): non-empty,
/// without Unicode white space, plus signs or ASCII control characters.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < ' ')
}

/// Check that `text` can be signed as a note: non-empty, ending with a
/// newline, no ASCII control character other than newline, within
/// [`MAX_NOTE_BYTES`] and with every line within [`MAX_LINE_BYTES`].
pub fn check_note_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge {
            len: text.len() as u64,
            max: MAX_NOTE_BYTES as u64,
        });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotNewlineTerminated);
    }
    check_chars_and_lines(text, 1)
}

/// Reject control characters other than newline, and lines over the limit.
/// `first_line` numbers the first line of `s` in error reports.
fn check_chars_and_lines(s: &str, first_line: u64) -> Result<(), NoteError> {
    if s.bytes().any(|b| b < b' ' && b != b'\n') {
        return Err(NoteError::ControlCharacter);
    }
    for (i, line) in s.split('\n').enumerate() {
        if line.len() > MAX_LINE_BYTES {
            return Err(NoteError::LineTooLong {
                line: first_line + i as u64,
                max: MAX_LINE_BYTES as u64,
            });
        }
    }
    Ok(())
}

/// A public key trusted to sign notes, with its name and type: what a
/// verifier key string (`vkey`) describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_type: KeyType,
    key_id: u32,
    public_key: [u8; 32],
}

impl NoteVerifier {
    /// A verifier for plain Ed25519 note signatures (type 0x01), such as
    /// the log's checkpoint key (whose name is the checkpoint origin).
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<NoteVerifier, NoteError> {
        NoteVerifier::with_type(name, KeyType::Ed25519, public_key)
    }

    /// A verifier for a witness's `cosignature/v1` cosignatures (type 0x04).
    pub fn new_cosigner(name: &str, public_key: [u8; 32]) -> Result<NoteVerifier, NoteError> {
        NoteVerifier::with_type(name, KeyType::CosignatureV1, public_key)
    }

    /// A verifier of the given signature type.
    pub fn with_type(
        name: &str,
        key_type: KeyType,
        public_key: [u8; 32],
    ) -> Result<NoteVerifier, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_type,
            key_id: key_id(name, key_type, &public_key),
            public_key,
        })
    }

    /// Parse a verifier key string `<name>+<key id as 8 lowercase hex
    /// digits>+<base64(type byte || 32-byte public key)>`; the key id must be
    /// the one computed from the name, type and key.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        // The base64 key may itself contain '+': split at the first two only.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::MalformedVerifierKey(
                "expected three '+'-separated parts",
            ));
        };
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        if id_hex.len() != 8
            || !id_hex
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(NoteError::MalformedVerifierKey(
                "key id is not 8 lowercase hex digits",
            ));
        }
        let id = u32::from_str_radix(id_hex, 16)
            .map_err(|_| NoteError::MalformedVerifierKey("key id is not hex"))?;
        let key = BASE64
            .decode(key_b64)
            .map_err(|_| NoteError::MalformedVerifierKey("key is not canonical base64"))?;
        let Some((&type_byte, public_key)) = key.split_first() else {
            return Err(NoteError::MalformedVerifierKey("empty key"));
        };
        let key_type =
            KeyType::from_byte(type_byte).ok_or(NoteError::UnsupportedKeyType(type_byte))?;
        let public_key: [u8; 32] = public_key
            .try_into()
            .map_err(|_| NoteError::MalformedVerifierKey("public key is not 32 bytes"))?;
        let verifier = NoteVerifier::with_type(name, key_type, public_key)?;
        if verifier.key_id != id {
            return Err(NoteError::MalformedVerifierKey(
                "key id does not match the name and key",
            ));
        }
        Ok(verifier)
    }

    /// The verifier key string (see [`NoteVerifier::parse`]).
    pub fn vkey(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(self.key_type.byte());
        key.extend_from_slice(&self.public_key);
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(key))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// Check one signature's bytes (after the key id) over `text`. Returns
    /// the cosignature time for a cosigner.
    fn check(&self, text: &str, sig: &[u8]) -> Result<Option<u64>, NoteError> {
        let bad = || NoteError::BadSignature {
            name: self.name.clone(),
        };
        match self.key_type {
            KeyType::Ed25519 => {
                let sig: &[u8; ED25519_SIG_LEN] = sig.try_into().map_err(|_| bad())?;
                crypto::verify(&self.public_key, text.as_bytes(), sig).map_err(|_| bad())?;
                Ok(None)
            }
            KeyType::CosignatureV1 => {
                let sig: &[u8; COSIG_LEN] = sig.try_into().map_err(|_| bad())?;
                let (time, sig) = sig.split_at(8);
                let time = u64::from_be_bytes(time.try_into().map_err(|_| bad())?);
                if time > i64::MAX as u64 {
                    return Err(NoteError::CosignatureTimeOutOfRange {
                        name: self.name.clone(),
                    });
                }
                let sig: &[u8; ED25519_SIG_LEN] = sig.try_into().map_err(|_| bad())?;
                let msg = cosigned_message(text, time);
                crypto::verify(&self.public_key, msg.as_bytes(), sig).map_err(|_| bad())?;
                Ok(Some(time))
            }
        }
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.vkey())
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<NoteVerifier, NoteError> {
        NoteVerifier::parse(s)
    }
}

/// The key of a [`NoteSigner`]: borrowed from the caller or owned.
enum SignerKey<'a> {
    Borrowed(&'a Keypair),
    Owned(Box<Keypair>),
}

/// A named Ed25519 key (type 0x01) that signs notes.
pub struct NoteSigner<'a> {
    name: String,
    key: SignerKey<'a>,
}

impl<'a> NoteSigner<'a> {
    /// A signer using the caller's key pair.
    pub fn new(name: &str, keypair: &'a Keypair) -> Result<NoteSigner<'a>, NoteError> {
        NoteSigner::build(name, SignerKey::Borrowed(keypair))
    }

    /// A signer owning the key pair derived from a 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<NoteSigner<'static>, NoteError> {
        NoteSigner::build(name, SignerKey::Owned(Box::new(Keypair::from_seed(seed))))
    }

    fn build<'k>(name: &str, key: SignerKey<'k>) -> Result<NoteSigner<'k>, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName);
        }
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier for this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_type: KeyType::Ed25519,
            key_id: key_id(&self.name, KeyType::Ed25519, &self.keypair().public_key()),
            public_key: self.keypair().public_key(),
        }
    }

    fn keypair(&self) -> &Keypair {
        match &self.key {
            SignerKey::Borrowed(k) => k,
            SignerKey::Owned(k) => k,
        }
    }

    /// One signature line (with its newline) over `text`.
    fn signature_line(&self, text: &str) -> String {
        let kp = self.keypair();
        let mut sig = Vec::with_capacity(4 + ED25519_SIG_LEN);
        sig.extend_from_slice(
            &key_id(&self.name, KeyType::Ed25519, &kp.public_key()).to_be_bytes(),
        );
        sig.extend_from_slice(&kp.sign(text.as_bytes()));
        format!("{SIG_LINE_PREFIX}{} {}\n", self.name, BASE64.encode(sig))
    }
}

impl fmt::Debug for NoteSigner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Sign `text` with every signer: returns the signed note (the text, a blank
/// line, one signature line per signer in order).
///
/// # Panics
///
/// If `text` fails [`check_note_text`] or `signers` is empty.
pub fn sign_note(text: &str, signers: &[NoteSigner<'_>]) -> String {
    if let Err(e) = check_note_text(text) {
        panic!("sign_note: invalid note text: {e}");
    }
    assert!(!signers.is_empty(), "sign_note: no signer");
    let mut note = String::with_capacity(text.len() + 1 + signers.len() * 128);
    note.push_str(text);
    note.push('\n');
    for signer in signers {
        note.push_str(&signer.signature_line(text));
    }
    note
}

/// One signature line of a note that no known key matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name on the line.
    pub name: String,
    /// The key id (first four bytes of the decoded signature).
    pub key_id: u32,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

/// A verified cosignature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name.
    pub name: String,
    /// The witness's key id.
    pub key_id: u32,
    /// When the witness cosigned, in seconds since the Unix epoch.
    pub time_secs: u64,
}

/// A note whose signatures were checked by [`open_note`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The signed text, with its final newline.
    pub text: String,
    /// The names of the known keys whose signature verified, once per key,
    /// in the order of their first signature line.
    pub verified_by: Vec<String>,
    /// The verified cosignatures (from keys of type 0x04), also listed in
    /// `verified_by`.
    pub cosignatures: Vec<Cosignature>,
    /// Signatures from unknown keys: kept, not verified, not trusted.
    pub other_signatures: Vec<NoteSignature>,
}

/// Parse one signature line (without its newline).
fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let rest = line
        .strip_prefix(SIG_LINE_PREFIX)
        .ok_or(NoteError::Malformed(
            "signature line does not start with an em dash and a space",
        ))?;
    let (name, sig_b64) = rest.split_once(' ').ok_or(NoteError::Malformed(
        "signature line has no space after the key name",
    ))?;
    if !is_valid_key_name(name) {
        return Err(NoteError::InvalidKeyName);
    }
    let sig = BASE64
        .decode(sig_b64)
        .map_err(|_| NoteError::Malformed("signature is not canonical base64"))?;
    if sig.len() < 5 {
        return Err(NoteError::Malformed("signature is shorter than 5 bytes"));
    }
    let (id, signature) = sig.split_at(4);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
        signature: signature.to_vec(),
    })
}

/// Split a note into its text and parsed signature lines, enforcing the
/// format and the limits.
fn parse_note(note: &str) -> Result<(&str, Vec<NoteSignature>), NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge {
            len: note.len() as u64,
            max: MAX_NOTE_BYTES as u64,
        });
    }
    check_chars_and_lines(note, 1)?;
    // The text ends at the last blank line; it keeps its own final newline.
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sig_block) = (&note[..split + 1], &note[split + 2..]);
    let sig_lines = sig_block.strip_suffix('\n').ok_or(NoteError::Malformed(
        "no signature line, or no final newline",
    ))?;
    let mut sigs = Vec::new();
    for line in sig_lines.split('\n') {
        if sigs.len() == MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES as u64,
            });
        }
        sigs.push(parse_signature_line(line)?);
    }
    Ok((text, sigs))
}

/// Open a note with the given trusted keys. Returns the verified note and,
/// for each verifier, whether one of its signatures verified.
fn open_with(
    note: &str,
    verifiers: &[NoteVerifier],
) -> Result<(VerifiedNote, Vec<bool>), NoteError> {
    let (text, sigs) = parse_note(note)?;
    let mut verified = vec![false; verifiers.len()];
    let mut out = VerifiedNote {
        text: text.to_owned(),
        verified_by: Vec::new(),
        cosignatures: Vec::new(),
        other_signatures: Vec::new(),
    };
    for sig in sigs {
        let mut matched: Option<(usize, Option<u64>)> = None;
        let mut first_err = None;
        for (i, v) in verifiers.iter().enumerate() {
            if v.name != sig.name || v.key_id != sig.key_id {
                continue;
            }
            match v.check(text, &sig.signature) {
                Ok(time) => {
                    matched = Some((i, time));
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (matched, first_err) {
            (Some((i, time)), _) => {
                if !verified[i] {
                    verified[i] = true;
                    out.verified_by.push(sig.name.clone());
                    if let Some(time_secs) = time {
                        out.cosignatures.push(Cosignature {
                            name: sig.name,
                            key_id: sig.key_id,
                            time_secs,
                        });
                    }
                }
            }
            // A known key whose signature does not verify: reject the note.
            (None, Some(err)) => return Err(err),
            (None, None) => out.other_signatures.push(sig),
        }
    }
    if out.verified_by.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok((out, verified))
}

/// Verify a signed note against trusted keys (of either type).
///
/// Rejects a malformed note (see [`MAX_NOTE_BYTES`], [`MAX_LINE_BYTES`],
/// [`MAX_SIGNATURES`]), a note with any signature that matches a known key
/// by name and key id but does not verify, and a note with no verified
/// signature from a known key. Signatures from other keys are kept in
/// [`VerifiedNote::other_signatures`] and not trusted.
pub fn open_note(note: &str, verifiers: &[NoteVerifier]) -> Result<VerifiedNote, NoteError> {
    open_with(note, verifiers).map(|(n, _)| n)
}

/// The message an Ed25519 cosigner signs for a note text at `time_secs`.
fn cosigned_message(body: &str, time_secs: u64) -> String {
    format!("{COSIGNATURE_HEADER}time {time_secs}\n{body}")
}

/// A witness's `cosignature/v1` over a checkpoint body at `time_secs`
/// (seconds since the Unix epoch): one signature line, with its newline, to
/// append to the signed checkpoint.
///
/// # Panics
///
/// If `checkpoint_body` fails [`check_note_text`], `witness_name` is not a
/// valid key name, or `time_secs` is above 2^63 - 1.
pub fn cosign(checkpoint_body: &str, witness_name: &str, kp: &Keypair, time_secs: u64) -> String {
    if let Err(e) = check_note_text(checkpoint_body) {
        panic!("cosign: invalid checkpoint body: {e}");
    }
    assert!(
        is_valid_key_name(witness_name),
        "cosign: invalid witness name"
    );
    assert!(time_secs <= i64::MAX as u64, "cosign: time above 2^63-1");
    let public_key = kp.public_key();
    let mut sig = Vec::with_capacity(4 + COSIG_LEN);
    sig.extend_from_slice(&key_id(witness_name, KeyType::CosignatureV1, &public_key).to_be_bytes());
    sig.extend_from_slice(&time_secs.to_be_bytes());
    sig.extend_from_slice(&kp.sign(cosigned_message(checkpoint_body, time_secs).as_bytes()));
    format!("{SIG_LINE_PREFIX}{witness_name} {}\n", BASE64.encode(sig))
}

/// Verify one cosignature line (as [`cosign`] returns it; the final newline
/// may be left off) by `witness` over `checkpoint_body`. Returns the
/// cosignature's time in seconds.
pub fn verify_cosignature(
    checkpoint_body: &str,
    signature_line: &str,
    witness: &NoteVerifier,
) -> Result<u64, NoteError> {
    if witness.key_type != KeyType::CosignatureV1 {
        return Err(NoteError::WrongKeyType {
            expected: KeyType::CosignatureV1.byte(),
        });
    }
    check_note_text(checkpoint_body)?;
    let line = signature_line.strip_suffix('\n').unwrap_or(signature_line);
    if line.len() > MAX_LINE_BYTES {
        return Err(NoteError::LineTooLong {
            line: 1,
            max: MAX_LINE_BYTES as u64,
        });
    }
    if line.bytes().any(|b| b < b' ') {
        return Err(NoteError::ControlCharacter);
    }
    let sig = parse_signature_line(line)?;
    if sig.name != witness.name || sig.key_id != witness.key_id {
        return Err(NoteError::NoKnownSignature);
    }
    witness
        .check(checkpoint_body, &sig.signature)?
        .ok_or(NoteError::WrongKeyType {
            expected: KeyType::CosignatureV1.byte(),
        })
}

/// A checkpoint of the ledger: the tree head at `size`, bound to the hash
/// chain by `head`, signed as a note whose text is [`Checkpoint::body`].
///
/// A tree of size 0 has no last entry: its `head` is all zeros and its
/// `root` is [`empty_root`]. (The ledger never serves it: entry 0 always
/// exists.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity: the chain id. Also the log key's name.
    pub origin: String,
    /// The number of entries (leaves) in the tree.
    pub size: u64,
    /// The RFC 9162 root of the tree of `size` entries.
    pub root: Hash,
    /// The entry hash of entry `size - 1`.
    pub head: Hash,
    /// When the log signed the checkpoint, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// Parse an ASCII decimal u64 with no sign and no leading zero.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

impl Checkpoint {
    /// The note text: origin, size, base64 root, `head <hex>`, `time <ms>`,
    /// each line ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\nhead {}\ntime {}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root),
            hex::encode(self.head),
            self.time_ms
        )
    }

    /// Check that the checkpoint can be signed: its body parses back to it
    /// (valid origin; for size 0, the empty root and an all-zero head).
    pub fn validate(&self) -> Result<(), NoteError> {
        if Checkpoint::parse_body(&self.body())? != *self {
            return Err(NoteError::MalformedCheckpoint("body does not round-trip"));
        }
        Ok(())
    }

    /// Parse a checkpoint body, strictly: exactly the five lines of
    /// [`Checkpoint::body`], each newline-terminated; the origin a valid key
    /// name; size and time in decimal without leading zeros; the root in
    /// canonical base64 of 32 bytes; the head as 64 lowercase hex digits; a
    /// size-0 checkpoint with the empty root and an all-zero head.
    pub fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let lines = body
            .strip_suffix('\n')
            .ok_or(NoteError::MalformedCheckpoint("no final newline"))?;
        let mut it = lines.split('\n');
        let (Some(origin), Some(size), Some(root), Some(head), Some(time), None) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            return Err(NoteError::MalformedCheckpoint(
                "expected exactly five lines",
            ));
        };
        if !is_valid_key_name(origin) {
            return Err(NoteError::MalformedCheckpoint(
                "origin is not a valid key name",
            ));
        }
        let size = parse_decimal(size).ok_or(NoteError::MalformedCheckpoint(
            "tree size is not canonical decimal",
        ))?;
        let root: Hash = BASE64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::MalformedCheckpoint(
                "root is not base64 of 32 bytes",
            ))?;
        let head: Hash = head
            .strip_prefix("head ")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .and_then(|h| hex::decode(h).ok())
            .and_then(|h| h.try_into().ok())
            .ok_or(NoteError::MalformedCheckpoint(
                "expected 'head ' and 64 lowercase hex digits",
            ))?;
        let time_ms = time.strip_prefix("time ").and_then(parse_decimal).ok_or(
            NoteError::MalformedCheckpoint("expected 'time ' and canonical decimal"),
        )?;
        if size == 0 && (root != empty_root() || head != [0; 32]) {
            return Err(NoteError::MalformedCheckpoint(
                "size 0 needs the empty root and an all-zero head",
            ));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            head,
            time_ms,
        })
    }

    /// The signed note of this checkpoint, signed by the log key `kp` under
    /// `key_name` (by convention the origin).
    ///
    /// # Panics
    ///
    /// If [`Checkpoint::validate`] fails or `key_name` is not a valid key name.
    pub fn sign(&self, key_name: &str, kp: &Keypair) -> String {
        if let Err(e) = self.validate() {
            panic!("Checkpoint::sign: {e}");
        }
        match NoteSigner::new(key_name, kp) {
            Ok(signer) => sign_note(&self.body(), &[signer]),
            Err(e) => panic!("Checkpoint::sign: {e}"),
        }
    }

    /// Open a signed checkpoint: the note must carry a valid signature by the
    /// log key `verifier`, whose name must equal the checkpoint's origin, and
    /// its text must parse with [`Checkpoint::parse_body`].
    pub fn open(
        note: &str,
        verifier: &NoteVerifier,
    ) -> Result<(Checkpoint, VerifiedNote), NoteError> {
        Checkpoint::open_cosigned(note, verifier, &[], 0)
    }

    /// Like [`Checkpoint::open`], and also require valid cosignatures from at
    /// least `require_cosignatures` distinct witnesses among `witnesses`.
    /// A witness signature that matches a known witness key but does not
    /// verify rejects the note.
    pub fn open_cosigned(
        note: &str,
        log: &NoteVerifier,
        witnesses: &[NoteVerifier],
        require_cosignatures: usize,
    ) -> Result<(Checkpoint, VerifiedNote), NoteError> {
        let mut verifiers = Vec::with_capacity(1 + witnesses.len());
        verifiers.push(log.clone());
        verifiers.extend_from_slice(witnesses);
        let (verified_note, verified) = open_with(note, &verifiers)?;
        if !verified[0] {
            return Err(NoteError::NoKnownSignature);
        }
        let checkpoint = Checkpoint::parse_body(&verified_note.text)?;
        if checkpoint.origin != log.name {
            return Err(NoteError::OriginMismatch {
                origin: checkpoint.origin,
                key_name: log.name.clone(),
            });
        }
        let have = verified[1..].iter().filter(|&&v| v).count();
        if have < require_cosignatures {
            return Err(NoteError::NotEnoughCosignatures {
                have: have as u64,
                need: require_cosignatures as u64,
            });
        }
        Ok((checkpoint, verified_note))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of `ledger-spec/checkpoints.md`: key seed [7; 32].
    const EXAMPLE_VKEY: &str =
        "points.example/test+8b948c4a+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs";
    const EXAMPLE_NOTE: &str = "points.example/test\n\
        8\n\
        XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\
        head abababababababababababababababababababababababababababababababab\n\
        time 1767225600000\n\
        \n\
        \u{2014} points.example/test i5SMShAg1iS9N6pODOIWYBvr+ptbiDc/0794OOWMuMnYmc67/bJjSDyobFLDE3UTvd4eVWPjApos5IrrfLjZ+jXPcA8=\n";
    /// The spec's example witness: key seed [9; 32], cosigning at 1767225601.
    const EXAMPLE_WITNESS_VKEY: &str =
        "witness.example/w1+24b5d9fe+BP0XJDhaoMdbZPt4zWAvodmR/ev3axPFjtcC6sg16fYY";
    const EXAMPLE_COSIGNATURE: &str = "\u{2014} witness.example/w1 JLXZ/gAAAABpVbkB1JX1d3L/xDRbopGOjvh/Ooo4qwZQHqbkdSxnQ8rbrHSoVhCR8grm0xte+6QVXD/sKvQtmxYEzMyKbn12ou5DDw==\n";

    const SPEC_EXAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/c2sp-signed-note/example.json"
    );

    fn example_checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "points.example/test".into(),
            size: 8,
            // The root of RFC 6962's 8 test leaves.
            root: hex::decode("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
                .unwrap()
                .try_into()
                .unwrap(),
            head: [0xab; 32],
            time_ms: 1767225600000,
        }
    }

    fn log_key() -> Keypair {
        Keypair::from_seed([7; 32])
    }

    fn witness_key(n: u8) -> Keypair {
        Keypair::from_seed([n; 32])
    }

    fn witness(n: u8) -> NoteVerifier {
        NoteVerifier::new_cosigner(
            &format!("witness.example/w{n}"),
            witness_key(n).public_key(),
        )
        .unwrap()
    }

    /// A small deterministic generator (splitmix64) for the mutation test.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % n as u64) as usize
        }
    }

    // ---- the c2sp.org/signed-note spec example ----

    #[test]
    fn c2sp_signed_note_spec_example() {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(SPEC_EXAMPLE).unwrap()).unwrap();
        let (vkey, note, text) = (
            v["vkey"].as_str().unwrap(),
            v["note"].as_str().unwrap(),
            v["text"].as_str().unwrap(),
        );
        let verifier = NoteVerifier::parse(vkey).unwrap();
        assert_eq!(verifier.name(), "example.com/foo");
        assert_eq!(verifier.key_type(), KeyType::Ed25519);
        assert_eq!(
            format!("{:08x}", verifier.key_id()),
            v["key_id_hex"].as_str().unwrap()
        );
        assert_eq!(verifier.vkey(), vkey);
        let opened = open_note(note, std::slice::from_ref(&verifier)).unwrap();
        assert_eq!(opened.text, text);
        assert_eq!(opened.verified_by, ["example.com/foo"]);
        assert!(opened.other_signatures.is_empty());

        // Flipping any byte of the text fails.
        for i in 0..text.len() {
            for mask in [0x01, 0x20] {
                let mut bytes = note.as_bytes().to_vec();
                bytes[i] ^= mask;
                let mutated = String::from_utf8(bytes).unwrap();
                assert!(
                    open_note(&mutated, std::slice::from_ref(&verifier)).is_err(),
                    "text byte {i} ^ {mask:#x}"
                );
            }
        }
        // Flipping any character of the base64 signature fails.
        let sig_start = note.rfind(' ').unwrap() + 1;
        for i in sig_start..note.len() - 1 {
            let mut bytes = note.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            let mutated = String::from_utf8(bytes).unwrap();
            assert!(open_note(&mutated, std::slice::from_ref(&verifier)).is_err());
        }
        // Flipping any byte of the decoded key id or signature fails.
        let sig = BASE64.decode(&note[sig_start..note.len() - 1]).unwrap();
        assert_eq!(sig.len(), 68);
        for i in 0..sig.len() {
            let mut bad = sig.clone();
            bad[i] ^= 0x01;
            let mutated = format!("{}{}\n", &note[..sig_start], BASE64.encode(&bad));
            let err = open_note(&mutated, std::slice::from_ref(&verifier)).unwrap_err();
            if i < 4 {
                // Another key id: a signature from an unknown key.
                assert_eq!(err, NoteError::NoKnownSignature);
            } else {
                assert_eq!(
                    err,
                    NoteError::BadSignature {
                        name: "example.com/foo".into()
                    }
                );
            }
        }
    }

    // ---- the ledger-spec example checkpoint and cosignature ----

    #[test]
    fn spec_example_checkpoint_is_reproduced() {
        let cp = example_checkpoint();
        let kp = log_key();
        assert_eq!(cp.sign(&cp.origin, &kp), EXAMPLE_NOTE);
        let verifier = NoteVerifier::new(&cp.origin, kp.public_key()).unwrap();
        assert_eq!(verifier.vkey(), EXAMPLE_VKEY);
        let (opened, note) =
            Checkpoint::open(EXAMPLE_NOTE, &EXAMPLE_VKEY.parse().unwrap()).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(note.text, cp.body());
        assert_eq!(note.verified_by, ["points.example/test"]);
    }

    #[test]
    fn spec_example_cosignature_is_reproduced() {
        let cp = example_checkpoint();
        let line = cosign(
            &cp.body(),
            "witness.example/w1",
            &witness_key(9),
            1767225601,
        );
        assert_eq!(line, EXAMPLE_COSIGNATURE);
        let w: NoteVerifier = EXAMPLE_WITNESS_VKEY.parse().unwrap();
        assert_eq!(
            w,
            NoteVerifier::new_cosigner("witness.example/w1", witness_key(9).public_key()).unwrap()
        );
        assert_eq!(w.key_type(), KeyType::CosignatureV1);
        assert_eq!(verify_cosignature(&cp.body(), &line, &w), Ok(1767225601));
        assert_eq!(
            verify_cosignature(&cp.body(), line.trim_end(), &w),
            Ok(1767225601)
        );

        let cosigned = format!("{EXAMPLE_NOTE}{line}");
        let log: NoteVerifier = EXAMPLE_VKEY.parse().unwrap();
        let (opened, note) =
            Checkpoint::open_cosigned(&cosigned, &log, std::slice::from_ref(&w), 1).unwrap();
        assert_eq!(opened, cp);
        assert_eq!(
            note.verified_by,
            ["points.example/test", "witness.example/w1"]
        );
        assert_eq!(
            note.cosignatures,
            [Cosignature {
                name: "witness.example/w1".into(),
                key_id: 0x24b5d9fe,
                time_secs: 1767225601
            }]
        );
        // Without the witness key, its line is an unknown signature.
        let (_, plain) = Checkpoint::open(&cosigned, &log).unwrap();
        assert_eq!(plain.verified_by, ["points.example/test"]);
        assert_eq!(plain.other_signatures.len(), 1);
        assert_eq!(plain.other_signatures[0].key_id, 0x24b5d9fe);
        assert_eq!(plain.other_signatures[0].signature.len(), 72);
    }

    #[test]
    fn spec_file_shows_these_examples() {
        let spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ledger-spec/checkpoints.md"
        ))
        .unwrap();
        assert!(spec.contains(&format!("```\n{EXAMPLE_NOTE}```")));
        assert!(spec.contains(&format!("```\n{EXAMPLE_COSIGNATURE}```")));
        assert!(spec.contains(&format!("```\n{EXAMPLE_VKEY}\n```")));
        assert!(spec.contains(&format!("```\n{EXAMPLE_WITNESS_VKEY}\n```")));
        let message = cosigned_message(&example_checkpoint().body(), 1767225601);
        assert!(spec.contains(&format!("```\n{message}```")));
    }

    // ---- signed notes ----

    #[test]
    fn notes_round_trip_with_several_signers() {
        let (k1, k2) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let s1 = NoteSigner::new("a.example/one", &k1).unwrap();
        let s2 = NoteSigner::from_seed("b.example/two", [2; 32]).unwrap();
        let text = "hello\n\nworld with an empty line above\n";
        let note = sign_note(text, &[s1, s2]);
        assert!(note.starts_with(text));
        let v1 = NoteVerifier::new("a.example/one", k1.public_key()).unwrap();
        let v2 = NoteVerifier::new("b.example/two", k2.public_key()).unwrap();

        let both = open_note(&note, &[v2.clone(), v1.clone()]).unwrap();
        assert_eq!(both.text, text);
        assert_eq!(both.verified_by, ["a.example/one", "b.example/two"]);
        assert!(both.other_signatures.is_empty());

        let one = open_note(&note, std::slice::from_ref(&v1)).unwrap();
        assert_eq!(one.verified_by, ["a.example/one"]);
        assert_eq!(one.other_signatures.len(), 1);
        assert_eq!(one.other_signatures[0].name, "b.example/two");
        assert_eq!(one.other_signatures[0].key_id, v2.key_id());

        // Same name, other key (so other id): unknown, ignored.
        let impostor = NoteVerifier::new("b.example/two", k1.public_key()).unwrap();
        assert_eq!(
            open_note(&note, std::slice::from_ref(&impostor)),
            Err(NoteError::NoKnownSignature)
        );
        assert_eq!(open_note(&note, &[]), Err(NoteError::NoKnownSignature));
        // A cosigner key of the same name and key is another key id.
        let as_cosigner = NoteVerifier::new_cosigner("a.example/one", k1.public_key()).unwrap();
        assert_ne!(as_cosigner.key_id(), v1.key_id());
        assert_eq!(
            open_note(&note, &[as_cosigner]),
            Err(NoteError::NoKnownSignature)
        );
        // Text of a single empty line is still a text.
        let s1 = NoteSigner::new("a.example/one", &k1).unwrap();
        let empty = sign_note("\n", &[s1]);
        assert_eq!(open_note(&empty, &[v1]).unwrap().text, "\n");
    }

    #[test]
    fn a_bad_signature_from_a_known_key_rejects_the_note() {
        let k1 = Keypair::from_seed([1; 32]);
        let s1 = NoteSigner::new("a.example/one", &k1).unwrap();
        let s2 = NoteSigner::from_seed("b.example/two", [2; 32]).unwrap();
        let v1 = s1.verifier();
        let v2 = s2.verifier();
        let note = sign_note("text\n", &[s1, s2]);
        // Replace b's signature with its signature over another text.
        let other = sign_note(
            "other\n",
            &[NoteSigner::from_seed("b.example/two", [2; 32]).unwrap()],
        );
        let b_line = other.lines().last().unwrap();
        let forged = format!("{}{b_line}\n", &note[..note.rfind('\u{2014}').unwrap()]);
        assert!(open_note(&forged, std::slice::from_ref(&v1)).is_ok());
        assert_eq!(
            open_note(&forged, &[v1, v2]),
            Err(NoteError::BadSignature {
                name: "b.example/two".into()
            })
        );
    }

    #[test]
    fn a_signature_of_the_wrong_length_from_a_known_key_is_bad() {
        let v =
            NoteVerifier::new("a.example/one", Keypair::from_seed([1; 32]).public_key()).unwrap();
        let mut sig = v.key_id().to_be_bytes().to_vec();
        sig.extend_from_slice(&[0; 63]);
        let note = format!("t\n\n\u{2014} a.example/one {}\n", BASE64.encode(&sig));
        assert_eq!(
            open_note(&note, &[v]),
            Err(NoteError::BadSignature {
                name: "a.example/one".into()
            })
        );
    }

    #[test]
    fn duplicate_signatures_count_once() {
        let s = NoteSigner::from_seed("a.example/one", [1; 32]).unwrap();
        let v = s.verifier();
        let note = sign_note("t\n", &[s]);
        let line = &note[3..];
        let doubled = format!("{note}{line}");
        let opened = open_note(&doubled, &[v.clone(), v]).unwrap();
        assert_eq!(opened.verified_by, ["a.example/one"]);
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let s = NoteSigner::from_seed("a.example/one", [1; 32]).unwrap();
        let v = s.verifier();
        let good = sign_note("line one\nline two\n", &[s]);
        let sig_line = &good[good.find('\u{2014}').unwrap()..];
        let sig_b64 = sig_line.trim_end().rsplit(' ').next().unwrap();
        let cases: Vec<(String, NoteError)> = vec![
            (
                String::new(),
                NoteError::Malformed("no blank line before the signatures"),
            ),
            (
                "line one\nline two\n".into(),
                NoteError::Malformed("no blank line before the signatures"),
            ),
            (
                good.replace("\n\n", "\n"),
                NoteError::Malformed("no blank line before the signatures"),
            ),
            (
                "line one\n\n".into(),
                NoteError::Malformed("no signature line, or no final newline"),
            ),
            (
                good.trim_end_matches('\n').into(),
                NoteError::Malformed("no signature line, or no final newline"),
            ),
            (
                format!("{good}\n"),
                NoteError::Malformed("no signature line, or no final newline"),
            ),
            (
                format!("{good}{sig_line}\n"),
                NoteError::Malformed("no signature line, or no final newline"),
            ),
            (
                good.replace('\u{2014}', "-"),
                NoteError::Malformed("signature line does not start with an em dash and a space"),
            ),
            (
                good.replace("\u{2014} ", "\u{2014}  "),
                NoteError::InvalidKeyName,
            ),
            (
                good.replace(" a.example/one ", " a.example/one  "),
                NoteError::Malformed("signature is not canonical base64"),
            ),
            (
                good.replace(sig_b64, &sig_b64[..sig_b64.len() - 1]),
                NoteError::Malformed("signature is not canonical base64"),
            ),
            (
                good.replace(sig_b64, "AAAAAA=="),
                NoteError::Malformed("signature is shorter than 5 bytes"),
            ),
            (
                good.replace("a.example/one", "a.example+one"),
                NoteError::InvalidKeyName,
            ),
            (
                good.replace("line one", "line\tone"),
                NoteError::ControlCharacter,
            ),
            (good.replace("\n", "\r\n"), NoteError::ControlCharacter),
            (format!("{good}\0"), NoteError::ControlCharacter),
            (
                format!("{}{}", "x".repeat(MAX_LINE_BYTES + 1), &good[8..]),
                NoteError::LineTooLong {
                    line: 1,
                    max: MAX_LINE_BYTES as u64,
                },
            ),
            (
                format!("{}{good}", "x\n".repeat(MAX_NOTE_BYTES / 2)),
                NoteError::TooLarge {
                    len: (MAX_NOTE_BYTES + good.len()) as u64,
                    max: MAX_NOTE_BYTES as u64,
                },
            ),
        ];
        for (note, want) in cases {
            assert_eq!(
                open_note(&note, std::slice::from_ref(&v)),
                Err(want),
                "{note:?}"
            );
        }
        // Base64 with non-zero padding bits is not canonical: 67 bytes end
        // in "XY==", where the low four bits of Y are padding.
        let mut sig = BASE64.decode(sig_b64).unwrap();
        sig.truncate(67);
        let mut loose = BASE64.encode(&sig).into_bytes();
        let y = loose.len() - 3;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let pos = alphabet.iter().position(|&c| c == loose[y]).unwrap();
        loose[y] = alphabet[pos ^ 1];
        let loose = String::from_utf8(loose).unwrap();
        assert_eq!(
            open_note(&good.replace(sig_b64, &loose), &[v]),
            Err(NoteError::Malformed("signature is not canonical base64"))
        );
    }

    #[test]
    fn signature_count_limit() {
        let s = NoteSigner::from_seed("a.example/one", [1; 32]).unwrap();
        let v = s.verifier();
        let note = sign_note("t\n", &[s]);
        let unknown = format!("\u{2014} other.example/x {}\n", BASE64.encode([7u8; 68]));
        let at_limit = format!("{note}{}", unknown.repeat(MAX_SIGNATURES - 1));
        let opened = open_note(&at_limit, std::slice::from_ref(&v)).unwrap();
        assert_eq!(opened.other_signatures.len(), MAX_SIGNATURES - 1);
        let over = format!("{at_limit}{unknown}");
        assert_eq!(
            open_note(&over, &[v]),
            Err(NoteError::TooManySignatures {
                max: MAX_SIGNATURES as u64
            })
        );
    }

    #[test]
    fn note_text_rules() {
        assert_eq!(check_note_text("a\n"), Ok(()));
        assert_eq!(
            check_note_text(""),
            Err(NoteError::TextNotNewlineTerminated)
        );
        assert_eq!(
            check_note_text("a"),
            Err(NoteError::TextNotNewlineTerminated)
        );
        assert_eq!(
            check_note_text("a\u{7}\n"),
            Err(NoteError::ControlCharacter)
        );
        for name in [
            "",
            "a b",
            "a+b",
            "a\u{a0}b",
            "a\u{3000}b",
            "a\nb",
            "a\u{1}b",
        ] {
            assert!(!is_valid_key_name(name), "{name:?}");
            assert_eq!(
                NoteSigner::from_seed(name, [1; 32]).unwrap_err(),
                NoteError::InvalidKeyName
            );
        }
        assert!(is_valid_key_name("example.com/ünïcode-ok"));
    }

    #[test]
    #[should_panic(expected = "invalid note text")]
    fn signing_text_without_final_newline_panics() {
        let s = NoteSigner::from_seed("a.example/one", [1; 32]).unwrap();
        sign_note("no newline", &[s]);
    }

    #[test]
    fn verifier_keys() {
        let pk = Keypair::from_seed([3; 32]).public_key();
        let v = NoteVerifier::new("k.example/3", pk).unwrap();
        assert_eq!(NoteVerifier::parse(&v.vkey()), Ok(v.clone()));
        assert_eq!(v.to_string(), v.vkey());
        assert_eq!(v.public_key(), &pk);
        let vkey = v.vkey();
        let id = format!("{:08x}", v.key_id());
        let mut key33 = vec![0x01];
        key33.extend_from_slice(&pk);
        let mut type2 = key33.clone();
        type2[0] = 0x02;
        let bad_id = format!("{:08x}", v.key_id() ^ 1);
        let cases = [
            (
                "k.example/3".to_string(),
                NoteError::MalformedVerifierKey("expected three '+'-separated parts"),
            ),
            (
                // The key part may hold '+' (base64), so extra text lands in it.
                format!("{vkey}+extra"),
                NoteError::MalformedVerifierKey("key is not canonical base64"),
            ),
            (
                vkey.replace(&id, &id.to_uppercase()),
                NoteError::MalformedVerifierKey("key id is not 8 lowercase hex digits"),
            ),
            (
                vkey.replace(&id, &id[1..]),
                NoteError::MalformedVerifierKey("key id is not 8 lowercase hex digits"),
            ),
            (
                vkey.replace(&id, &bad_id),
                NoteError::MalformedVerifierKey("key id does not match the name and key"),
            ),
            (
                vkey.replace("k.example/3", "k.example/4"),
                NoteError::MalformedVerifierKey("key id does not match the name and key"),
            ),
            (
                vkey.replace("k.example/3", "k example/3"),
                NoteError::InvalidKeyName,
            ),
            (
                format!("k.example/3+{id}+{}", BASE64.encode(&type2)),
                NoteError::UnsupportedKeyType(0x02),
            ),
            (
                format!("k.example/3+{id}+{}", BASE64.encode(&key33[..32])),
                NoteError::MalformedVerifierKey("public key is not 32 bytes"),
            ),
            (
                format!("k.example/3+{id}+"),
                NoteError::MalformedVerifierKey("empty key"),
            ),
            (
                format!("k.example/3+{id}+{}", &BASE64.encode(&key33)[..43]),
                NoteError::MalformedVerifierKey("key is not canonical base64"),
            ),
        ];
        for (vkey, want) in cases {
            assert_eq!(NoteVerifier::parse(&vkey), Err(want), "{vkey}");
        }
    }

    // ---- checkpoint bodies ----

    #[test]
    fn checkpoint_bodies_parse_strictly() {
        let cp = example_checkpoint();
        let body = cp.body();
        assert_eq!(Checkpoint::parse_body(&body), Ok(cp.clone()));
        assert_eq!(cp.validate(), Ok(()));
        let root = BASE64.encode(cp.root);
        let head = hex::encode(cp.head);
        let bad = [
            body.trim_end().to_string(),
            format!("{body}extra\n"),
            format!("{body}\n"),
            body.replacen("head ", "time ", 1),
            body.replace("\ntime", "\nhead"),
            body.replace("time ", "time"),
            body.replace("time ", "time  "),
            body.replace("1767225600000", "01767225600000"),
            body.replace("1767225600000", "+1767225600000"),
            body.replace("1767225600000", "18446744073709551616"),
            body.replace("\n8\n", "\n08\n"),
            body.replace("\n8\n", "\n\n"),
            body.replace("\n8\n", "\n-8\n"),
            body.replace("\n8\n", "\n8 \n"),
            body.replace(&root, &root.replace('=', "")),
            body.replace(&root, &BASE64.encode([1u8; 31])),
            body.replace(&root, &hex::encode(cp.root)),
            body.replace(&head, &head.to_uppercase()),
            body.replace(&head, &head[2..]),
            body.replace(&head, &format!("{head}ab")),
            body.replace(&head, &BASE64.encode(cp.head)),
            body.replace("points.example/test", "points example"),
            body.replace("points.example/test", ""),
            body.replace('\n', "\r\n"),
            body.replace("head", "Head"),
            String::new(),
            "\n".into(),
        ];
        for b in &bad {
            assert!(Checkpoint::parse_body(b).is_err(), "{b:?}");
        }
        // Size 0: the empty root and an all-zero head, nothing else.
        let zero = Checkpoint {
            size: 0,
            root: empty_root(),
            head: [0; 32],
            ..cp.clone()
        };
        assert_eq!(Checkpoint::parse_body(&zero.body()), Ok(zero.clone()));
        for bad_zero in [
            Checkpoint {
                head: [1; 32],
                ..zero.clone()
            },
            Checkpoint {
                root: cp.root,
                ..zero.clone()
            },
        ] {
            assert!(Checkpoint::parse_body(&bad_zero.body()).is_err());
            assert!(bad_zero.validate().is_err());
        }
        let bad_origin = Checkpoint {
            origin: "two\nlines".into(),
            ..cp.clone()
        };
        assert!(bad_origin.validate().is_err());
        let max = Checkpoint {
            size: u64::MAX,
            time_ms: u64::MAX,
            ..cp
        };
        assert_eq!(Checkpoint::parse_body(&max.body()), Ok(max));
    }

    #[test]
    fn opening_checkpoints() {
        let cp = example_checkpoint();
        let kp = log_key();
        let log = NoteVerifier::new(&cp.origin, kp.public_key()).unwrap();
        let other_log = NoteVerifier::new(&cp.origin, witness_key(3).public_key()).unwrap();
        assert_eq!(
            Checkpoint::open(EXAMPLE_NOTE, &other_log),
            Err(NoteError::NoKnownSignature)
        );
        // Signed by the right key under another name: origin mismatch.
        let renamed = cp.sign("points.example/other", &kp);
        let renamed_log = NoteVerifier::new("points.example/other", kp.public_key()).unwrap();
        assert!(Checkpoint::open(&renamed, &log).is_err());
        assert_eq!(
            Checkpoint::open(&renamed, &renamed_log),
            Err(NoteError::OriginMismatch {
                origin: "points.example/test".into(),
                key_name: "points.example/other".into()
            })
        );
        // A correctly signed note that is not a checkpoint.
        let not_cp = sign_note(
            "points.example/test\n8\n",
            &[NoteSigner::new(&cp.origin, &kp).unwrap()],
        );
        assert_eq!(
            Checkpoint::open(&not_cp, &log),
            Err(NoteError::MalformedCheckpoint(
                "expected exactly five lines"
            ))
        );
    }

    // ---- cosignatures ----

    #[test]
    fn cosignatures_are_counted() {
        let cp = example_checkpoint();
        let body = cp.body();
        let log = NoteVerifier::new(&cp.origin, log_key().public_key()).unwrap();
        let witnesses: Vec<NoteVerifier> = (1..=4).map(witness).collect();
        let mut note = EXAMPLE_NOTE.to_string();
        for n in 1..=3u8 {
            let line = cosign(
                &body,
                &format!("witness.example/w{n}"),
                &witness_key(n),
                1767225600 + u64::from(n),
            );
            note.push_str(&line);
        }
        // A cosignature from a witness nobody configured.
        note.push_str(&cosign(&body, "stranger.example/w", &witness_key(42), 1));

        for need in 0..=3 {
            let (_, v) = Checkpoint::open_cosigned(&note, &log, &witnesses, need).unwrap();
            assert_eq!(v.cosignatures.len(), 3);
            assert_eq!(v.other_signatures.len(), 1);
        }
        assert_eq!(
            Checkpoint::open_cosigned(&note, &log, &witnesses, 4),
            Err(NoteError::NotEnoughCosignatures { have: 3, need: 4 })
        );
        assert_eq!(
            Checkpoint::open_cosigned(&note, &log, &witnesses[..1], 2),
            Err(NoteError::NotEnoughCosignatures { have: 1, need: 2 })
        );
        // Listing a witness twice does not count it twice.
        let twice = [witness(1), witness(1)];
        assert_eq!(
            Checkpoint::open_cosigned(&note, &log, &twice, 2),
            Err(NoteError::NotEnoughCosignatures { have: 1, need: 2 })
        );
        // Witnesses alone are not enough: the log must have signed.
        let without_log = format!("{body}\n{}", &note[EXAMPLE_NOTE.len()..]);
        assert_eq!(
            Checkpoint::open_cosigned(&without_log, &log, &witnesses, 0),
            Err(NoteError::NoKnownSignature)
        );
        // A known witness's cosignature over another checkpoint rejects the note.
        let other_body = Checkpoint {
            time_ms: 1,
            ..cp.clone()
        }
        .body();
        let stale = cosign(&other_body, "witness.example/w4", &witness_key(4), 5);
        assert_eq!(
            Checkpoint::open_cosigned(&format!("{note}{stale}"), &log, &witnesses, 1),
            Err(NoteError::BadSignature {
                name: "witness.example/w4".into()
            })
        );
    }

    #[test]
    fn cosignature_verification_failures() {
        let body = example_checkpoint().body();
        let w1 = witness(1);
        let line = cosign(&body, "witness.example/w1", &witness_key(1), 1000);
        assert_eq!(verify_cosignature(&body, &line, &w1), Ok(1000));
        // Another body, another witness, a plain Ed25519 verifier.
        let other = body.replace("time 1767225600000", "time 1767225600001");
        assert_eq!(
            verify_cosignature(&other, &line, &w1),
            Err(NoteError::BadSignature {
                name: "witness.example/w1".into()
            })
        );
        assert_eq!(
            verify_cosignature(&body, &line, &witness(2)),
            Err(NoteError::NoKnownSignature)
        );
        let plain = NoteVerifier::new("witness.example/w1", witness_key(1).public_key()).unwrap();
        assert_eq!(
            verify_cosignature(&body, &line, &plain),
            Err(NoteError::WrongKeyType { expected: 0x04 })
        );
        // The timestamp is signed: changing it breaks the signature.
        let mut raw = BASE64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        raw[11] ^= 1;
        let retimed = format!("\u{2014} witness.example/w1 {}\n", BASE64.encode(&raw));
        assert!(matches!(
            verify_cosignature(&body, &retimed, &w1),
            Err(NoteError::BadSignature { .. })
        ));
        // A timestamp above 2^63 - 1 is refused before any signature check.
        raw[4] = 0x80;
        let huge = format!("\u{2014} witness.example/w1 {}\n", BASE64.encode(&raw));
        assert_eq!(
            verify_cosignature(&body, &huge, &w1),
            Err(NoteError::CosignatureTimeOutOfRange {
                name: "witness.example/w1".into()
            })
        );
        // Not one line, or not a line at all.
        assert!(verify_cosignature(&body, &format!("{line}{line}"), &w1).is_err());
        assert!(verify_cosignature(&body, "", &w1).is_err());
        assert!(verify_cosignature("no newline", &line, &w1).is_err());
    }

    // ---- robustness ----

    /// Random edits of a cosigned checkpoint never panic a verifier, and an
    /// accepted edit never changes the signed text.
    #[test]
    fn mutated_notes_never_panic() {
        let cp = example_checkpoint();
        let log = NoteVerifier::new(&cp.origin, log_key().public_key()).unwrap();
        let witnesses = [EXAMPLE_WITNESS_VKEY.parse().unwrap()];
        let original = format!("{EXAMPLE_NOTE}{EXAMPLE_COSIGNATURE}");
        let alphabet: &[u8] = b"\n +/=0aAZ\x00\xe2\x80\x94";
        let mut rng = Rng(0xc0ffee);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut bytes = original.clone().into_bytes();
            for _ in 0..1 + rng.below(3) {
                if bytes.is_empty() {
                    break;
                }
                let i = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[i] = alphabet[rng.below(alphabet.len())],
                    1 => {
                        bytes.remove(i);
                    }
                    2 => bytes.insert(i, alphabet[rng.below(alphabet.len())]),
                    _ => bytes.truncate(i),
                }
            }
            let mutated = String::from_utf8_lossy(&bytes);
            let _ = Checkpoint::parse_body(&mutated);
            let _ = NoteVerifier::parse(&mutated);
            let _ = verify_cosignature(&cp.body(), &mutated, &witnesses[0]);
            if let Ok((got, note)) = Checkpoint::open_cosigned(&mutated, &log, &witnesses, 0) {
                assert_eq!(got, cp);
                assert_eq!(note.text, cp.body());
                accepted += 1;
            }
        }
        // Some edits only touch the unchecked parts (for example, dropping
        // the cosignature line), so a few are accepted; most are not.
        assert!(accepted < 2_000, "{accepted}");
    }
}

#[cfg(test)]
mod regression {
    use super::*;

    /// A verifier key whose base64 part contains '+' must parse (names cannot contain '+').
    #[test]
    fn regression_vkey_with_plus_in_base64_parses() {
        for seed in 0u8..=255 {
            let kp = Keypair::from_seed([seed; 32]);
            let v = NoteVerifier::new("points.local/abc", kp.public_key()).unwrap();
            let s = v.vkey();
            assert_eq!(NoteVerifier::parse(&s).unwrap(), v, "{s}");
        }
    }
}
