// The HTTP API of the ledger, as the page uses it (same origin only).
//
// Reads of private data are signed requests (src/api/auth.rs):
//   Authorization: Points-Ed25519 key=<hex>, ts=<unix ms>, sig=<hex>
//   sig = Ed25519(key, "points-ledger/request/v1" 00 || method || "\n" || path_and_query
//                      || "\n" || ts || "\n" || chain_id)
// The server refuses a signature it has seen before, so each request gets a fresh `ts`.
// Ops are signed in the page over their canonical bytes and posted as
// application/octet-stream; a retry after a network failure sends the same bytes (same op
// id), which the ledger applies at most once.

import { hex, concat, utf8 } from './bytes.js';
import { sign, randomOpId } from './crypto.js';
import { encodeSignedOp, signingPayload } from './codec.js';

/** How long a signed op stays valid (ms): the same as the CLI's default. */
export const OP_TTL_MS = 10 * 60 * 1000;
const REQUEST_DOMAIN = utf8('points-ledger/request/v1\0');

/** An answer that is not a success: `status`, `code` (problem type) and `detail`. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(`${code}${detail ? `: ${detail}` : ''}`);
    this.status = status;
    this.code = code;
    this.detail = detail || '';
  }
}

/** The bytes a request signature covers. */
export function requestPayload(method, pathAndQuery, ts, chainId) {
  return concat(REQUEST_DOMAIN, utf8(`${method}\n${pathAndQuery}\n${ts}\n${chainId}`));
}

export class Api {
  /** `key` is `{seed, pub}` (bytes) or null for public reads only. */
  constructor(key = null, base = '') {
    this.key = key;
    this.base = base;
    this.chainId = null;
    this.lastTs = 0;
    this.clockOffsetMs = 0;
  }

  now() {
    return Date.now() + this.clockOffsetMs;
  }

  async authorization(method, pathAndQuery) {
    if (!this.chainId) await this.info();
    // Distinct, increasing timestamps: the same request signed twice in one millisecond
    // would be refused as a replay.
    const ts = Math.max(this.now(), this.lastTs + 1);
    this.lastTs = ts;
    const sig = await sign(this.key.seed, requestPayload(method, pathAndQuery, ts, this.chainId));
    return `Points-Ed25519 key=${hex(this.key.pub)}, ts=${ts}, sig=${hex(sig)}`;
  }

  async request(method, pathAndQuery, { signed = false, body = null, contentType = null, accept = 'application/json' } = {}) {
    const headers = { Accept: accept };
    if (signed && this.key) headers.Authorization = await this.authorization(method, pathAndQuery);
    if (contentType) headers['Content-Type'] = contentType;
    let resp;
    try {
      resp = await fetch(this.base + pathAndQuery, { method, headers, body, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new ApiError(0, 'network', e.message);
    }
    const ct = resp.headers.get('content-type') || '';
    if (!resp.ok) {
      let code = `http_${resp.status}`, detail = '';
      if (ct.includes('json')) {
        try {
          const p = await resp.json();
          code = p.code || code;
          detail = p.detail || '';
        } catch {
          /* not JSON after all */
        }
      }
      throw new ApiError(resp.status, code, detail);
    }
    if (!ct.includes('json')) throw new ApiError(resp.status, 'unexpected_response', `content type ${ct}`);
    return resp.json();
  }

  get(pathAndQuery, signed = false) {
    return this.request('GET', pathAndQuery, { signed });
  }

  /** `GET /v1/info` (public); remembers the chain id and the clock offset. */
  async info() {
    const started = Date.now();
    let resp;
    try {
      resp = await fetch(this.base + '/v1/info', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'network', e.message);
    }
    if (!resp.ok) throw new ApiError(resp.status, `http_${resp.status}`, '');
    const info = await resp.json();
    this.chainId = info.chain_id;
    // Signed requests must be within a minute of the server clock: correct a device
    // clock that is far off, using the server's Date header (second resolution).
    const date = Date.parse(resp.headers.get('date') || '');
    if (Number.isFinite(date)) {
      const local = (started + Date.now()) / 2;
      const offset = date - local;
      this.clockOffsetMs = Math.abs(offset) > 20_000 ? Math.round(offset) : 0;
    }
    return info;
  }

  /**
   * A checkpoint of the whole log, freshly signed (`POST /v1/checkpoint`), or the latest
   * stored one when the server does not sign on request for this caller.
   */
  async checkpoint() {
    try {
      return await this.request('POST', '/v1/checkpoint', { signed: true });
    } catch (e) {
      if (![401, 403, 405].includes(e.status)) throw e;
      return this.get('/v1/checkpoint', true);
    }
  }

  consistency(from, to) {
    return this.get(`/v1/proofs/consistency?from=${from}&to=${to}`, true);
  }

  history(account, { size, after, limit }) {
    let q = `/v1/wallets/${account}/history?proofs=true&size=${size}&limit=${limit}`;
    if (after !== null && after !== undefined) q += `&after=${after}`;
    return this.get(q, true);
  }

  order(id) {
    return this.get(`/v1/mall/orders/${id}`, true);
  }

  /** An award record (`GET /v1/earns/{id}`), needed to verify ConfirmEarn and ReverseEarn. */
  earn(id) {
    return this.get(`/v1/earns/${id}`, true);
  }

  wallet(account) {
    return this.get(`/v1/wallets/${account}`, true);
  }

  /** The balance the server reports, or 0 for an account that never held points. */
  async balance(account) {
    try {
      return (await this.wallet(account)).balance;
    } catch (e) {
      if (e.code === 'unknown_account') return 0;
      throw e;
    }
  }

  items() {
    return this.get('/v1/mall/items?active=true&limit=200', false);
  }

  item(id) {
    return this.get(`/v1/mall/items/${id}`, false);
  }

  memberOrders(account) {
    return this.get(`/v1/wallets/${account}/orders?limit=200`, true);
  }

  merchantOrders(account, status = 'open') {
    return this.get(`/v1/merchants/${account}/orders?status=${status}&limit=200`, true);
  }

  statement(account) {
    return this.get(`/v1/merchants/${account}/statement`, true);
  }

  /**
   * Signs `op` with this key and submits it; returns the receipt. A network failure is
   * retried with the very same signed bytes.
   */
  async submit(op) {
    if (!this.chainId) await this.info();
    const envelope = {
      chain_id: this.chainId,
      signer: hex(this.key.pub),
      op_id: randomOpId(),
      not_after_ms: this.now() + OP_TTL_MS,
      op,
    };
    const signature = hex(await sign(this.key.seed, signingPayload(envelope)));
    const bytes = encodeSignedOp({ envelope, signature });
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.request('POST', '/v1/ops', { body: bytes, contentType: 'application/octet-stream' });
      } catch (e) {
        if (e.code !== 'network' || attempt >= 3) throw e;
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }
}
