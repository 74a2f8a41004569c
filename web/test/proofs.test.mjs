// The page's Merkle proofs, signed notes, checkpoints and Ed25519 acceptance, checked
// against the public vectors of tests/vectors/ and the examples of ledger-spec.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { hex, unhex, unb64, b64, utf8, concat } from '../bytes.js';
import { verifyInclusion, verifyConsistency, leafHash, nodeHash } from '../merkle.js';
import { parseVkey, openNote, openCheckpoint, parseCheckpointBody, keyId } from '../note.js';
import { verifyProblem, sign, publicFromSeed, SMALL_ORDER, pkcs8FromSeed } from '../crypto.js';
import { checkConsistency } from '../verify.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const vectors = path.resolve(here, '..', '..', 'tests', 'vectors');

function walk(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.json') ? [p] : [];
  });
}

const b64list = (l) => (l || []).map((x) => unb64(x) ?? new Uint8Array(0));

test('RFC 9162 test data (transparency-dev/merkle): every case', async () => {
  const files = walk(path.join(vectors, 'rfc9162-merkle', 'testdata'));
  assert.ok(files.length >= 196, `found ${files.length} cases`);
  let ok = 0;
  for (const f of files) {
    const c = JSON.parse(readFileSync(f, 'utf8'));
    const rel = path.relative(vectors, f);
    let err = null;
    try {
      if ('leafIdx' in c) {
        await verifyInclusion(unb64(c.leafHash) ?? new Uint8Array(0), c.leafIdx, c.treeSize, b64list(c.proof), unb64(c.root) ?? new Uint8Array(0));
      } else {
        await verifyConsistency(c.size1, c.size2, unb64(c.root1) ?? new Uint8Array(0), unb64(c.root2) ?? new Uint8Array(0), b64list(c.proof));
      }
    } catch (e) {
      err = e;
    }
    // merkle.md §7: equal 12-byte "roots" are refused for not being 32 bytes.
    const want = rel.endsWith('sizes-are-equal-one-and-proof-is-empty.json') ? true : c.wantErr;
    assert.equal(err !== null, want, `${rel}: ${c.desc || ''} ${err ? err.message : ''}`);
    if (!want) ok++;
  }
  assert.ok(ok >= 11, `${ok} proofs verified`);
});

test('merkle.md §7: roots of the reference leaves, and every proof of an 8-leaf tree', async () => {
  const data = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
  const leaves = await Promise.all(data.map((d) => leafHash(unhex(d))));
  async function mth(l) {
    if (l.length === 1) return l[0];
    let k = 1;
    while (k * 2 < l.length) k *= 2;
    return nodeHash(await mth(l.slice(0, k)), await mth(l.slice(k)));
  }
  async function path_(m, l) {
    if (l.length === 1) return [];
    let k = 1;
    while (k * 2 < l.length) k *= 2;
    return m < k ? [...(await path_(m, l.slice(0, k))), await mth(l.slice(k))] : [...(await path_(m - k, l.slice(k))), await mth(l.slice(0, k))];
  }
  async function subproof(m, l, whole) {
    if (m === l.length) return whole ? [] : [await mth(l)];
    let k = 1;
    while (k * 2 < l.length) k *= 2;
    return m <= k ? [...(await subproof(m, l.slice(0, k), whole)), await mth(l.slice(k))] : [...(await subproof(m - k, l.slice(k), false)), await mth(l.slice(0, k))];
  }
  assert.equal(hex(await mth(leaves)), '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328');
  for (let n = 1; n <= 8; n++) {
    const l = leaves.slice(0, n);
    const root = await mth(l);
    for (let m = 0; m < n; m++) {
      const p = await path_(m, l);
      await verifyInclusion(l[m], m, n, p, root);
      if (p.length > 0) {
        const bad = p.map((h) => h.slice());
        bad[0][0] ^= 1;
        await assert.rejects(verifyInclusion(l[m], m, n, bad, root));
      }
      await assert.rejects(verifyInclusion(l[m], m, n, [...p, root], root));
    }
    for (let m = 1; m <= n; m++) {
      const old = await mth(leaves.slice(0, m));
      const p = await subproof(m, l, true);
      await verifyConsistency(m, n, old, root, p);
      if (m < n) await assert.rejects(verifyConsistency(m, n, root, root, p));
    }
  }
});

test('C2SP signed-note example', async () => {
  const ex = JSON.parse(readFileSync(path.join(vectors, 'c2sp-signed-note', 'example.json'), 'utf8'));
  const v = await parseVkey(ex.vkey);
  assert.equal(v.id, ex.key_id_hex);
  const opened = await openNote(ex.note, v);
  assert.equal(opened.text, ex.text);
  await assert.rejects(openNote(ex.note.replace('example', 'exbmple'), v));
  const sigAt = ex.note.lastIndexOf(' ') + 10;
  const flipped = ex.note.slice(0, sigAt) + (ex.note[sigAt] === 'A' ? 'B' : 'A') + ex.note.slice(sigAt + 1);
  await assert.rejects(openNote(flipped, v));
  await assert.rejects(parseVkey(ex.vkey.replace('+530d903a+', '+530d903b+')));
});

// checkpoints.md §8.
const LOG_VKEY = 'points.example/test+8b948c4a+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs';
const CP_NOTE =
  'points.example/test\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n' +
  'head abababababababababababababababababababababababababababababababab\ntime 1767225600000\n\n' +
  '\u2014 points.example/test i5SMShAg1iS9N6pODOIWYBvr+ptbiDc/0794OOWMuMnYmc67/bJjSDyobFLDE3UTvd4eVWPjApos5IrrfLjZ+jXPcA8=\n';
const COSIG = '\u2014 witness.example/w1 JLXZ/gAAAABpVbkB1JX1d3L/xDRbopGOjvh/Ooo4qwZQHqbkdSxnQ8rbrHSoVhCR8grm0xte+6QVXD/sKvQtmxYEzMyKbn12ou5DDw==\n';

function viewOf(note) {
  return {
    origin: 'points.example/test',
    size: 8,
    root: '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    head: 'ab'.repeat(32),
    time_ms: 1767225600000,
    note,
  };
}

test('checkpoints.md §8: the log key, its checkpoint, a cosigned note', async () => {
  const seed = new Uint8Array(32).fill(7);
  const pub = await publicFromSeed(seed);
  assert.equal(hex(pub), 'ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c');
  assert.equal(await keyId('points.example/test', 1, pub), '8b948c4a');
  const v = await parseVkey(LOG_VKEY);
  const cp = await openCheckpoint(viewOf(CP_NOTE), v);
  assert.equal(cp.size, 8n);
  assert.equal(cp.time, 1767225600000n);
  assert.equal(cp.text.length, 156);
  // The signature is the deterministic Ed25519 signature of the body.
  const sig = await sign(seed, utf8(cp.text));
  assert.equal(hex(sig), '1020d624bd37aa4e0ce216601bebfa9b5b88373fd3bf7838e58cb8c9d899cebbfdb263483ca86c52c3137513bdde1e5563e3029a2ce48aeb7cb8d9fa35cf700f');
  // A witness cosignature is an unknown key here: kept, not trusted.
  const cosigned = await openCheckpoint(viewOf(CP_NOTE + COSIG), v);
  assert.deepEqual(cosigned.signatures.map((s) => s.trusted), [true, false]);
  // Tampering: the JSON view, the body, the signature.
  await assert.rejects(openCheckpoint({ ...viewOf(CP_NOTE), size: 9 }, v), /differ/);
  await assert.rejects(openCheckpoint({ ...viewOf(CP_NOTE), root: '00'.repeat(32) }, v), /differ/);
  await assert.rejects(openCheckpoint(viewOf(CP_NOTE.replace('\n8\n', '\n9\n')), v));
  await assert.rejects(openCheckpoint(viewOf(CP_NOTE.replace('i5SM', 'i5SN')), v));
  // Only a cosignature: no signature by the pinned key.
  await assert.rejects(openNote(CP_NOTE.split('\u2014')[0] + COSIG, v), /pinned/);
  // Another key under the same name and a wrong id is not trusted.
  const other = await parseVkey('points.example/test+8b948c4a+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs');
  assert.equal(other.id, v.id);
});

test("a verifier key whose base64 holds '+' (regression)", async () => {
  // Key ids and keys from src/checkpoint.rs's rules; this key's base64 has three '+'.
  const vkey = 'points.local/afbad015+3feec8c7+AVkPV+ckq0+sVQK+ZEW0rYPG6frJPNn8c2al354uS2lh';
  const v = await parseVkey(vkey);
  assert.equal(v.name, 'points.local/afbad015');
  assert.equal(hex(v.key), '590f57e724ab4fac5502be6445b4ad83c6e9fac93cd9fc7366a5df9e2e4b6961');
  await assert.rejects(parseVkey('a+b'));
  await assert.rejects(parseVkey('points.local/afbad015+3feec8c7+AVkPV+ckq0+sVQK+ZEW0rYPG6frJPNn8c2al354uS2lH'));
});

test('checkpoint bodies: syntax', () => {
  const good = 'o\n1\n' + b64(new Uint8Array(32)) + '\nhead ' + '00'.repeat(32) + '\ntime 0\n';
  assert.equal(parseCheckpointBody(good).size, 1n);
  for (const bad of [
    good.slice(0, -1),
    good.replace('\n1\n', '\n01\n'),
    good.replace('\n1\n', '\n-1\n'),
    good.replace('\n1\n', '\n18446744073709551616\n'),
    good.replace('time 0', 'time 00'),
    good.replace('head ', 'head  '),
    good.replace('head ' + '00'.repeat(32), 'head ' + 'AA'.repeat(32)),
    good + 'extra\n',
    good.replace('o\n', 'o o\n'),
    good.replace('\n1\n', '\n0\n'),
  ]) {
    assert.throws(() => parseCheckpointBody(bad), /./, JSON.stringify(bad));
  }
});

test('consistency with the last checkpoint seen: ok, rollback, fork, bad proof', async () => {
  const leaves = await Promise.all([0, 1, 2].map((i) => leafHash(Uint8Array.of(i))));
  const r2 = await nodeHash(leaves[0], leaves[1]);
  const r3 = await nodeHash(r2, leaves[2]);
  const seen = { size: '2', root: hex(r2) };
  await checkConsistency(seen, { size: 3n, root: r3 }, async (from, to) => ({ from: Number(from), to: Number(to), proof: [hex(leaves[2])] }));
  await checkConsistency(seen, { size: 2n, root: r2 }, async () => assert.fail('no proof needed'));
  await assert.rejects(checkConsistency(seen, { size: 1n, root: leaves[0] }, null), (e) => e.check === 'rollback');
  await assert.rejects(checkConsistency(seen, { size: 2n, root: r3 }, null), (e) => e.check === 'fork');
  await assert.rejects(
    checkConsistency(seen, { size: 3n, root: r3 }, async (from, to) => ({ from: Number(from), to: Number(to), proof: [hex(leaves[1])] })),
    (e) => e.check === 'consistency',
  );
  await assert.rejects(
    checkConsistency(seen, { size: 3n, root: r3 }, async () => ({ from: 1, to: 3, proof: [] })),
    (e) => e.check === 'consistency',
  );
});

// A tiny edwards25519 implementation, only to check the small-order table independently.
const P = (1n << 255n) - 19n;
const D = (-121665n * modInv(121666n)) % P;
function mod(a) { return ((a % P) + P) % P; }
function modPow(b, e) { let r = 1n; b = mod(b); while (e > 0n) { if (e & 1n) r = mod(r * b); b = mod(b * b); e >>= 1n; } return r; }
function modInv(a) { return modPow(a, P - 2n); }
function decodePoint(bytes) {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(bytes[i]);
  const sign = y >> 255n;
  y &= (1n << 255n) - 1n;
  const u = mod(y * y - 1n), v = mod(D * y * y + 1n);
  let x = modPow(u * modInv(v), (P + 3n) / 8n);
  if (mod(v * x * x) !== u) x = mod(x * modPow(2n, (P - 1n) / 4n));
  if (mod(v * x * x) !== u) return null;
  if ((x & 1n) !== sign) x = mod(-x);
  return [x, y];
}
function add([x1, y1], [x2, y2]) {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + x2 * y1) * modInv(1n + t)), mod((y1 * y2 + x1 * x2) * modInv(1n - t))];
}

test('the small-order table is exactly the eight points with [8]P = O', () => {
  assert.equal(SMALL_ORDER.size, 8);
  for (const h of SMALL_ORDER) {
    const p = decodePoint(unhex(h));
    assert.ok(p, `${h} decodes`);
    let q = p;
    for (let i = 0; i < 3; i++) q = add(q, q);
    assert.deepEqual(q, [0n, 1n], `${h} has small order`);
  }
});

test('ed25519-speccheck: strict acceptance (cofactorless where WebCrypto is)', async () => {
  const cases = JSON.parse(readFileSync(path.join(vectors, 'ed25519-speccheck', 'cases.json'), 'utf8'));
  // signatures.md §7: X X X V V V X X X X X X. WebCrypto refuses the mixed-order cases 4
  // and 5 (cofactorless equation); everything else agrees with the ledger.
  const want = ['small_order_key', 'small_order_key', 'small_order_r', null, 'invalid_signature', 'invalid_signature',
    'non_canonical_s', 'non_canonical_s', 'non_canonical_r', 'non_canonical_r', 'non_canonical_key', 'non_canonical_key'];
  for (const [i, c] of cases.entries()) {
    const got = await verifyProblem(unhex(c.pub_key), unhex(c.message), unhex(c.signature));
    assert.equal(got, want[i], `case ${i}`);
  }
});

test('PKCS#8 wrapper of a seed', () => {
  const der = pkcs8FromSeed(new Uint8Array(32).fill(9));
  assert.equal(der.length, 48);
  assert.equal(hex(der.subarray(0, 16)), '302e020100300506032b657004220420');
  assert.throws(() => pkcs8FromSeed(new Uint8Array(31)));
  assert.equal(hex(concat(utf8('a'), unb64('YQ=='))), '6161');
  assert.equal(unb64('YR=='), null);
  assert.equal(unb64('YQ='), null);
});
