// RFC 9162 Merkle tree verification (ledger-spec/merkle.md): leaf and node hashes,
// inclusion proofs, consistency proofs. Sizes and indices are BigInt (u64 on the wire).

import { concat, equal } from './bytes.js';
import { sha256 } from './crypto.js';

/** A proof failure with the error name of src/merkle.rs. */
export class MerkleError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

/** SHA-256(0x00 || leaf data). */
export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
/** SHA-256(0x01 || left || right). */
export const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

const big = (x) => BigInt(x);

function bitLength(x) {
  let n = 0;
  while (x > 0n) {
    n++;
    x >>= 1n;
  }
  return n;
}

function popcount(x) {
  let n = 0;
  while (x > 0n) {
    n += Number(x & 1n);
    x >>= 1n;
  }
  return n;
}

function innerBorder(fn, sn) {
  const inner = bitLength(fn ^ sn);
  const border = popcount(fn >> BigInt(inner));
  return [inner, border];
}

function checkHashes(list) {
  for (const h of list) {
    if (!(h instanceof Uint8Array) || h.length !== 32) throw new MerkleError('WrongHashLength');
  }
}

/**
 * Verifies that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves with
 * `root`. Throws MerkleError (IndexOutOfRange, WrongProofLength, RootMismatch).
 */
export async function verifyInclusion(leaf, index, size, proof, root) {
  const m = big(index), n = big(size);
  checkHashes([leaf, root, ...proof]);
  if (m >= n) throw new MerkleError('IndexOutOfRange');
  const [inner, border] = innerBorder(m, n - 1n);
  if (proof.length !== inner + border) throw new MerkleError('WrongProofLength');
  let fn = m, sn = n - 1n, r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new MerkleError('WrongProofLength');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(r, root)) throw new MerkleError('RootMismatch');
}

/**
 * Verifies that the tree of `size1` leaves with `root1` is a prefix of the tree of `size2`
 * leaves with `root2`. Throws MerkleError (SizeOutOfRange, WrongProofLength,
 * OldRootMismatch, RootMismatch).
 */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  const m = big(size1), n = big(size2);
  checkHashes([root1, root2, ...proof]);
  if (m === 0n || m > n) throw new MerkleError('SizeOutOfRange');
  if (m === n) {
    if (proof.length !== 0) throw new MerkleError('WrongProofLength');
    if (!equal(root1, root2)) throw new MerkleError('RootMismatch');
    return;
  }
  let t = 0n;
  while (((m >> t) & 1n) === 0n) t++;
  let fn = (m - 1n) >> t, sn = (n - 1n) >> t;
  const [inner, border] = innerBorder(fn, sn);
  const expected = inner + border + (fn !== 0n ? 1 : 0);
  if (proof.length !== expected) throw new MerkleError('WrongProofLength');
  let rest = proof;
  let seed = root1;
  if (fn !== 0n) {
    seed = proof[0];
    rest = proof.slice(1);
  }
  let fr = seed, sr = seed;
  for (const c of rest) {
    if (sn === 0n) throw new MerkleError('WrongProofLength');
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new MerkleError('WrongProofLength');
  if (!equal(fr, root1)) throw new MerkleError('OldRootMismatch');
  if (!equal(sr, root2)) throw new MerkleError('RootMismatch');
}
