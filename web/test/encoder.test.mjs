// The page's canonical encoder, decoder and signer checked against the ledger-spec test
// vectors (ledger-spec/vectors/*.json; POINTS_VECTORS_DIR overrides the folder).
//
//   node --test web/test/

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { hex, unhex, concat } from '../bytes.js';
import {
  encodeEnvelope, encodeSignedOp, encodeEntry, signingPayload, encodeBatch,
  decodeEntry, decodeSignedOp, decodeBatch, sameAsJson, CodecError,
  OP_SIGNING_DOMAIN, ENTRY_HASH_DOMAIN, OP_TYPES,
} from '../codec.js';
import { sha256, sign, verify, publicFromSeed, formatKeyFile, parseKeyFile } from '../crypto.js';
import { leafHash } from '../merkle.js';
import { entryHash, balanceEffect } from '../verify.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const dir = process.env.POINTS_VECTORS_DIR || path.join(repo, 'ledger-spec', 'vectors');

function load(name) {
  const p = path.join(dir, name);
  assert.ok(existsSync(p), `test vectors missing: ${p} (run \`cargo run --example gen_vectors -- DIR\` and set POINTS_VECTORS_DIR=DIR)`);
  // Integers beyond 2^53 lose precision in JSON.parse: read every long integer as a decimal
  // string (which the encoder accepts) so that u64 extremes stay exact.
  const text = readFileSync(p, 'utf8').replace(/([:\[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"$2"');
  return JSON.parse(text);
}

const keys = load('keys.json');
const ops = load('ops.json');
const chain = load('chain.json');
const invalid = load('invalid.json');
const seedOf = new Map(keys.keys.map((k) => [k.public_key, unhex(k.seed, 32)]));

test('the domain tags are the ones of the spec', () => {
  assert.equal(hex(OP_SIGNING_DOMAIN), ops.op_signing_domain_hex);
  assert.equal(hex(ENTRY_HASH_DOMAIN), ops.entry_hash_domain_hex);
});

test('keys: public keys from seeds, key files round-trip', async () => {
  for (const k of keys.keys) {
    const seed = unhex(k.seed, 32);
    assert.equal(hex(await publicFromSeed(seed)), k.public_key, k.role);
    const text = formatKeyFile(seed, unhex(k.public_key));
    const parsed = await parseKeyFile(text);
    assert.equal(hex(parsed.seed), k.seed);
    assert.equal(hex(parsed.pub), k.public_key);
    await parseKeyFile(text.slice(0, -1)); // final newline may be missing
    for (const bad of [
      text.replace(/\n/g, '\r\n'),
      text.toUpperCase(),
      text + '\n',
      text.replace('points-ledger-key v1', 'points-ledger-key v2'),
      text.replace(`public ${k.public_key}`, `public ${keys.keys[(keys.keys.indexOf(k) + 1) % keys.keys.length].public_key}`),
      '',
    ]) {
      await assert.rejects(parseKeyFile(bad), /./, JSON.stringify(bad.slice(0, 40)));
    }
  }
});

test('ops.json: every op type encodes, signs and decodes byte for byte', async () => {
  const seen = new Set();
  assert.ok(ops.vectors.length >= OP_TYPES.length, 'one vector per op type at least');
  for (const v of ops.vectors) {
    const name = v.name;
    seen.add(v.envelope.op.type);
    // Where the JSON form is ambiguous (`json_round_trip: false`: Some(None) and None are
    // both null), the envelope is rebuilt from the bytes instead.
    const envelope = v.json_round_trip === false ? decodeSignedOp(unhex(v.signed_op_hex)).envelope : v.envelope;
    const env = encodeEnvelope(envelope);
    assert.equal(hex(env), v.envelope_hex, `${name}: envelope bytes`);
    const payload = signingPayload(envelope);
    assert.equal(hex(payload), v.signing_payload_hex, `${name}: signing payload`);
    assert.equal(hex(await sha256(payload)), v.payload_digest, `${name}: payload digest`);
    const seed = seedOf.get(v.envelope.signer);
    assert.ok(seed, `${name}: signer key in keys.json`);
    assert.equal(hex(await sign(seed, payload)), v.signature, `${name}: deterministic signature`);
    assert.ok(await verify(unhex(v.envelope.signer), payload, unhex(v.signature)), `${name}: verifies`);
    const signed = { envelope, signature: v.signature };
    assert.equal(hex(encodeSignedOp(signed)), v.signed_op_hex, `${name}: signed op bytes`);
    const decoded = decodeSignedOp(unhex(v.signed_op_hex));
    assert.ok(sameAsJson(decoded, { envelope: v.envelope, signature: v.signature }), `${name}: decodes to its JSON form`);
    assert.equal(hex(encodeSignedOp(decoded)), v.signed_op_hex, `${name}: decode then encode is the identity`);
    const flipped = unhex(v.signature);
    flipped[10] ^= 1;
    assert.ok(!(await verify(unhex(v.envelope.signer), payload, flipped)), `${name}: a flipped bit fails`);
  }
  for (const [type] of OP_TYPES) assert.ok(seen.has(type), `a vector of op type ${type}`);
});

test('ops.json: batch bytes', () => {
  const b = ops.batch;
  const decodedOps = b.signed_ops_hex.map((h) => decodeSignedOp(unhex(h)));
  assert.equal(hex(encodeBatch(decodedOps)), b.batch_hex);
  const back = decodeBatch(unhex(b.batch_hex));
  assert.equal(back.length, b.signed_ops_hex.length);
  back.forEach((o, i) => assert.equal(hex(encodeSignedOp(o)), b.signed_ops_hex[i]));
});

async function mth(leaves) {
  if (leaves.length === 0) return sha256(new Uint8Array());
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  const l = await mth(leaves.slice(0, k));
  const r = await mth(leaves.slice(k));
  return sha256(concat(Uint8Array.of(1), l, r));
}

const chains = [['chain.json', chain, (c) => c.final.orders || {}, () => ({})]];
const loyaltyPath = path.join(dir, 'loyalty.json');
if (existsSync(loyaltyPath)) {
  chains.push(['loyalty.json', load('loyalty.json'), () => ({}), (c) => c.final.earns || {}]);
}

for (const [name, c] of chains) {
  test(`${name}: entry bytes, hashes, links, Merkle roots`, async () => {
    const leaves = [];
    let prev = '00'.repeat(32);
    for (const e of c.entries) {
      const bytes = unhex(e.entry_hex);
      const entry = decodeEntry(bytes);
      assert.equal(entry.seq, BigInt(e.seq));
      assert.equal(entry.prev_hash, prev, `entry ${e.seq} links to the previous one`);
      assert.equal(entry.timestamp_ms, BigInt(e.timestamp_ms));
      assert.equal(hex(encodeSignedOp(entry.signed_op)), e.signed_op_hex);
      assert.equal(hex(encodeEntry(entry)), e.entry_hex, `entry ${e.seq} re-encodes`);
      assert.equal(entry.signed_op.envelope.op.type, e.op_type);
      assert.equal(hex(await entryHash(bytes)), e.entry_hash, `entry ${e.seq} hash`);
      const leaf = await leafHash(bytes);
      if (e.leaf_hash) assert.equal(hex(leaf), e.leaf_hash);
      leaves.push(leaf);
      assert.equal(hex(await mth(leaves)), e.merkle_root, `root after entry ${e.seq}`);
      const env = bytes.subarray(48, bytes.length - 64);
      assert.ok(await verify(unhex(entry.signed_op.envelope.signer), concat(OP_SIGNING_DOMAIN, env), bytes.subarray(bytes.length - 64)));
      prev = e.entry_hash;
    }
  });
}

for (const [name, c, ordersOf, earnsOf] of chains) {
  test(`${name}: the page's balance effects give each history and every balance`, () => {
    const orders = ordersOf(c);
    const earns = earnsOf(c);
    const balances = new Map();
    for (const e of c.entries) {
      const entry = decodeEntry(unhex(e.entry_hex));
      const op = entry.signed_op.envelope.op;
      const orderId = op.type === 'redeem' ? e.seq : op.order_id;
      const order = orders[String(orderId)] || null;
      const earn = op.earn_id !== undefined ? earns[String(op.earn_id)] || null : null;
      const candidates = new Set([...e.history, ...Object.keys(e.balances), ...keys.keys.map((k) => k.public_key)]);
      const concerned = [];
      for (const account of candidates) {
        const eff = balanceEffect(entry, account, order, earn);
        if (eff !== null) {
          concerned.push(account);
          balances.set(account, (balances.get(account) || 0n) + eff);
        }
      }
      // Everyone in the entry's history is a party; verify.rs also counts the checkpoint
      // key named by genesis, which the history index leaves out.
      for (const account of e.history) assert.ok(concerned.includes(account), `entry ${e.seq}: concerns ${account.slice(0, 8)}`);
      for (const account of concerned) {
        assert.ok(e.history.includes(account) || op.type === 'genesis', `entry ${e.seq}: ${account.slice(0, 8)} is not a party`);
      }
      for (const [account, bal] of Object.entries(e.balances)) {
        assert.equal(balances.get(account) || 0n, BigInt(bal), `entry ${e.seq}: balance of ${account.slice(0, 8)}`);
      }
    }
  });
}

test('invalid.json: the decoder refuses exactly what the spec refuses', () => {
  assert.ok(invalid.decoding.length > 0);
  for (const c of invalid.decoding) {
    const bytes = unhex(c.hex);
    const fn = { signed_op: decodeSignedOp, entry: decodeEntry, batch: decodeBatch }[c.decode_as];
    assert.ok(fn, `decoder for ${c.decode_as}`);
    let got;
    try {
      fn(bytes);
      got = { ok: true };
    } catch (e) {
      assert.ok(e instanceof CodecError, `${c.name}: ${e}`);
      got = { error: e.code, ...e.detail };
      delete got.additional;
    }
    assert.deepEqual(got, c.expect, `${c.name}: ${c.description}`);
  }
});

test('the encoder refuses values that do not fit', () => {
  const env = structuredClone(ops.vectors.find((v) => v.envelope.op.type === 'transfer').envelope);
  assert.throws(() => encodeEnvelope({ ...env, not_after_ms: -1 }));
  assert.throws(() => encodeEnvelope({ ...env, not_after_ms: 2 ** 64 }));
  assert.throws(() => encodeEnvelope({ ...env, op_id: (1n << 128n).toString() }));
  assert.throws(() => encodeEnvelope({ ...env, signer: env.signer.toUpperCase() }));
  assert.throws(() => encodeEnvelope({ ...env, op: { ...env.op, type: 'steal' } }));
  assert.equal(hex(encodeEnvelope({ ...env, not_after_ms: BigInt(env.not_after_ms) })), hex(encodeEnvelope(env)));
});
