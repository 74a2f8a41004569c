// SHA-256 and Ed25519 on WebCrypto (browsers and node 20), key files, random op ids.
//
// Ed25519 acceptance (ledger-spec/signatures.md §4) is "strict, cofactored". WebCrypto
// verifies with the cofactorless equation, so this module first applies the spec's strict
// encoding checks (canonical key and R, neither of small order, s < l) and then asks
// WebCrypto. Every signature an honest signer makes passes both; the only difference is
// that a signature under a key or nonce with a torsion component (speccheck cases 4 and 5,
// which only a deliberately crafted key produces) is refused here although the ledger
// accepts it, so the page errs on the side of warning.

import { hex, unhex, concat, equal, utf8 } from './bytes.js';

const subtle = globalThis.crypto.subtle;

/** SHA-256 of bytes. */
export async function sha256(bytes) {
  return new Uint8Array(await subtle.digest('SHA-256', bytes));
}

// ---- Ed25519 ---------------------------------------------------------------------------

const P = (1n << 255n) - 19n;
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

/** The canonical encodings of the eight points of small order. */
export const SMALL_ORDER = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
]);

function leInt(bytes) {
  let x = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[i]);
  return x;
}

/**
 * Why a 32-byte point encoding is refused as a key or R, or null: its y must be below p,
 * it must not be one of the two encodings of x = 0 with the sign bit set, and it must not
 * be of small order. (Undecodable strings are refused by WebCrypto itself.)
 */
export function pointProblem(b) {
  const y = leInt(b) & ((1n << 255n) - 1n);
  const sign = b[31] >> 7;
  if (y >= P) return 'non_canonical';
  if (sign === 1 && (y === 1n || y === P - 1n)) return 'non_canonical';
  if (SMALL_ORDER.has(hex(b))) return 'small_order';
  return null;
}

const PKCS8_ED25519_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

/**
 * The PKCS#8 DER wrapper of a 32-byte Ed25519 seed (RFC 8410 §7):
 * SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }.
 */
export function pkcs8FromSeed(seed) {
  if (seed.length !== 32) throw new RangeError('an Ed25519 seed is 32 bytes');
  return concat(PKCS8_ED25519_PREFIX, seed);
}

const signingKeys = new Map();

async function signingKey(seed) {
  const id = hex(seed);
  let k = signingKeys.get(id);
  if (!k) {
    k = await subtle.importKey('pkcs8', pkcs8FromSeed(seed), { name: 'Ed25519' }, true, ['sign']);
    signingKeys.set(id, k);
  }
  return k;
}

function b64urlToBytes(s) {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** The public key of a 32-byte seed. */
export async function publicFromSeed(seed) {
  const jwk = await subtle.exportKey('jwk', await signingKey(seed));
  return b64urlToBytes(jwk.x);
}

/** Ed25519 signature (64 bytes) of `msg` with the key of `seed` (RFC 8032, deterministic). */
export async function sign(seed, msg) {
  return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, await signingKey(seed), msg));
}

const verifyKeys = new Map();

/**
 * Checks an Ed25519 signature under the acceptance rule described above. Returns null when
 * it is accepted, else the refusal code of signatures.md (or `invalid_signature`).
 */
export async function verifyProblem(pub, msg, sig) {
  if (pub.length !== 32 || sig.length !== 64) return 'invalid_signature';
  const pk = pointProblem(pub);
  if (pk) return `${pk}_key`;
  const rp = pointProblem(sig.subarray(0, 32));
  if (rp) return `${rp}_r`;
  if (leInt(sig.subarray(32)) >= L) return 'non_canonical_s';
  const id = hex(pub);
  let key = verifyKeys.get(id);
  if (!key) {
    try {
      key = await subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
    } catch {
      return 'non_canonical_key';
    }
    if (verifyKeys.size > 256) verifyKeys.clear();
    verifyKeys.set(id, key);
  }
  try {
    return (await subtle.verify({ name: 'Ed25519' }, key, sig, msg)) ? null : 'invalid_signature';
  } catch {
    return 'invalid_signature';
  }
}

/** Whether the signature is accepted. */
export async function verify(pub, msg, sig) {
  return (await verifyProblem(pub, msg, sig)) === null;
}

// ---- keys ------------------------------------------------------------------------------

/** 32 random bytes from the platform's generator. */
export function randomSeed() {
  return globalThis.crypto.getRandomValues(new Uint8Array(32));
}

/** A random u128 op id, as a decimal string (the JSON form of OpId). */
export function randomOpId() {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return leInt(b).toString();
}

/** The text of a key file (ledger-spec/signatures.md §6). */
export function formatKeyFile(seed, pub) {
  return `points-ledger-key v1\nsecret ${hex(seed)}\npublic ${hex(pub)}\n`;
}

/**
 * Parses a key file exactly as signatures.md §6 says: three lines, each ending in "\n" (the
 * last one's may be missing), no "\r", lowercase hex, and a public key that is the one
 * derived from the secret. Returns `{seed, pub}` or throws an Error whose `code` is
 * `key_format` or `key_mismatch`.
 */
export async function parseKeyFile(text) {
  const fail = (code, msg) => Object.assign(new Error(msg), { code });
  if (typeof text !== 'string' || text.includes('\r')) throw fail('key_format', 'carriage return');
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const lines = body.split('\n');
  const m1 = lines.length === 3 && lines[0] === 'points-ledger-key v1';
  const s = lines[1] && /^secret ([0-9a-f]{64})$/.exec(lines[1]);
  const p = lines[2] && /^public ([0-9a-f]{64})$/.exec(lines[2]);
  if (!m1 || !s || !p) throw fail('key_format', 'not a points-ledger key file');
  const seed = unhex(s[1], 32);
  const pub = unhex(p[1], 32);
  const derived = await publicFromSeed(seed);
  if (!equal(derived, pub)) throw fail('key_mismatch', 'public key does not match the secret');
  return { seed, pub };
}

export { utf8 };
