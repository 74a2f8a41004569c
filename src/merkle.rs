//! The ledger's Merkle tree: RFC 9162 §2.1 hashing, the perfect-node storage
//! model, the incrementally maintained right edge ([`Frontier`]), and
//! inclusion and consistency proofs with their verifiers.
//!
//! Implements `ledger-spec/merkle.md`. This module is pure: it never touches
//! storage itself, it only reads stored nodes through [`NodeSource`] and hands
//! new nodes back to the caller to persist.
//!
//! Every size and index is a `u64` (leaf count or leaf position), the same
//! width on every platform and on the wire.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf: `SHA-256(0x00 || data)`, where `data` is the leaf's
/// canonical bytes (for the ledger, the canonical encoding of an entry).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: the SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Read a hash from a byte slice that must be exactly 32 bytes long, as a
/// decoder of proofs or roots received from outside does.
pub fn hash_from_slice(bytes: &[u8]) -> Result<Hash, MerkleError> {
    Hash::try_from(bytes).map_err(|_| MerkleError::BadHashLength {
        len: bytes.len() as u64,
    })
}

/// Why a Merkle operation or a proof verification failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum MerkleError {
    /// An inclusion proof was asked for or checked with `index >= size`
    /// (which includes every index in the empty tree).
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked for or checked with `old_size == 0` or
    /// `old_size > new_size`.
    #[error("no consistency proof from size {old_size} to size {new_size}")]
    SizeOutOfRange {
        /// The older (smaller) tree size.
        old_size: u64,
        /// The newer (larger) tree size.
        new_size: u64,
    },
    /// The proof does not have the number of hashes that the sizes (and
    /// index) determine.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The length the sizes determine.
        expected: u64,
        /// The length received.
        got: u64,
    },
    /// The root recomputed from the proof differs from the given (new) root.
    #[error("recomputed root does not match the expected root")]
    RootMismatch,
    /// The old root recomputed from a consistency proof differs from the
    /// given old root.
    #[error("recomputed old root does not match the expected old root")]
    OldRootMismatch,
    /// A byte string that should be a hash is not 32 bytes long.
    #[error("a hash must be 32 bytes, got {len}")]
    BadHashLength {
        /// The length received.
        len: u64,
    },
    /// The node source has no node at this position.
    #[error("no stored node at level {level}, index {index}")]
    MissingNode {
        /// The node's level (0 = leaves).
        level: u8,
        /// The node's index within its level.
        index: u64,
    },
    /// The node source failed (an I/O or decoding error of the backing store).
    #[error("node storage error: {0}")]
    Storage(String),
}

/// Read access to stored perfect subtree hashes: node (level, index) is the
/// root of the perfect subtree over leaves [index << level, (index + 1) << level).
/// Level 0 = leaf hashes.
///
/// A node exists once the tree holds `(index + 1) << level` leaves and never
/// changes afterwards. The functions of this module only ask for nodes that
/// exist in the tree size they were given. An implementation returns
/// [`MerkleError::MissingNode`] for a node it does not have and
/// [`MerkleError::Storage`] for a failure of its backing store.
pub trait NodeSource {
    /// The hash of the perfect subtree at (`level`, `index`).
    fn node(&self, level: u8, index: u64) -> Result<Hash, MerkleError>;
}

/// An in-memory [`NodeSource`] (a `HashMap`), for tests, the auditor and the
/// fuzzers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemNodes {
    nodes: HashMap<(u8, u64), Hash>,
}

impl MemNodes {
    /// An empty store.
    pub fn new() -> MemNodes {
        MemNodes::default()
    }

    /// Store the node at (`level`, `index`), replacing any previous value.
    pub fn insert(&mut self, level: u8, index: u64, hash: Hash) {
        self.nodes.insert((level, index), hash);
    }

    /// Store every node of a batch, as returned by [`Frontier::append`].
    pub fn insert_all(&mut self, nodes: &[(u8, u64, Hash)]) {
        for &(level, index, hash) in nodes {
            self.insert(level, index, hash);
        }
    }

    /// The number of stored nodes.
    pub fn len(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// Whether no node is stored.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl NodeSource for MemNodes {
    fn node(&self, level: u8, index: u64) -> Result<Hash, MerkleError> {
        self.nodes
            .get(&(level, index))
            .copied()
            .ok_or(MerkleError::MissingNode { level, index })
    }
}

/// The right edge of the tree (the perfect subtrees that make up a tree of
/// `size` leaves), maintained incrementally: never recomputes from scratch.
///
/// A tree of `size` leaves is the sequence of perfect subtrees given by the
/// set bits of `size`, largest (leftmost) first; the frontier keeps one hash
/// per set bit, so at most 64.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees, leftmost (highest level) first; entry
    /// `i` is at the level of the `i`-th highest set bit of `size`.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree (size 0).
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 9162 root of the current size ([`empty_root`] at size 0).
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(mut root) = peaks.next().copied() else {
            return empty_root();
        };
        for left in peaks {
            root = node_hash(left, &root);
        }
        root
    }

    /// Append one leaf hash; returns every new perfect node (level, index,
    /// hash) created, the leaf itself included, so the caller can persist
    /// them. The nodes come lowest level first.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let mut out = Vec::with_capacity(self.size.trailing_ones() as usize + 1);
        self.append_into(leaf, &mut out);
        out
    }

    /// Like [`Frontier::append`], but pushes the new nodes onto `out` (which
    /// is not cleared), so a batch of appends can share one allocation.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves.
    pub fn append_into(&mut self, leaf: Hash, out: &mut Vec<(u8, u64, Hash)>) {
        let old_size = self.size;
        let new_size = old_size.checked_add(1).expect("Merkle tree is full");
        let mut hash = leaf;
        let mut index = old_size;
        let mut level: u8 = 0;
        out.push((level, index, hash));
        // Each trailing one bit of the old size is a peak of the same level
        // as the node being carried: merge them, like a binary increment.
        for _ in 0..old_size.trailing_ones() {
            let left = self.peaks.pop().expect("one peak per set bit of size");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            out.push((level, index, hash));
        }
        self.peaks.push(hash);
        self.size = new_size;
    }

    /// Rebuild the frontier of a tree of `size` leaves from stored nodes
    /// (one read per set bit of `size`, so at most 64).
    pub fn load(size: u64, src: &impl NodeSource) -> Result<Frontier, MerkleError> {
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        for level in (0..64u8).rev() {
            if size >> level & 1 == 1 {
                peaks.push(src.node(level, (size >> level) - 1)?);
            }
        }
        Ok(Frontier { size, peaks })
    }
}

/// The root of the tree of the first `size` leaves, from at most 64 stored
/// nodes ([`empty_root`] for size 0).
pub fn root_at(size: u64, src: &impl NodeSource) -> Result<Hash, MerkleError> {
    range_hash(0, size, src)
}

/// The inclusion proof (RFC 9162 §2.1.3.1) of leaf `index` in the tree of
/// the first `size` leaves: sibling hashes from the leaf up to the root.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    src: &impl NodeSource,
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // Walk down from the root: at each split, the subtree not holding the
    // leaf is the next sibling. Collected top-down, returned bottom-up.
    let mut proof = Vec::with_capacity(64);
    let (mut start, mut len) = (0u64, size);
    while len > 1 {
        let k = split_point(len);
        if index - start < k {
            proof.push(range_hash(start + k, len - k, src)?);
            len = k;
        } else {
            proof.push(range_hash(start, k, src)?);
            start += k;
            len -= k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof (RFC 9162 §2.1.4.1) between the tree of the first
/// `old_size` leaves and the tree of the first `new_size` leaves. Empty when
/// the sizes are equal; an error when `old_size` is 0 or above `new_size`.
pub fn consistency_proof(
    old_size: u64,
    new_size: u64,
    src: &impl NodeSource,
) -> Result<Vec<Hash>, MerkleError> {
    if old_size == 0 || old_size > new_size {
        return Err(MerkleError::SizeOutOfRange { old_size, new_size });
    }
    let mut proof = Vec::with_capacity(128);
    // SUBPROOF(m, D[start..start+len], whole_old_tree), unrolled.
    let (mut start, mut len, mut m) = (0u64, new_size, old_size);
    let mut whole_old_tree = true;
    while m != len {
        let k = split_point(len);
        if m <= k {
            proof.push(range_hash(start + k, len - k, src)?);
            len = k;
        } else {
            proof.push(range_hash(start, k, src)?);
            start += k;
            len -= k;
            m -= k;
            whole_old_tree = false;
        }
    }
    if !whole_old_tree {
        proof.push(range_hash(start, len, src)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Verify an inclusion proof (RFC 9162 §2.1.3.2): `leaf` is the leaf hash at
/// `index` in the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = path_len(index, size - 1);
    if proof.len() as u64 != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            got: proof.len() as u64,
        });
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(MerkleError::WrongProofLength {
                expected,
                got: proof.len() as u64,
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(MerkleError::WrongProofLength {
            expected,
            got: proof.len() as u64,
        });
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verify a consistency proof (RFC 9162 §2.1.4.2): the tree of `old_size`
/// leaves with root `old_root` is a prefix of the tree of `new_size` leaves
/// with root `new_root`.
///
/// Equal sizes need an empty proof and equal roots. `old_size == 0` is
/// rejected: every tree extends the empty tree, so such a proof proves
/// nothing and a client has nothing to check.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if old_size == 0 || old_size > new_size {
        return Err(MerkleError::SizeOutOfRange { old_size, new_size });
    }
    let got = proof.len() as u64;
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength { expected: 0, got });
        }
        if old_root != new_root {
            return Err(MerkleError::RootMismatch);
        }
        return Ok(());
    }
    // Drop the levels below the lowest set bit of old_size: the node
    // ending at old_size on that level is where the two trees diverge.
    let shift = old_size.trailing_zeros();
    let mut f_n = (old_size - 1) >> shift;
    let mut s_n = (new_size - 1) >> shift;
    // When old_size is a power of two, the old root is that node and is not
    // sent; otherwise the proof starts with it.
    let seed_sent = f_n != 0;
    let expected = path_len(f_n, s_n) + u64::from(seed_sent);
    if got != expected {
        return Err(MerkleError::WrongProofLength { expected, got });
    }
    let (seed, rest) = match (seed_sent, proof.split_first()) {
        (true, Some((first, rest))) => (*first, rest),
        _ => (*old_root, proof),
    };
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if s_n == 0 {
            return Err(MerkleError::WrongProofLength { expected, got });
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(MerkleError::WrongProofLength { expected, got });
    }
    if fr != *old_root {
        return Err(MerkleError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// The number of hashes on the path from position `index` to the root of a
/// tree whose last position is `last` (`index <= last`): the levels where the
/// two positions' ancestors differ, plus one per left sibling above them.
fn path_len(index: u64, last: u64) -> u64 {
    let inner = u64::from(64 - (index ^ last).leading_zeros());
    // `inner` is at most 64, and `index >> 64` would overflow.
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones();
    inner + u64::from(border)
}

/// The largest power of two strictly below `len` (`len >= 2`): the size of
/// the left subtree in RFC 9162's split of a tree of `len` leaves.
fn split_point(len: u64) -> u64 {
    debug_assert!(len >= 2);
    1 << (63 - (len - 1).leading_zeros())
}

/// The RFC 9162 hash of the `len` leaves starting at `start` (the empty root
/// when `len` is 0), where `start` is a multiple of the largest power of two not above `len` (true of every
/// subtree the proof algorithms visit). The range is the sequence of perfect
/// subtrees given by the set bits of `len`, so this reads one stored node per
/// set bit and folds them from the right.
fn range_hash(start: u64, len: u64, src: &impl NodeSource) -> Result<Hash, MerkleError> {
    debug_assert!(len == 0 || start % (1 << (63 - len.leading_zeros())) == 0);
    let mut acc: Option<Hash> = None;
    for level in 0..64u8 {
        if len >> level & 1 == 0 {
            continue;
        }
        // Leaves of the range left of this subtree: the bits of len above it.
        let before = len & u64::MAX.checked_shl(u32::from(level) + 1).unwrap_or(0);
        let node = src.node(level, (start + before) >> level)?;
        acc = Some(match acc {
            None => node,
            Some(right) => node_hash(&node, &right),
        });
    }
    // Only an empty range has no set bit; its RFC 9162 hash is the empty root.
    Ok(acc.unwrap_or_else(empty_root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::cell::Cell;
    use std::path::{Path, PathBuf};

    /// The eight leaves of RFC 6962's reference test data.
    const RFC6962_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Their leaf hashes (also in ledger-spec/merkle.md).
    const RFC6962_LEAF_HASHES: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ];

    /// Roots of the first 1..=8 RFC 6962 leaves (also in ledger-spec/merkle.md).
    const RFC6962_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    const VECTOR_DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/rfc9162-merkle/testdata"
    );

    fn h(hex_str: &str) -> Hash {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    fn rfc_leaf_hashes() -> Vec<Hash> {
        RFC6962_LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect()
    }

    /// Build a tree with `Frontier`, persisting what `append` returns.
    fn build(leaves: &[Hash]) -> (Frontier, MemNodes, Vec<Frontier>) {
        let mut f = Frontier::new();
        let mut nodes = MemNodes::new();
        let mut snapshots = vec![f.clone()];
        for leaf in leaves {
            nodes.insert_all(&f.append(*leaf));
            snapshots.push(f.clone());
        }
        (f, nodes, snapshots)
    }

    /// RFC 9162 §2.1.1 MTH, straight from the definition.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    /// A deterministic pseudo-random generator (splitmix64), so failures replay.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A node source that only serves nodes existing in a tree of `size`
    /// leaves and counts reads.
    struct Bounded<'a> {
        inner: &'a MemNodes,
        size: u64,
        reads: Cell<u64>,
    }
    impl NodeSource for Bounded<'_> {
        fn node(&self, level: u8, index: u64) -> Result<Hash, MerkleError> {
            self.reads.set(self.reads.get() + 1);
            let end = (index + 1).checked_shl(u32::from(level));
            assert!(
                end.is_some_and(|e| e <= self.size),
                "read node ({level}, {index}) outside a tree of size {}",
                self.size
            );
            self.inner.node(level, index)
        }
    }

    // ---- (a) public vectors: transparency-dev/merkle testdata ----

    fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                json_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }

    /// Where a hash sits in a vector; see [`vector_hash`].
    #[derive(Clone, Copy)]
    enum Role {
        Leaf,
        Root,
        Proof,
    }

    /// Decodes a vector's base64 field. A value that is not 32 bytes is
    /// rejected by [`hash_from_slice`], as our decoders reject it, and
    /// `strict_rejected` is set. To still run the verifier's own logic on
    /// the vector, the value is then replaced by a stand-in that equals no
    /// real hash, and equals another stand-in only for equal bytes in the
    /// same role.
    fn vector_hash(v: &serde_json::Value, role: Role, strict_rejected: &mut bool) -> Hash {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        hash_from_slice(&bytes).unwrap_or_else(|e| {
            assert_eq!(
                e,
                MerkleError::BadHashLength {
                    len: bytes.len() as u64
                }
            );
            *strict_rejected = true;
            let mut d = Sha256::new();
            d.update(b"points-ledger test stand-in for a value that is not 32 bytes");
            d.update([role as u8]);
            d.update(&bytes);
            d.finalize().into()
        })
    }

    fn vector_proof(v: &serde_json::Value, strict_rejected: &mut bool) -> Vec<Hash> {
        match &v["proof"] {
            serde_json::Value::Null => Vec::new(),
            p => p
                .as_array()
                .unwrap()
                .iter()
                .map(|x| vector_hash(x, Role::Proof, strict_rejected))
                .collect(),
        }
    }

    fn read_vector(file: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    fn vector_files() -> Vec<PathBuf> {
        let mut files = Vec::new();
        json_files(Path::new(VECTOR_DIR), &mut files);
        files.sort();
        files
    }

    /// Every vector file, happy paths and every negative case.
    #[test]
    fn rfc9162_public_vectors() {
        let files = vector_files();
        // What the folder holds: 98 inclusion and 98 consistency cases.
        assert_eq!(files.len(), 196, "vector count changed");
        let (mut inclusion, mut consistency, mut accepted) = (0, 0, 0);
        let mut accepted_only_by_verifier = Vec::new();
        for file in &files {
            let name = file.strip_prefix(VECTOR_DIR).unwrap();
            let name = name.to_str().unwrap().to_owned();
            let v = read_vector(file);
            let want_err = v["wantErr"].as_bool().unwrap();
            let mut strict_rejected = false;
            let proof = vector_proof(&v, &mut strict_rejected);
            let result = if v.get("leafIdx").is_some() {
                inclusion += 1;
                let leaf = vector_hash(&v["leafHash"], Role::Leaf, &mut strict_rejected);
                let root = vector_hash(&v["root"], Role::Root, &mut strict_rejected);
                verify_inclusion(
                    &leaf,
                    v["leafIdx"].as_u64().unwrap(),
                    v["treeSize"].as_u64().unwrap(),
                    &proof,
                    &root,
                )
            } else {
                consistency += 1;
                let root1 = vector_hash(&v["root1"], Role::Root, &mut strict_rejected);
                let root2 = vector_hash(&v["root2"], Role::Root, &mut strict_rejected);
                verify_consistency(
                    v["size1"].as_u64().unwrap(),
                    v["size2"].as_u64().unwrap(),
                    &root1,
                    &root2,
                    &proof,
                )
            };
            // The verifier's verdict, on every vector.
            assert_eq!(
                result.is_err(),
                want_err,
                "{name}: {} ({result:?})",
                v["desc"]
            );
            if !want_err {
                accepted += 1;
                if strict_rejected {
                    accepted_only_by_verifier.push(name);
                }
            }
        }
        assert_eq!((inclusion, consistency, accepted), (98, 98, 12));
        // Decoding then verifying, as a client does, rejects every negative
        // vector and accepts every happy path but one: equal sizes with
        // equal "don't care" roots that are not 32 bytes long, which our
        // hash decoding refuses before the verifier (which accepts it) runs.
        assert_eq!(
            accepted_only_by_verifier,
            ["consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"]
        );
    }

    // ---- (b) RFC 6962's 8-leaf tree ----

    /// Known roots: every root found in the vectors must match our table.
    fn roots_in_vectors() -> Vec<(u64, Hash)> {
        let mut roots = Vec::new();
        for file in vector_files()
            .iter()
            .filter(|f| f.ends_with("happy-path.json"))
        {
            let v = read_vector(file);
            let mut not_32_bytes = false;
            for (size, root) in [("treeSize", "root"), ("size1", "root1"), ("size2", "root2")] {
                if let Some(s) = v.get(size) {
                    roots.push((
                        s.as_u64().unwrap(),
                        vector_hash(&v[root], Role::Root, &mut not_32_bytes),
                    ));
                }
            }
            assert!(!not_32_bytes);
        }
        roots
    }

    #[test]
    fn rfc6962_tree_roots_and_proofs() {
        let leaves = rfc_leaf_hashes();
        let spec_leaves: Vec<Hash> = RFC6962_LEAF_HASHES.iter().map(|l| h(l)).collect();
        assert_eq!(leaves, spec_leaves);
        let (_, nodes, snapshots) = build(&leaves);
        let table: Vec<Hash> = RFC6962_ROOTS.iter().map(|r| h(r)).collect();
        let vector_roots = roots_in_vectors();
        let mut sizes_seen: Vec<u64> = vector_roots.iter().map(|r| r.0).collect();
        sizes_seen.sort();
        sizes_seen.dedup();
        assert_eq!(sizes_seen, [1, 2, 3, 5, 6, 7, 8]);
        for (size, root) in &vector_roots {
            assert_eq!(table[*size as usize - 1], *root, "size {size}");
        }
        // Size 4's root is the left node of every larger tree, as sent in
        // consistency/2's proof.
        assert_eq!(nodes.node(2, 0).unwrap(), table[3]);
        assert_eq!(snapshots[0].root(), empty_root());
        assert_eq!(
            empty_root(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        for size in 1..=8u64 {
            let want = table[size as usize - 1];
            assert_eq!(snapshots[size as usize].root(), want, "frontier {size}");
            assert_eq!(root_at(size, &nodes).unwrap(), want, "root_at {size}");
        }

        // Generated proofs equal the vectors' proofs.
        let mut checked = 0;
        for file in vector_files()
            .iter()
            .filter(|f| f.ends_with("happy-path.json"))
        {
            let v = read_vector(file);
            let mut not_32_bytes = false;
            let want = vector_proof(&v, &mut not_32_bytes);
            let got = if let Some(idx) = v.get("leafIdx") {
                let idx = idx.as_u64().unwrap();
                let leaf = vector_hash(&v["leafHash"], Role::Leaf, &mut not_32_bytes);
                assert_eq!(leaf, leaves[idx as usize]);
                inclusion_proof(idx, v["treeSize"].as_u64().unwrap(), &nodes).unwrap()
            } else {
                consistency_proof(
                    v["size1"].as_u64().unwrap(),
                    v["size2"].as_u64().unwrap(),
                    &nodes,
                )
                .unwrap()
            };
            assert!(!not_32_bytes);
            assert_eq!(got, want, "{}", file.display());
            checked += 1;
        }
        assert_eq!(checked, 10);
    }

    #[test]
    fn spec_file_shows_these_vectors() {
        let spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/ledger-spec/merkle.md"
        ))
        .unwrap();
        for (i, (data, hash)) in RFC6962_LEAVES.iter().zip(RFC6962_LEAF_HASHES).enumerate() {
            let data = if data.is_empty() {
                "(empty)".to_string()
            } else {
                format!("`{data}`")
            };
            assert!(
                spec.contains(&format!("| {i} | {data} | `{hash}` |")),
                "leaf {i}"
            );
        }
        assert!(spec.contains(&format!("| 0 | `{}` |", hex::encode(empty_root()))));
        for (i, root) in RFC6962_ROOTS.iter().enumerate() {
            assert!(
                spec.contains(&format!("| {} | `{root}` |", i + 1)),
                "root {}",
                i + 1
            );
        }
    }

    // ---- (c) property-style: sizes 1..=300, seeded random leaves ----

    #[test]
    fn random_trees_up_to_300() {
        const MAX: u64 = 300;
        let mut rng = Rng(0x5eed_0001);
        let leaves: Vec<Hash> = (0..MAX)
            .map(|_| leaf_hash(&rng.next().to_le_bytes()))
            .collect();
        let (full, nodes, snapshots) = build(&leaves);
        // append returned every perfect node exactly once: 2n - popcount(n).
        assert_eq!(nodes.len(), 2 * MAX - u64::from(MAX.count_ones()));
        assert_eq!(full.size(), MAX);

        for n in 1..=MAX {
            let src = Bounded {
                inner: &nodes,
                size: n,
                reads: Cell::new(0),
            };
            let root = naive_root(&leaves[..n as usize]);
            let snap = &snapshots[n as usize];
            assert_eq!(snap.size(), n);
            assert_eq!(snap.root(), root, "frontier root at {n}");
            assert_eq!(root_at(n, &src).unwrap(), root, "root_at {n}");
            assert_eq!(&Frontier::load(n, &src).unwrap(), snap, "load {n}");

            for i in 0..n {
                src.reads.set(0);
                let proof = inclusion_proof(i, n, &src).unwrap();
                assert!(src.reads.get() <= 2 * 9, "reads for ({i}, {n})");
                verify_inclusion(&leaves[i as usize], i, n, &proof, &root).unwrap();
                // A wrong index or wrong leaf must not verify.
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(verify_inclusion(&leaves[i as usize], j, n, &proof, &root).is_err());
                }
                if let Some(last) = proof.len().checked_sub(1) {
                    let mut tampered = proof.clone();
                    tampered[last][31] ^= 0x80;
                    assert!(verify_inclusion(&leaves[i as usize], i, n, &tampered, &root).is_err());
                }
            }

            let olds: Vec<u64> = if n <= 64 {
                (1..=n).collect()
            } else {
                let mut s: Vec<u64> = (0..12).map(|_| 1 + rng.below(n)).collect();
                s.extend([1, n - 1, n, 64, 128, 256].iter().filter(|&&m| m <= n));
                s
            };
            for m in olds {
                src.reads.set(0);
                let proof = consistency_proof(m, n, &src).unwrap();
                assert!(src.reads.get() <= 2 * 9, "reads for ({m}, {n})");
                let old_root = snapshots[m as usize].root();
                verify_consistency(m, n, &old_root, &root, &proof).unwrap();
                if let Some(mut bad) = proof.first().copied() {
                    bad[0] ^= 1;
                    let mut tampered = proof.clone();
                    tampered[0] = bad;
                    assert!(verify_consistency(m, n, &old_root, &root, &tampered).is_err());
                    assert!(verify_consistency(m, n, &root, &old_root, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn edge_cases_are_errors() {
        let nodes = MemNodes::new();
        let r = empty_root();
        assert_eq!(root_at(0, &nodes), Ok(empty_root()));
        assert_eq!(Frontier::load(0, &nodes), Ok(Frontier::new()));
        assert_eq!(
            inclusion_proof(0, 0, &nodes),
            Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            consistency_proof(0, 5, &nodes),
            Err(MerkleError::SizeOutOfRange {
                old_size: 0,
                new_size: 5
            })
        );
        assert_eq!(
            consistency_proof(6, 5, &nodes),
            Err(MerkleError::SizeOutOfRange {
                old_size: 6,
                new_size: 5
            })
        );
        assert_eq!(consistency_proof(5, 5, &nodes), Ok(vec![]));
        // The rightmost subtree is read first.
        assert_eq!(
            root_at(3, &nodes),
            Err(MerkleError::MissingNode { level: 0, index: 2 })
        );
        // Extreme sizes and over-long proofs are rejected without panicking.
        let long = vec![r; 200];
        for (i, s) in [
            (0, u64::MAX),
            (u64::MAX - 1, u64::MAX),
            (u64::MAX, u64::MAX),
        ] {
            assert!(verify_inclusion(&r, i, s, &long, &r).is_err());
            assert!(verify_inclusion(&r, i, s, &long[..64], &r).is_err());
            assert!(verify_inclusion(&r, i, s, &[], &r).is_err());
        }
        for (m, n) in [(1, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX)] {
            assert!(verify_consistency(m, n, &r, &r, &long).is_err());
            assert!(verify_consistency(m, n, &r, &r, &long[..64]).is_err());
            assert!(verify_consistency(m, n, &r, &r, &[]).is_err());
        }
        assert_eq!(path_len(0, u64::MAX), 64);
        assert_eq!(path_len(u64::MAX, u64::MAX), 64);
        assert_eq!(
            hash_from_slice(&[0u8; 31]),
            Err(MerkleError::BadHashLength { len: 31 })
        );
    }

    #[test]
    fn frontier_load_at_huge_sizes_reads_one_node_per_bit() {
        /// Serves any node as a hash of its position.
        struct Synthetic;
        impl NodeSource for Synthetic {
            fn node(&self, level: u8, index: u64) -> Result<Hash, MerkleError> {
                let mut b = [0u8; 9];
                b[0] = level;
                b[1..].copy_from_slice(&index.to_be_bytes());
                Ok(leaf_hash(&b))
            }
        }
        for size in [u64::MAX, 1 << 63, (1 << 63) + 1, u64::MAX - 1] {
            let mut f = Frontier::load(size, &Synthetic).unwrap();
            assert_eq!(f.peaks.len() as u32, size.count_ones());
            assert_eq!(root_at(size, &Synthetic).unwrap(), f.root());
            let p = inclusion_proof(size - 1, size, &Synthetic).unwrap();
            assert_eq!(p.len() as u64, path_len(size - 1, size - 1));
            // The synthetic nodes are not hashes of their children, so a proof
            // only checks out when the last leaf is a subtree of its own.
            if size % 2 == 1 {
                let leaf = Synthetic.node(0, size - 1).unwrap();
                verify_inclusion(&leaf, size - 1, size, &p, &f.root()).unwrap();
            }
            if size < u64::MAX {
                let nodes = f.append([1; 32]);
                assert_eq!(nodes.len() as u32, size.trailing_ones() + 1);
            }
        }
    }
}
