// Canonical encoding of ledger values (ledger-spec/encoding.md), for the browser and node.
//
// bincode 2 with one fixed configuration: little-endian fixed-width integers, enum tags as
// u32, Option as one tag byte, strings and byte strings as a u64 length then the bytes,
// fixed arrays with no length, structs as their fields in declaration order. The layout of
// every type is a schema below, used by both the encoder and the decoder, so the two cannot
// drift apart. Integers are BigInt when decoded; the encoder takes a number, a BigInt or a
// decimal string. Hex strings stand for byte values, as in the JSON form of the API.

import { hex, unhex, concat, utf8 } from './bytes.js';

/** Domain tag of op signatures: "points-ledger/op/v1" 00. */
export const OP_SIGNING_DOMAIN = utf8('points-ledger/op/v1\0');
/** Domain tag of entry hashes: "points-ledger/entry/v1" 00. */
export const ENTRY_HASH_DOMAIN = utf8('points-ledger/entry/v1\0');
/** Largest canonical message the decoder accepts, in bytes. */
export const DECODE_BYTES_MAX = 64 * 1024;
/** Most ops in one batch. */
export const BATCH_OPS_MAX = 4096;

const LIMITS = {
  u8: [0n, 0xffn],
  u32: [0n, 0xffffffffn],
  u64: [0n, 0xffffffffffffffffn],
  u128: [0n, (1n << 128n) - 1n],
  i64: [-(1n << 63n), (1n << 63n) - 1n],
};
const WIDTH = { u8: 1, u32: 4, u64: 8, u128: 16, i64: 8 };

// ---- schemas ---------------------------------------------------------------------------

const u8 = 'u8', u64 = 'u64', i64 = 'i64', u128 = 'u128', bool = 'bool', string = 'string';
const account = { array: 32 }, signature = { array: 64 }, hash32 = { array: 32 };
const bytes = 'bytes';
const option = (of) => ({ option: of });
// A sequence: u64 count, then the elements. `memSize` is the element's in-memory size in
// the reference implementation, which bincode claims against the limit before reading.
const vec = (of, memSize) => ({ vec: of, memSize });
const unit = (...names) => ({ unit: names });
const struct = (...fields) => ({ struct: fields });

const rate = struct(['minor_units', u64], ['per_points', u64]);
const earnReason = unit('purchase', 'task', 'campaign', 'referral', 'adjustment');
const pending = struct(['release_at_ms', option(u64)]);
const tier = struct(['name', string], ['min_growth', u64]);
const reasonRate = struct(['reason', earnReason], ['rate', rate]);
const statementTotals = struct(
  ...[
    'points_purchased', 'purchase_amount', 'points_awarded', 'points_redeemed',
    'redemption_amount', 'points_refunded', 'refund_amount',
    'points_refunded_after_settlement', 'clawback_amount', 'float_credit_amount',
    'transfers_in', 'transfers_out', 'points_burned', 'points_to_burn', 'due_to_merchant',
    'due_from_merchant', 'points_reversed', 'points_unrecovered',
  ].map((n) => [n, u64]),
);

/** Op variants in tag order (the index is the u32 tag on the wire). */
export const OP_TYPES = [
  ['genesis', struct(['currency', string], ['minor_unit_digits', u8], ['checkpoint_key', account])],
  ['register_merchant', struct(['merchant', account], ['name', string], ['issue_rate', rate], ['redeem_rate', rate])],
  ['update_merchant', struct(
    ['merchant', account], ['name', option(string)], ['issue_rate', option(rate)],
    ['redeem_rate', option(rate)], ['status', option(unit('active', 'suspended'))])],
  ['register_auditor', struct(['auditor', account], ['name', string])],
  ['mint', struct(['to', account], ['amount', u64], ['memo', bytes], ['expires_at_ms', option(u64)])],
  ['earn', struct(
    ['member', account], ['amount', u64], ['reason', earnReason], ['reference', bytes],
    ['expires_at_ms', option(u64)], ['pending', option(pending)])],
  ['transfer', struct(['to', account], ['amount', u64], ['memo', bytes])],
  ['burn', struct(['from', account], ['amount', u64], ['reason', unit('voluntary', 'expiry', 'correction')])],
  ['list_item', struct(
    ['title', string], ['description', string], ['price', u64], ['stock', u64],
    ['limit_per_order', u64], ['limit_per_member', u64], ['available_from_ms', u64],
    ['available_until_ms', option(u64)], ['active', bool])],
  ['update_item', struct(
    ['item_id', u64], ['title', option(string)], ['description', option(string)],
    ['price', option(u64)], ['stock_delta', i64], ['limit_per_order', option(u64)],
    ['limit_per_member', option(u64)], ['available_from_ms', option(u64)],
    ['available_until_ms', option(option(u64))], ['active', option(bool)])],
  ['redeem', struct(['item_id', u64], ['quantity', u64], ['max_unit_price', u64])],
  ['fulfill_order', struct(['order_id', u64], ['reference', bytes])],
  ['cancel_order', struct(['order_id', u64], ['reason', bytes])],
  ['settle', struct(
    ['merchant', account], ['from_seq', u64], ['to_seq', u64], ['totals', statementTotals],
    ['merchant_signature', signature])],
  ['expire', struct(['account', account], ['as_of_ms', u64], ['amount', u64])],
  ['confirm_earn', struct(['earn_id', u64])],
  ['reverse_earn', struct(['earn_id', u64], ['reason', bytes])],
  ['set_tiers', struct(
    ['tiers', vec(tier, 32)], ['window_ms', u64], ['growth_per_point', rate],
    ['reason_rates', vec(reasonRate, 24)])],
];
const OP_TAG = new Map(OP_TYPES.map(([name], i) => [name, i]));
const op = { op: true };

export const ENVELOPE = struct(
  ['chain_id', string], ['signer', account], ['op_id', u128], ['not_after_ms', u64], ['op', op]);
export const SIGNED_OP = struct(['envelope', ENVELOPE], ['signature', signature]);
export const ENTRY = struct(
  ['seq', u64], ['prev_hash', hash32], ['timestamp_ms', u64], ['signed_op', SIGNED_OP]);

// ---- errors ----------------------------------------------------------------------------

/** A decoding failure with the stable code of ledger-spec/encoding.md §8. */
export class CodecError extends Error {
  constructor(code, detail = {}) {
    super(`${code}${Object.keys(detail).length ? ' ' + JSON.stringify(detail) : ''}`);
    this.code = code;
    this.detail = detail;
  }
}

// ---- encoder ---------------------------------------------------------------------------

function toBig(v, what) {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError(`${what}: ${v} is not an exact integer`);
    return BigInt(v);
  }
  if (typeof v === 'string' && /^-?[0-9]+$/.test(v)) return BigInt(v);
  throw new TypeError(`${what}: expected an integer, got ${JSON.stringify(v)}`);
}

function intBytes(kind, v, what) {
  const n = toBig(v, what);
  const [lo, hi] = LIMITS[kind];
  if (n < lo || n > hi) throw new RangeError(`${what}: ${n} does not fit in ${kind}`);
  const w = WIDTH[kind];
  let x = n < 0n ? n + (1n << BigInt(8 * w)) : n;
  const out = new Uint8Array(w);
  for (let i = 0; i < w; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function encodeValue(schema, value, what, parts) {
  if (typeof schema === 'string') {
    switch (schema) {
      case 'u8': case 'u32': case 'u64': case 'u128': case 'i64':
        parts.push(intBytes(schema, value, what));
        return;
      case 'bool':
        if (typeof value !== 'boolean') throw new TypeError(`${what}: expected a boolean`);
        parts.push(Uint8Array.of(value ? 1 : 0));
        return;
      case 'string': {
        if (typeof value !== 'string') throw new TypeError(`${what}: expected a string`);
        const b = utf8(value);
        parts.push(intBytes('u64', b.length, what), b);
        return;
      }
      case 'bytes': {
        const b = value instanceof Uint8Array ? value : unhex(value, undefined, what);
        parts.push(intBytes('u64', b.length, what), b);
        return;
      }
    }
    throw new Error(`unknown schema ${schema}`);
  }
  if (schema.array) {
    const b = value instanceof Uint8Array ? value : unhex(value, schema.array, what);
    if (b.length !== schema.array) throw new RangeError(`${what}: expected ${schema.array} bytes`);
    parts.push(b);
    return;
  }
  if (schema.option && schema.option.option) {
    // Option<Option<T>> (UpdateItem.available_until_ms). Its JSON form: absent = None
    // (leave as is), null = Some(None) (remove), a value = Some(Some(value)).
    if (value === undefined) {
      parts.push(Uint8Array.of(0));
    } else {
      parts.push(Uint8Array.of(1));
      encodeValue(schema.option, value, what, parts);
    }
    return;
  }
  if (schema.option) {
    if (value === null || value === undefined) {
      parts.push(Uint8Array.of(0));
    } else {
      parts.push(Uint8Array.of(1));
      encodeValue(schema.option, value, what, parts);
    }
    return;
  }
  if (schema.vec) {
    if (!Array.isArray(value)) throw new TypeError(`${what}: expected an array`);
    parts.push(intBytes('u64', value.length, what));
    value.forEach((v, i) => encodeValue(schema.vec, v, `${what}[${i}]`, parts));
    return;
  }
  if (schema.unit) {
    const tag = schema.unit.indexOf(value);
    if (tag < 0) throw new RangeError(`${what}: unknown variant ${JSON.stringify(value)}`);
    parts.push(intBytes('u32', tag, what));
    return;
  }
  if (schema.struct) {
    if (value === null || typeof value !== 'object') throw new TypeError(`${what}: expected an object`);
    for (const [name, s] of schema.struct) {
      if (!(name in value) && !s.option) throw new TypeError(`${what}.${name}: missing`);
      encodeValue(s, value[name], `${what}.${name}`, parts);
    }
    return;
  }
  if (schema.op) {
    const tag = OP_TAG.get(value && value.type);
    if (tag === undefined) throw new RangeError(`${what}: unknown op type ${JSON.stringify(value && value.type)}`);
    parts.push(intBytes('u32', tag, what));
    encodeValue(OP_TYPES[tag][1], value, `${what}(${value.type})`, parts);
    return;
  }
  throw new Error('bad schema');
}

function encode(schema, value, what) {
  const parts = [];
  encodeValue(schema, value, what, parts);
  return concat(...parts);
}

/** Canonical bytes of an envelope `{chain_id, signer, op_id, not_after_ms, op}`. */
export const encodeEnvelope = (env) => encode(ENVELOPE, env, 'envelope');
/** Canonical bytes of a signed op `{envelope, signature}`. */
export const encodeSignedOp = (sop) => encode(SIGNED_OP, sop, 'signed_op');
/** Canonical bytes of an entry `{seq, prev_hash, timestamp_ms, signed_op}`. */
export const encodeEntry = (entry) => encode(ENTRY, entry, 'entry');
/** The bytes an op's signer signs: OP_SIGNING_DOMAIN || canonical(envelope). */
export const signingPayload = (env) => concat(OP_SIGNING_DOMAIN, encodeEnvelope(env));
/** Canonical bytes of a batch: a u64 count, then each signed op. */
export const encodeBatch = (ops) =>
  concat(intBytes('u64', ops.length, 'batch'), ...ops.map((o) => encodeSignedOp(o)));

// ---- decoder ---------------------------------------------------------------------------

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  constructor(bytes, limit) {
    this.b = bytes;
    this.pos = 0;
    this.limit = limit;
  }
  take(n) {
    // bincode claims every read against the limit before reading it.
    if (this.pos + n > this.limit) throw new CodecError('too_long');
    if (this.pos + n > this.b.length) {
      throw new CodecError('unexpected_end', { additional: this.pos + n - this.b.length });
    }
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  int(kind) {
    const w = WIDTH[kind];
    const b = this.take(w);
    let x = 0n;
    for (let i = w - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
    if (kind === 'i64' && x >= 1n << 63n) x -= 1n << 64n;
    return x;
  }
  len() {
    const n = this.int('u64');
    if (n > BigInt(this.limit)) throw new CodecError('too_long');
    return Number(n);
  }
}

function decodeValue(schema, r) {
  if (typeof schema === 'string') {
    switch (schema) {
      case 'u8': case 'u32': case 'u64': case 'u128': case 'i64':
        return r.int(schema);
      case 'bool': {
        const v = r.take(1)[0];
        if (v > 1) throw new CodecError('invalid_bool', { found: v });
        return v === 1;
      }
      case 'string': {
        const b = r.take(r.len());
        try {
          return strictUtf8.decode(b);
        } catch {
          throw new CodecError('invalid_utf8');
        }
      }
      case 'bytes':
        return hex(r.take(r.len()));
    }
  }
  if (schema.array) return hex(r.take(schema.array));
  if (schema.option) {
    const t = r.take(1)[0];
    if (t === 0) return schema.option.option ? undefined : null;
    if (t === 1) return decodeValue(schema.option, r);
    throw new CodecError('unknown_tag', { found: t });
  }
  if (schema.vec) {
    const n = r.int('u64');
    if (BigInt(r.pos) + n * BigInt(schema.memSize) > BigInt(r.limit)) throw new CodecError('too_long');
    const out = [];
    for (let i = 0n; i < n; i++) out.push(decodeValue(schema.vec, r));
    return out;
  }
  if (schema.unit) {
    const t = r.int('u32');
    if (t >= BigInt(schema.unit.length)) throw new CodecError('unknown_tag', { found: Number(t) });
    return schema.unit[Number(t)];
  }
  if (schema.struct) {
    const out = {};
    for (const [name, s] of schema.struct) {
      const v = decodeValue(s, r);
      if (v !== undefined) out[name] = v; // an absent Option<Option<T>> has no JSON member
    }
    return out;
  }
  if (schema.op) {
    const t = r.int('u32');
    if (t >= BigInt(OP_TYPES.length)) throw new CodecError('unknown_tag', { found: Number(t) });
    const [name, body] = OP_TYPES[Number(t)];
    return { type: name, ...decodeValue(body, r) };
  }
  throw new Error('bad schema');
}

function decodeExact(schema, bytes, limit = DECODE_BYTES_MAX) {
  if (bytes.length > limit) throw new CodecError('too_long');
  const r = new Reader(bytes, limit);
  const v = decodeValue(schema, r);
  if (r.pos !== bytes.length) throw new CodecError('trailing_bytes', { trailing: bytes.length - r.pos });
  return v;
}

/** Parses canonical entry bytes; throws CodecError on anything encoding.md §8 refuses. */
export const decodeEntry = (b) => decodeExact(ENTRY, b);
/** Parses canonical signed-op bytes. */
export const decodeSignedOp = (b) => decodeExact(SIGNED_OP, b);
/** Parses a canonical batch (at most BATCH_OPS_MAX ops). */
export function decodeBatch(b) {
  const limit = 16 * 1024 * 1024;
  if (b.length >= 8) {
    const count = new Reader(b, 8).int('u64');
    if (count > BigInt(BATCH_OPS_MAX)) throw new CodecError('batch_too_large', { count: Number(count) });
  }
  if (b.length > limit) throw new CodecError('too_long');
  const r = new Reader(b, limit);
  const n = Number(r.int('u64'));
  const ops = [];
  for (let i = 0; i < n; i++) ops.push(decodeValue(SIGNED_OP, r));
  if (r.pos !== b.length) throw new CodecError('trailing_bytes', { trailing: b.length - r.pos });
  return ops;
}

/**
 * Whether a decoded value (BigInt integers) equals its JSON form as served by the API
 * (numbers, decimal strings for u128). A JSON number above 2^53 was rounded by JSON.parse;
 * it is compared after the same rounding, so exact equality of the bytes is still what the
 * signature and hash checks establish.
 */
export function sameAsJson(decoded, json) {
  if (typeof decoded === 'bigint') {
    if (typeof json === 'number') return Number(decoded) === json;
    if (typeof json === 'string') return decoded.toString() === json;
    return false;
  }
  if (decoded === null || typeof decoded !== 'object') return decoded === json;
  if (json === null || typeof json !== 'object') return false;
  const keys = new Set([...Object.keys(decoded), ...Object.keys(json)]);
  for (const k of keys) {
    if (!(k in decoded) || !(k in json)) return false;
    if (!sameAsJson(decoded[k], json[k])) return false;
  }
  return true;
}
