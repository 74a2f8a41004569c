//! Ed25519 keys, signing and signature verification for the ledger.
//!
//! This module owns everything cryptographic about ledger signatures:
//!
//! * the acceptance rule for public keys and signatures ("strict,
//!   cofactored"), implemented by [`check_public_key`], [`verify`] and
//!   [`verify_batch`], exactly as specified in `ledger-spec/signatures.md`;
//! * [`Keypair`], an ed25519 signing key with standard RFC 8032 signing;
//! * the on-disk key file format (`points-ledger-key v1`) read and written by
//!   [`Keypair::read_file`] and [`Keypair::write_file`].
//!
//! The acceptance rule is the ZIP-215 cofactored equation (as implemented by
//! the `ed25519-consensus` crate) preceded by strict checks on the encodings:
//! the public key `A` and the commitment `R` must be canonical encodings of
//! points that are not of small order, and the scalar `s` must be reduced.
//! Because the equation is cofactored, [`verify`] and [`verify_batch`] accept
//! exactly the same set of signatures; the batch function is only faster.
//!
//! Callers are responsible for domain separation: the message given to
//! [`Keypair::sign`] and [`verify`] is signed and checked as is.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_consensus::{batch, Signature, VerificationKey, VerificationKeyBytes};
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use rayon::prelude::*;

/// Length in bytes of an encoded public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Length in bytes of an encoded signature (`R || s`).
pub const SIGNATURE_LEN: usize = 64;

/// Smallest number of items handed to one batch equation by [`verify_batch`].
const MIN_CHUNK: usize = 64;

/// Largest number of items handed to one batch equation by [`verify_batch`].
const MAX_CHUNK: usize = 256;

/// First line of a key file, naming the format and its version.
const KEY_FILE_HEADER: &str = "points-ledger-key v1";

/// Key files larger than this are refused without being parsed.
const KEY_FILE_MAX_LEN: u64 = 1024;

/// Why a signature or key was refused.
///
/// The variants are checked in declaration order (see
/// `ledger-spec/signatures.md`), so a given input always yields the same
/// variant, whichever of [`verify`] or [`verify_batch`] checked it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key is not the canonical encoding of a curve point (or is
    /// not the encoding of a curve point at all).
    #[error("public key is not the canonical encoding of a curve point")]
    NonCanonicalKey,
    /// The public key is a point of small order (a multiple of it by 8 is
    /// the identity).
    #[error("public key is a point of small order")]
    SmallOrderKey,
    /// The signature's `R` is not the canonical encoding of a curve point
    /// (or is not the encoding of a curve point at all).
    #[error("signature R is not the canonical encoding of a curve point")]
    NonCanonicalR,
    /// The signature's `R` is a point of small order.
    #[error("signature R is a point of small order")]
    SmallOrderR,
    /// The signature's `s` is not reduced modulo the group order `l`.
    #[error("signature s is not reduced modulo the group order")]
    NonCanonicalS,
    /// The encodings are acceptable but the verification equation does not
    /// hold: the signature is not valid for this key and message.
    #[error("signature does not verify for this public key and message")]
    Invalid,
}

impl SignatureError {
    /// A stable snake_case code for this error, suitable for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::NonCanonicalKey => "non_canonical_key",
            SignatureError::SmallOrderKey => "small_order_key",
            SignatureError::NonCanonicalR => "non_canonical_r",
            SignatureError::SmallOrderR => "small_order_r",
            SignatureError::NonCanonicalS => "non_canonical_s",
            SignatureError::Invalid => "invalid_signature",
        }
    }
}

/// Why a point encoding was refused; mapped to the key or `R` variants of
/// [`SignatureError`] by the caller.
enum PointDefect {
    /// Not decodable, or decodable but not in canonical form.
    NonCanonical,
    /// Canonical, but the point has small order.
    SmallOrder,
}

/// Check one 32-byte point encoding: it must decode, re-encode to the very
/// same bytes, and not be of small order.
fn check_point(bytes: &[u8; 32]) -> Result<(), PointDefect> {
    let compressed = CompressedEdwardsY(*bytes);
    let point = compressed.decompress().ok_or(PointDefect::NonCanonical)?;
    if point.compress() != compressed {
        return Err(PointDefect::NonCanonical);
    }
    if point.is_small_order() {
        return Err(PointDefect::SmallOrder);
    }
    Ok(())
}

/// Check that 32 bytes are an acceptable public key (canonical, decodable,
/// not small order).
pub fn check_public_key(public_key: &[u8; 32]) -> Result<(), SignatureError> {
    check_point(public_key).map_err(|defect| match defect {
        PointDefect::NonCanonical => SignatureError::NonCanonicalKey,
        PointDefect::SmallOrder => SignatureError::SmallOrderKey,
    })
}

/// Split a signature into its `R` encoding and its `s` encoding.
fn split_signature(signature: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    s.copy_from_slice(&signature[32..]);
    (r, s)
}

/// All checks of the rule that come before the curve equation, in the
/// normative order: key, then `R`, then `s`.
fn precheck(public_key: &[u8; 32], signature: &[u8; 64]) -> Result<(), SignatureError> {
    check_public_key(public_key)?;
    check_signature_encoding(signature)
}

/// The checks on the signature's own encodings (`R`, then `s`), which come
/// after the key check.
fn check_signature_encoding(signature: &[u8; 64]) -> Result<(), SignatureError> {
    let (r, s) = split_signature(signature);
    check_point(&r).map_err(|defect| match defect {
        PointDefect::NonCanonical => SignatureError::NonCanonicalR,
        PointDefect::SmallOrder => SignatureError::SmallOrderR,
    })?;
    if bool::from(Scalar::from_canonical_bytes(s).is_none()) {
        return Err(SignatureError::NonCanonicalS);
    }
    Ok(())
}

/// The cofactored equation `[8][s]B == [8]R + [8][k]A` for one signature
/// whose encodings already passed [`precheck`].
fn check_equation(
    public_key: &[u8; 32],
    msg: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    // After `precheck` the key always decodes; map a failure to `Invalid`
    // anyway rather than panicking.
    let key = VerificationKey::try_from(*public_key).map_err(|_| SignatureError::Invalid)?;
    key.verify(&Signature::from(*signature), msg)
        .map_err(|_| SignatureError::Invalid)
}

/// Verify one signature under the rule above.
///
/// Returns `Ok(())` if and only if `signature` is acceptable for `msg` under
/// `public_key` according to `ledger-spec/signatures.md`; otherwise the error
/// names the first check that failed.
pub fn verify(
    public_key: &[u8; 32],
    msg: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    precheck(public_key, signature)?;
    check_equation(public_key, msg, signature)
}

/// One item of a batch.
#[derive(Clone, Copy)]
pub struct BatchItem<'a> {
    /// The signer's public key.
    pub public_key: &'a [u8; 32],
    /// The signed message, exactly as it was given to [`Keypair::sign`].
    pub msg: &'a [u8],
    /// The signature to check.
    pub signature: &'a [u8; 64],
}

impl fmt::Debug for BatchItem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchItem")
            .field("public_key", &hex::encode(self.public_key))
            .field("msg_len", &self.msg.len())
            .field("signature", &hex::encode(self.signature))
            .finish()
    }
}

/// Verify many; result `i` is exactly what [`verify`] would return for item
/// `i`.
///
/// The items are split into chunks (64 to 256 items each) spread over all
/// cores with rayon. In each chunk the encoding checks run per item, the
/// survivors are checked together with one cofactored batch equation, and if
/// that batch fails every survivor of the chunk is checked alone so that the
/// bad ones are named.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Vec<Result<(), SignatureError>> {
    verify_batch_chunked(items, chunk_size(items.len(), rayon::current_num_threads()))
}

/// Chunk size for `len` items on `threads` worker threads: one chunk per
/// thread when that is within `MIN_CHUNK..=MAX_CHUNK`, clamped otherwise.
fn chunk_size(len: usize, threads: usize) -> usize {
    len.div_ceil(threads.max(1)).clamp(MIN_CHUNK, MAX_CHUNK)
}

/// [`verify_batch`] with an explicit chunk size (at least 1).
fn verify_batch_chunked(items: &[BatchItem<'_>], chunk: usize) -> Vec<Result<(), SignatureError>> {
    let per_chunk: Vec<Vec<Result<(), SignatureError>>> =
        items.par_chunks(chunk.max(1)).map(verify_chunk).collect();
    let mut results = Vec::with_capacity(items.len());
    for chunk_results in per_chunk {
        results.extend(chunk_results);
    }
    results
}

/// Verify one chunk of a batch; see [`verify_batch`].
fn verify_chunk(items: &[BatchItem<'_>]) -> Vec<Result<(), SignatureError>> {
    // Keys repeat a lot in a ledger: check each distinct key once per chunk.
    let mut key_checks: HashMap<[u8; 32], Result<(), SignatureError>> = HashMap::new();
    let mut results: Vec<Result<(), SignatureError>> = items
        .iter()
        .map(|item| {
            let key_check = *key_checks
                .entry(*item.public_key)
                .or_insert_with(|| check_public_key(item.public_key));
            key_check.and_then(|()| check_signature_encoding(item.signature))
        })
        .collect();

    let mut verifier = batch::Verifier::new();
    let mut queued = 0usize;
    for (item, result) in items.iter().zip(&results) {
        if result.is_ok() {
            verifier.queue((
                VerificationKeyBytes::from(*item.public_key),
                Signature::from(*item.signature),
                item.msg,
            ));
            queued += 1;
        }
    }
    if queued == 0 || verifier.verify(OsRng).is_ok() {
        return results;
    }

    // At least one survivor fails the equation: find out which.
    for (item, result) in items.iter().zip(results.iter_mut()) {
        if result.is_ok() {
            *result = check_equation(item.public_key, item.msg, item.signature);
        }
    }
    results
}

/// An ed25519 signing key. Its `Debug` output shows the public key only.
///
/// Signing is standard RFC 8032 Ed25519 (deterministic). The secret is the
/// 32-byte seed. The key held here is zeroized on drop (ed25519-dalek's
/// default `zeroize` feature); copies handed out by [`Keypair::seed`] are
/// the caller's to look after.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// Generate a fresh key from the operating system's random number
    /// generator.
    pub fn generate() -> Keypair {
        Keypair {
            signing: SigningKey::generate(&mut OsRng),
        }
    }

    /// Rebuild a key from its 32-byte seed (the RFC 8032 secret key).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// The 32-byte seed (the RFC 8032 secret key). Handle with care.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The 32-byte encoded public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Sign `msg` (already domain-prefixed by the caller) and return the
    /// 64-byte signature `R || s`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(msg).to_bytes()
    }

    /// Write this key to a new key file at `path`.
    ///
    /// Refuses to overwrite an existing file. On Unix the file is created
    /// with mode `0600`. The file and its directory are synced to disk
    /// before returning; if writing fails, the partial file is removed.
    pub fn write_file(&self, path: &Path) -> Result<(), KeyFileError> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::AlreadyExists(path.to_path_buf())
            } else {
                KeyFileError::Io(path.to_path_buf(), err)
            }
        })?;

        let contents = format!(
            "{KEY_FILE_HEADER}\nsecret {}\npublic {}\n",
            hex::encode(self.seed()),
            hex::encode(self.public_key())
        );
        if let Err(err) = fill_new_key_file(file, contents.as_bytes()) {
            // The file is ours (create_new): do not leave a partial key behind.
            let _ = std::fs::remove_file(path);
            return Err(KeyFileError::Io(path.to_path_buf(), err));
        }
        sync_parent_dir(path).map_err(|err| KeyFileError::Io(path.to_path_buf(), err))
    }

    /// Read a key file written by [`Keypair::write_file`].
    ///
    /// Refuses files readable or writable by group or others (on Unix),
    /// files not in the exact `points-ledger-key v1` format, and files whose
    /// `public` line does not match the key derived from the `secret` line.
    pub fn read_file(path: &Path) -> Result<Keypair, KeyFileError> {
        let io_err = |err| KeyFileError::Io(path.to_path_buf(), err);
        let malformed =
            |reason: &str| KeyFileError::Malformed(path.to_path_buf(), reason.to_string());

        let file = File::open(path).map_err(io_err)?;
        let metadata = file.metadata().map_err(io_err)?;
        if !metadata.is_file() {
            return Err(malformed("not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::InsecurePermissions(path.to_path_buf(), mode));
            }
        }

        let mut raw = Vec::new();
        file.take(KEY_FILE_MAX_LEN + 1)
            .read_to_end(&mut raw)
            .map_err(io_err)?;
        if raw.len() as u64 > KEY_FILE_MAX_LEN {
            return Err(malformed("file is too large to be a key file"));
        }
        let text = std::str::from_utf8(&raw).map_err(|_| malformed("file is not valid UTF-8"))?;
        let (seed, public) = parse_key_file(text).map_err(|reason| malformed(&reason))?;

        let keypair = Keypair::from_seed(seed);
        if keypair.public_key() != public {
            return Err(KeyFileError::PublicKeyMismatch(path.to_path_buf()));
        }
        Ok(keypair)
    }
}

/// Write `contents` to a freshly created key file, force the `0600` mode
/// (the creation mode may have been narrowed by the umask) and sync it.
fn fill_new_key_file(mut file: File, contents: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// Sync the directory holding `path` so that a newly created entry survives
/// a crash. A no-op where directories cannot be opened as files.
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Parse the text of a key file into `(seed, public key)`. The error is a
/// human-readable reason that never quotes the file's contents.
fn parse_key_file(text: &str) -> Result<([u8; 32], [u8; 32]), String> {
    if text.contains('\r') {
        return Err("contains a carriage return; lines must end with \\n only".to_string());
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() != 3 {
        return Err(format!(
            "expected exactly 3 lines (`{KEY_FILE_HEADER}`, `secret <hex>`, `public <hex>`), found {}",
            lines.len()
        ));
    }
    if lines[0] != KEY_FILE_HEADER {
        return Err(if lines[0].starts_with("points-ledger-key ") {
            format!(
                "unsupported key file version on line 1; this program reads `{KEY_FILE_HEADER}`"
            )
        } else {
            format!("line 1 must be `{KEY_FILE_HEADER}`")
        });
    }
    let seed = parse_hex_line(lines[1], "secret", 2)?;
    let public = parse_hex_line(lines[2], "public", 3)?;
    Ok((seed, public))
}

/// Parse `<label> <64 lowercase hex digits>` into 32 bytes.
fn parse_hex_line(line: &str, label: &str, number: usize) -> Result<[u8; 32], String> {
    let expected = || format!("line {number} must be `{label} <64 lowercase hex digits>`");
    let value = line
        .strip_prefix(label)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(expected)?;
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(format!(
            "{}: the value is not 64 lowercase hex digits",
            expected()
        ));
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(value, &mut bytes).map_err(|_| expected())?;
    Ok(bytes)
}

/// Key file errors. Every message names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be created, opened, read, written or synced.
    #[error("key file {path}: {1}", path = .0.display())]
    Io(PathBuf, std::io::Error),
    /// The file exists but is not a valid `points-ledger-key v1` file; the
    /// string says what is wrong (it never quotes the file's contents).
    #[error("key file {path} is malformed: {1}", path = .0.display())]
    Malformed(PathBuf, String),
    /// [`Keypair::write_file`] refused to overwrite an existing file.
    #[error("refusing to overwrite existing key file {path}", path = .0.display())]
    AlreadyExists(PathBuf),
    /// The file is accessible by group or others (the mode is given); the
    /// key is not used until the permissions are fixed.
    #[error(
        "key file {path} is accessible by group or others (mode {1:04o}); run `chmod 600 {path}` and try again",
        path = .0.display()
    )]
    InsecurePermissions(PathBuf, u32),
    /// The file's `public` line is not the public key derived from its
    /// `secret` line.
    #[error(
        "key file {path}: the `public` line does not match the public key derived from the `secret` line",
        path = .0.display()
    )]
    PublicKeyMismatch(PathBuf),
}

impl KeyFileError {
    /// The path of the key file concerned.
    pub fn path(&self) -> &Path {
        match self {
            KeyFileError::Io(path, _)
            | KeyFileError::Malformed(path, _)
            | KeyFileError::AlreadyExists(path)
            | KeyFileError::InsecurePermissions(path, _)
            | KeyFileError::PublicKeyMismatch(path) => path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ed25519-speccheck cases ("Taming the many EdDSAs"), Apache-2.0.
    const SPECCHECK: &str = include_str!("../tests/vectors/ed25519-speccheck/cases.json");

    /// One decoded speccheck case.
    struct Case {
        public_key: [u8; 32],
        msg: Vec<u8>,
        signature: [u8; 64],
    }

    impl Case {
        fn item(&self) -> BatchItem<'_> {
            BatchItem {
                public_key: &self.public_key,
                msg: &self.msg,
                signature: &self.signature,
            }
        }
    }

    fn speccheck_cases() -> Vec<Case> {
        let json: serde_json::Value = serde_json::from_str(SPECCHECK).expect("cases.json parses");
        let cases = json.as_array().expect("cases.json is an array");
        cases
            .iter()
            .map(|case| {
                let field = |name: &str| {
                    hex::decode(case[name].as_str().expect("hex string field")).expect("valid hex")
                };
                Case {
                    public_key: field("pub_key").try_into().expect("32-byte key"),
                    msg: field("message"),
                    signature: field("signature").try_into().expect("64-byte signature"),
                }
            })
            .collect()
    }

    /// The verdict this rule gives each of the 12 speccheck cases, as pinned
    /// in `ledger-spec/signatures.md`.
    const SPECCHECK_VERDICTS: [Result<(), SignatureError>; 12] = [
        Err(SignatureError::SmallOrderKey),   // 0
        Err(SignatureError::SmallOrderKey),   // 1
        Err(SignatureError::SmallOrderR),     // 2
        Ok(()),                               // 3
        Ok(()),                               // 4
        Ok(()),                               // 5
        Err(SignatureError::NonCanonicalS),   // 6
        Err(SignatureError::NonCanonicalS),   // 7
        Err(SignatureError::NonCanonicalR),   // 8
        Err(SignatureError::NonCanonicalR),   // 9
        Err(SignatureError::NonCanonicalKey), // 10
        Err(SignatureError::NonCanonicalKey), // 11
    ];

    /// Deterministic test randomness (SplitMix64), so failures reproduce.
    struct TestRng(u64);

    impl TestRng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes32(&mut self) -> [u8; 32] {
            let mut out = [0u8; 32];
            for chunk in out.chunks_mut(8) {
                chunk.copy_from_slice(&self.next().to_le_bytes());
            }
            out
        }
    }

    /// An owned signed message.
    #[derive(Clone)]
    struct Signed {
        public_key: [u8; 32],
        msg: Vec<u8>,
        signature: [u8; 64],
    }

    impl Signed {
        fn item(&self) -> BatchItem<'_> {
            BatchItem {
                public_key: &self.public_key,
                msg: &self.msg,
                signature: &self.signature,
            }
        }
    }

    /// `n` valid signatures from a handful of keys (keys repeat, as in a
    /// real ledger).
    fn valid_signed(n: usize, rng: &mut TestRng) -> Vec<Signed> {
        let keys: Vec<Keypair> = (0..7).map(|_| Keypair::from_seed(rng.bytes32())).collect();
        (0..n)
            .map(|i| {
                let key = &keys[rng.below(keys.len())];
                let len = rng.below(100);
                let msg: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                Signed {
                    public_key: key.public_key(),
                    signature: key.sign(&msg),
                    msg,
                }
            })
            .collect()
    }

    /// Assert that `verify_batch` (and the chunked variant at several chunk
    /// sizes) returns exactly the single-verify results, and return them.
    fn assert_batch_agrees(items: &[BatchItem<'_>]) -> Vec<Result<(), SignatureError>> {
        let single: Vec<_> = items
            .iter()
            .map(|item| verify(item.public_key, item.msg, item.signature))
            .collect();
        assert_eq!(
            verify_batch(items),
            single,
            "verify_batch disagrees with verify"
        );
        for chunk in [1, 2, 63, 64, 65, 256] {
            assert_eq!(
                verify_batch_chunked(items, chunk),
                single,
                "chunk size {chunk} disagrees with verify"
            );
        }
        single
    }

    #[test]
    fn speccheck_verdicts() {
        let cases = speccheck_cases();
        assert_eq!(cases.len(), 12);
        for (index, case) in cases.iter().enumerate() {
            let single = verify(&case.public_key, &case.msg, &case.signature);
            assert_eq!(single, SPECCHECK_VERDICTS[index], "speccheck case {index}");
            assert_eq!(
                verify_batch(&[case.item()]),
                vec![single],
                "case {index} alone in a batch"
            );
        }
        let items: Vec<BatchItem<'_>> = cases.iter().map(Case::item).collect();
        assert_eq!(assert_batch_agrees(&items), SPECCHECK_VERDICTS.to_vec());
    }

    #[test]
    fn speccheck_mixed_into_valid_batches() {
        let cases = speccheck_cases();
        let mut rng = TestRng(1);
        let valid = valid_signed(300, &mut rng);
        for size in [1usize, 2, 63, 64, 65, 300] {
            for (index, case) in cases.iter().enumerate() {
                let positions = [0, size / 2, size];
                for &position in &positions {
                    let mut items: Vec<BatchItem<'_>> =
                        valid[..size].iter().map(Signed::item).collect();
                    items.insert(position, case.item());
                    let single: Vec<_> = items
                        .iter()
                        .map(|item| verify(item.public_key, item.msg, item.signature))
                        .collect();
                    let mut expected = vec![Ok(()); size + 1];
                    expected[position] = SPECCHECK_VERDICTS[index];
                    assert_eq!(single, expected, "size {size}, case {index} at {position}");
                    assert_eq!(
                        verify_batch(&items),
                        expected,
                        "size {size}, case {index} at {position}"
                    );
                    assert_eq!(
                        verify_batch_chunked(&items, 64),
                        expected,
                        "chunk 64, size {size}, case {index} at {position}"
                    );
                }
            }
            // All 12 cases at once, spread through the batch.
            let mut items: Vec<BatchItem<'_>> = valid[..size].iter().map(Signed::item).collect();
            for case in &cases {
                let position = rng.below(items.len() + 1);
                items.insert(position, case.item());
            }
            assert_batch_agrees(&items);
        }
    }

    #[test]
    fn randomized_single_batch_agreement() {
        let mut rng = TestRng(0x5eed);
        let originals = valid_signed(400, &mut rng);
        let mut mutated = Vec::new();
        let mut expect_valid = Vec::new();
        for original in &originals {
            let mut signed = original.clone();
            let mutate = rng.below(5);
            match mutate {
                1 if !signed.msg.is_empty() => {
                    let at = rng.below(signed.msg.len());
                    signed.msg[at] ^= 1 << rng.below(8);
                }
                1 => signed.msg.push(0),
                2 => {
                    let at = rng.below(64);
                    signed.signature[at] ^= 1 << rng.below(8);
                }
                3 => {
                    let at = rng.below(32);
                    signed.public_key[at] ^= 1 << rng.below(8);
                }
                // Push s to 2^253 or above, far beyond l.
                4 => signed.signature[63] ^= 1 << (5 + rng.below(3)),
                _ => {}
            }
            expect_valid.push(mutate == 0);
            mutated.push(signed);
        }
        let items: Vec<BatchItem<'_>> = mutated.iter().map(Signed::item).collect();
        let results = assert_batch_agrees(&items);
        for (index, (result, valid)) in results.iter().zip(&expect_valid).enumerate() {
            assert_eq!(result.is_ok(), *valid, "item {index}: {result:?}");
        }
        // Make sure the mutations reached several distinct checks.
        let mut seen: Vec<SignatureError> = results.iter().filter_map(|r| r.err()).collect();
        seen.sort_by_key(|e| e.code());
        seen.dedup();
        assert!(seen.contains(&SignatureError::Invalid));
        assert!(seen.contains(&SignatureError::NonCanonicalS));
        assert!(seen.len() >= 3, "only saw {seen:?}");
    }

    #[test]
    fn empty_and_all_invalid_batches() {
        assert!(verify_batch(&[]).is_empty());
        let cases = speccheck_cases();
        let rejected: Vec<BatchItem<'_>> = cases
            .iter()
            .zip(SPECCHECK_VERDICTS)
            .filter(|(_, verdict)| verdict.is_err())
            .map(|(case, _)| case.item())
            .collect();
        let results = assert_batch_agrees(&rejected);
        assert!(results.iter().all(Result::is_err));
    }

    /// Every encoding whose y field is >= p, plus the two encodings of x = 0
    /// with the sign bit set, is refused as non-canonical.
    #[test]
    fn all_non_canonical_encodings_refused() {
        let mut encodings = Vec::new();
        // y = p + k for k in 0..19, i.e. 2^255 - 19 + k, each with both signs.
        for k in 0u8..19 {
            let mut y = [0xffu8; 32];
            y[31] = 0x7f;
            y[0] = 0xed + k;
            encodings.push(y);
            let mut negative = y;
            negative[31] |= 0x80;
            encodings.push(negative);
        }
        // x = 0 with the sign bit set: y = 1 and y = p - 1.
        let mut one = [0u8; 32];
        one[0] = 1;
        one[31] = 0x80;
        encodings.push(one);
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        encodings.push(minus_one);
        for encoding in &encodings {
            assert_eq!(
                check_public_key(encoding),
                Err(SignatureError::NonCanonicalKey),
                "{}",
                hex::encode(encoding)
            );
            let mut signature = Keypair::from_seed([9; 32]).sign(b"m");
            signature[..32].copy_from_slice(encoding);
            let key = Keypair::from_seed([9; 32]).public_key();
            assert_eq!(
                verify(&key, b"m", &signature),
                Err(SignatureError::NonCanonicalR)
            );
        }
        // The canonical encodings of the identity and of (0, -1) are small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            check_public_key(&identity),
            Err(SignatureError::SmallOrderKey)
        );
        let mut order_two = [0xffu8; 32];
        order_two[0] = 0xec;
        order_two[31] = 0x7f;
        assert_eq!(
            check_public_key(&order_two),
            Err(SignatureError::SmallOrderKey)
        );
    }

    #[test]
    fn check_order_is_key_then_r_then_s() {
        let cases = speccheck_cases();
        // Case 10's key is non-canonical; give it a bad R and s as well.
        let mut signature = cases[10].signature;
        signature[..32].copy_from_slice(&cases[0].signature[..32]);
        signature[63] = 0xff;
        assert_eq!(
            verify(&cases[10].public_key, b"x", &signature),
            Err(SignatureError::NonCanonicalKey)
        );
        let key = Keypair::from_seed([3; 32]);
        assert_eq!(
            verify(&key.public_key(), b"x", &signature),
            Err(SignatureError::SmallOrderR)
        );
        let mut signature = key.sign(b"x");
        signature[63] |= 0x80;
        assert_eq!(
            verify(&key.public_key(), b"x", &signature),
            Err(SignatureError::NonCanonicalS)
        );
    }

    #[test]
    fn error_codes_are_stable() {
        let all = [
            (SignatureError::NonCanonicalKey, "non_canonical_key"),
            (SignatureError::SmallOrderKey, "small_order_key"),
            (SignatureError::NonCanonicalR, "non_canonical_r"),
            (SignatureError::SmallOrderR, "small_order_r"),
            (SignatureError::NonCanonicalS, "non_canonical_s"),
            (SignatureError::Invalid, "invalid_signature"),
        ];
        for (error, code) in all {
            assert_eq!(error.code(), code);
            assert!(!error.to_string().is_empty());
        }
    }

    /// RFC 8032 section 7.1, TEST 1 (empty message).
    #[test]
    fn rfc8032_test_1() {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = Keypair::from_seed(seed);
        assert_eq!(
            hex::encode(key.public_key()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let signature = key.sign(b"");
        assert_eq!(
            hex::encode(signature),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert_eq!(verify(&key.public_key(), b"", &signature), Ok(()));
        assert_eq!(key.seed(), seed);
    }

    #[test]
    fn sign_verify_and_debug_hides_secret() {
        let key = Keypair::generate();
        let signature = key.sign(b"points-ledger/test\0hello");
        assert_eq!(
            verify(&key.public_key(), b"points-ledger/test\0hello", &signature),
            Ok(())
        );
        assert_eq!(
            verify(&key.public_key(), b"points-ledger/test\0hellp", &signature),
            Err(SignatureError::Invalid)
        );
        assert_eq!(check_public_key(&key.public_key()), Ok(()));
        let debug = format!("{key:?}");
        assert!(debug.contains(&hex::encode(key.public_key())));
        assert!(!debug.contains(&hex::encode(key.seed())));
        assert_ne!(Keypair::generate().seed(), key.seed());
    }

    /// A unique path in the temp dir, removed (with any file at it) on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(name: &str) -> TempPath {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let unique = format!(
                "points-ledger-crypto-{}-{}-{}-{name}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            );
            TempPath(std::env::temp_dir().join(unique))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Write raw contents with mode 0600, bypassing `write_file`.
    fn write_raw(path: &Path, contents: &[u8]) {
        std::fs::write(path, contents).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn key_file_round_trip() {
        let path = TempPath::new("roundtrip");
        let key = Keypair::generate();
        key.write_file(&path.0).unwrap();
        let text = std::fs::read_to_string(&path.0).unwrap();
        assert_eq!(
            text,
            format!(
                "points-ledger-key v1\nsecret {}\npublic {}\n",
                hex::encode(key.seed()),
                hex::encode(key.public_key())
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path.0).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let read = Keypair::read_file(&path.0).unwrap();
        assert_eq!(read.seed(), key.seed());
        assert_eq!(read.public_key(), key.public_key());
        // Without the final newline the file is still accepted.
        let path2 = TempPath::new("no-final-newline");
        write_raw(&path2.0, text.trim_end_matches('\n').as_bytes());
        assert_eq!(Keypair::read_file(&path2.0).unwrap().seed(), key.seed());
    }

    #[test]
    fn key_file_refuses_overwrite() {
        let path = TempPath::new("overwrite");
        let first = Keypair::generate();
        first.write_file(&path.0).unwrap();
        let err = Keypair::generate().write_file(&path.0).unwrap_err();
        assert!(matches!(err, KeyFileError::AlreadyExists(_)), "{err:?}");
        assert!(err.to_string().contains(&path.0.display().to_string()));
        assert_eq!(Keypair::read_file(&path.0).unwrap().seed(), first.seed());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_permissive_mode_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = TempPath::new("permissive");
        Keypair::generate().write_file(&path.0).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o610] {
            std::fs::set_permissions(&path.0, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Keypair::read_file(&path.0).unwrap_err();
            assert!(
                matches!(err, KeyFileError::InsecurePermissions(_, m) if m == mode),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains("chmod 600"), "{message}");
            assert!(message.contains(&path.0.display().to_string()), "{message}");
        }
        std::fs::set_permissions(&path.0, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Keypair::read_file(&path.0).is_ok());
    }

    #[test]
    fn key_file_missing_is_io_error_naming_path() {
        let path = TempPath::new("missing");
        let err = Keypair::read_file(&path.0).unwrap_err();
        assert!(matches!(err, KeyFileError::Io(_, _)), "{err:?}");
        assert!(err.to_string().contains(&path.0.display().to_string()));
        assert_eq!(err.path(), path.0.as_path());
    }

    #[test]
    fn key_file_malformed_refused() {
        let key = Keypair::from_seed([0xab; 32]);
        let secret = hex::encode(key.seed());
        let public = hex::encode(key.public_key());
        let other_public = hex::encode(Keypair::from_seed([0xcd; 32]).public_key());
        let malformed: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("blank line", "\n".to_string()),
            ("header only", "points-ledger-key v1\n".to_string()),
            (
                "wrong version",
                format!("points-ledger-key v2\nsecret {secret}\npublic {public}\n"),
            ),
            (
                "wrong header",
                format!("ledger-key v1\nsecret {secret}\npublic {public}\n"),
            ),
            (
                "crlf",
                format!("points-ledger-key v1\r\nsecret {secret}\r\npublic {public}\r\n"),
            ),
            (
                "uppercase",
                format!(
                    "points-ledger-key v1\nsecret {}\npublic {public}\n",
                    secret.to_uppercase()
                ),
            ),
            (
                "short secret",
                format!(
                    "points-ledger-key v1\nsecret {}\npublic {public}\n",
                    &secret[..62]
                ),
            ),
            (
                "long secret",
                format!("points-ledger-key v1\nsecret {secret}00\npublic {public}\n"),
            ),
            (
                "not hex",
                format!(
                    "points-ledger-key v1\nsecret {}zz\npublic {public}\n",
                    &secret[..62]
                ),
            ),
            (
                "two spaces",
                format!("points-ledger-key v1\nsecret  {secret}\npublic {public}\n"),
            ),
            (
                "trailing space",
                format!("points-ledger-key v1\nsecret {secret} \npublic {public}\n"),
            ),
            (
                "swapped lines",
                format!("points-ledger-key v1\npublic {public}\nsecret {secret}\n"),
            ),
            (
                "missing public",
                format!("points-ledger-key v1\nsecret {secret}\n"),
            ),
            (
                "extra line",
                format!("points-ledger-key v1\nsecret {secret}\npublic {public}\n\n"),
            ),
            (
                "extra field",
                format!("points-ledger-key v1\nsecret {secret}\npublic {public}\nnote x\n"),
            ),
            (
                "leading blank",
                format!("\npoints-ledger-key v1\nsecret {secret}\npublic {public}\n"),
            ),
            ("huge", "x".repeat(5000)),
        ];
        for (name, contents) in malformed {
            let path = TempPath::new("malformed");
            write_raw(&path.0, contents.as_bytes());
            let Err(err) = Keypair::read_file(&path.0) else {
                panic!("{name}: malformed key file was accepted");
            };
            assert!(
                matches!(err, KeyFileError::Malformed(_, _)),
                "{name}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains(&path.0.display().to_string()),
                "{name}: {message}"
            );
            assert!(
                !message.contains(&secret),
                "{name}: message leaks the secret"
            );
        }

        let path = TempPath::new("not-utf8");
        write_raw(&path.0, b"points-ledger-key v1\nsecret \xff\xfe\n");
        assert!(matches!(
            Keypair::read_file(&path.0),
            Err(KeyFileError::Malformed(_, _))
        ));

        let path = TempPath::new("mismatch");
        write_raw(
            &path.0,
            format!("points-ledger-key v1\nsecret {secret}\npublic {other_public}\n").as_bytes(),
        );
        let err = Keypair::read_file(&path.0).unwrap_err();
        assert!(matches!(err, KeyFileError::PublicKeyMismatch(_)), "{err:?}");
        assert!(err.to_string().contains(&path.0.display().to_string()));
    }

    #[test]
    fn chunk_size_bounds() {
        assert_eq!(chunk_size(0, 2), MIN_CHUNK);
        assert_eq!(chunk_size(300, 2), 150);
        assert_eq!(chunk_size(10_000, 2), MAX_CHUNK);
        assert_eq!(chunk_size(10, 0), MIN_CHUNK);
    }

    /// Throughput check, run by hand:
    /// `cargo test --release -- --ignored --nocapture throughput`.
    #[test]
    #[ignore = "throughput measurement, run by hand in release mode"]
    fn throughput() {
        use std::time::Instant;
        let mut rng = TestRng(42);
        let signed = valid_signed(10_000, &mut rng);
        let items: Vec<BatchItem<'_>> = signed.iter().map(Signed::item).collect();

        let singles = 2_000;
        let start = Instant::now();
        for item in &items[..singles] {
            assert!(verify(item.public_key, item.msg, item.signature).is_ok());
        }
        let single_rate = singles as f64 / start.elapsed().as_secs_f64();
        println!("single verify, one core: {single_rate:.0} signatures/s");

        let distinct: Vec<Signed> = (0..10_000u32)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                let key = Keypair::from_seed(seed);
                let msg = i.to_be_bytes().to_vec();
                Signed {
                    public_key: key.public_key(),
                    signature: key.sign(&msg),
                    msg,
                }
            })
            .collect();
        let distinct_items: Vec<BatchItem<'_>> = distinct.iter().map(Signed::item).collect();
        let start = Instant::now();
        let results = verify_batch(&distinct_items);
        let rate = items.len() as f64 / start.elapsed().as_secs_f64();
        assert!(results.iter().all(Result::is_ok));
        println!("verify_batch, 10,000 items, 10,000 distinct keys: {rate:.0} signatures/s");

        for chunk in [64, 128, 256, 512] {
            let start = Instant::now();
            let results = verify_batch_chunked(&items, chunk);
            let rate = items.len() as f64 / start.elapsed().as_secs_f64();
            assert!(results.iter().all(Result::is_ok));
            println!("verify_batch_chunked({chunk}), 10,000 items, 7 keys: {rate:.0} signatures/s");
        }
        let start = Instant::now();
        let results = verify_batch(&items);
        let rate = items.len() as f64 / start.elapsed().as_secs_f64();
        assert!(results.iter().all(Result::is_ok));
        println!(
            "verify_batch, 10,000 items, 7 distinct keys, {} threads: {rate:.0} signatures/s",
            rayon::current_num_threads()
        );
    }
}
