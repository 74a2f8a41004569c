// Member-side verification in the browser: the algorithm of src/verify.rs
// (ledger-spec/audit.md §2), so that a member trusts the math on their own device, not the
// operator.
//
// For every history entry: the entry bytes decode and match what is displayed, the entry
// hash, the op's Ed25519 signature, that the entry concerns the member, and its RFC 9162
// inclusion proof against a checkpoint; the checkpoint's C2SP note signature under the
// operator's checkpoint key pinned on first use; and an RFC 9162 consistency proof from the
// last checkpoint this browser saw. Nothing here touches the DOM: `verifyWallet` takes an
// API object and returns a report, and the caller stores the new trust state only when
// the report is clean.

import { hex, unhex, concat, equal } from './bytes.js';
import { sha256, verifyProblem } from './crypto.js';
import { decodeEntry, sameAsJson, ENTRY_HASH_DOMAIN, OP_SIGNING_DOMAIN } from './codec.js';
import { leafHash, verifyInclusion, verifyConsistency } from './merkle.js';
import { parseVkey, openCheckpoint } from './note.js';

/** A failed check. `check` is a stable code (translated by the page); `seq` when per entry. */
export class CheckFailure extends Error {
  constructor(check, detail = '', seq = undefined) {
    super(`${check}${seq !== undefined ? ` (entry ${seq})` : ''}${detail ? `: ${detail}` : ''}`);
    this.check = check;
    this.detail = String(detail);
    this.seq = seq;
  }
}

/** SHA-256(entry domain || entry bytes). */
export const entryHash = (bytes) => sha256(concat(ENTRY_HASH_DOMAIN, bytes));

/** The order an entry creates or closes, if it is a mall entry that needs one. */
export function orderNeeded(entry) {
  const op = entry.signed_op.envelope.op;
  if (op.type === 'redeem') return entry.seq;
  if (op.type === 'fulfill_order' || op.type === 'cancel_order') return op.order_id;
  return null;
}

/**
 * How an entry changes `account`'s balance (BigInt, maybe 0n), or null if the entry does
 * not concern the account. Mall entries need the order record they create or close; the
 * order is checked against the member's signed redemption. Mirrors `balance_effect` of
 * src/verify.rs. Throws CheckFailure('order').
 */
export function balanceEffect(entry, account, order, earn = null) {
  const env = entry.signed_op.envelope;
  const op = env.op;
  const signer = env.signer;
  const me = (a) => a === account;
  const needOrder = (id) => {
    if (order && BigInt(order.order_id) === BigInt(id)) return order;
    throw new CheckFailure('order', `order ${id} is needed to verify this entry`, Number(entry.seq));
  };
  const needEarn = (id) => {
    if (earn && BigInt(earn.earn_id) === BigInt(id) && earn.merchant === signer) return earn;
    const why = earn ? `the served award ${id} does not match the signed op` : `award ${id} is needed to verify this entry`;
    throw new CheckFailure('earn', why, Number(entry.seq));
  };
  const signerOr = (v) => (me(signer) ? v : null);
  switch (op.type) {
    case 'genesis':
      return me(signer) || me(op.checkpoint_key) ? 0n : null;
    case 'register_merchant':
    case 'update_merchant':
      return me(signer) || me(op.merchant) ? 0n : null;
    case 'register_auditor':
      return me(signer) || me(op.auditor) ? 0n : null;
    case 'mint':
      return me(op.to) ? op.amount : signerOr(0n);
    case 'earn':
      return me(op.member) ? op.amount : signerOr(-op.amount);
    case 'transfer':
      return me(op.to) ? op.amount : signerOr(-op.amount);
    case 'burn':
      return me(op.from) ? -op.amount : signerOr(0n);
    case 'list_item':
    case 'update_item':
      return signerOr(0n);
    case 'redeem': {
      const o = needOrder(entry.seq);
      const total = BigInt(o.total);
      if (
        o.member !== signer ||
        BigInt(o.item_id) !== op.item_id ||
        BigInt(o.quantity) !== op.quantity ||
        BigInt(o.unit_price) > op.max_unit_price ||
        total > op.quantity * op.max_unit_price
      ) {
        throw new CheckFailure('order', 'the served order does not match the signed redemption', Number(entry.seq));
      }
      if (me(signer)) return -total;
      return me(o.merchant) ? total : null;
    }
    case 'fulfill_order': {
      const o = needOrder(op.order_id);
      return me(o.member) || me(o.merchant) ? 0n : null;
    }
    case 'cancel_order': {
      const o = needOrder(op.order_id);
      if (me(o.member)) return BigInt(o.total);
      return me(o.merchant) ? -BigInt(o.total) : null;
    }
    case 'settle':
      return me(op.merchant) ? -op.totals.points_to_burn : signerOr(0n);
    case 'expire':
      return me(op.account) ? -op.amount : signerOr(0n);
    case 'set_tiers':
      return signerOr(0n);
    case 'confirm_earn': {
      const e = needEarn(op.earn_id);
      if (e.confirmed_seq === null || BigInt(e.confirmed_seq) !== entry.seq) {
        throw new CheckFailure('earn', 'the served award was not confirmed by this entry', Number(entry.seq));
      }
      return me(e.member) || me(signer) ? 0n : null;
    }
    case 'reverse_earn': {
      const e = needEarn(op.earn_id);
      const returned = BigInt(e.returned);
      if (e.reversed_seq === null || BigInt(e.reversed_seq) !== entry.seq || returned + BigInt(e.unrecovered) !== BigInt(e.amount)) {
        throw new CheckFailure('earn', 'the served award does not match the signed reversal', Number(entry.seq));
      }
      if (me(e.member)) return -returned;
      return me(signer) ? returned : null;
    }
  }
  return null;
}

/** The award a ConfirmEarn or ReverseEarn entry concerns, whose record is needed. */
export function earnNeeded(entry) {
  const op = entry.signed_op.envelope.op;
  return op.type === 'confirm_earn' || op.type === 'reverse_earn' ? op.earn_id : null;
}

/**
 * Checks one proven history item `{seq, entry_hash, timestamp_ms, entry, op, proof}` of
 * `account` against an opened checkpoint `cp` ({size, root}). Returns
 * `{entry, effect}` (entry decoded from the bytes, effect on the balance), or throws a
 * CheckFailure naming the first check that failed: entry_decode, entry_display,
 * entry_hash, entry_signature, order or earn, entry_party, entry_inclusion. Mall entries
 * need their `order`, ConfirmEarn and ReverseEarn their award record `earn`.
 */
export async function checkProvenEntry(item, account, cp, order, earn = null) {
  const seq = Number(item.seq);
  const fail = (check, detail) => new CheckFailure(check, detail, seq);
  let bytes, entry;
  try {
    bytes = unhex(item.entry);
    entry = decodeEntry(bytes);
  } catch (e) {
    throw fail('entry_decode', e.message);
  }
  if (
    entry.seq !== BigInt(item.seq) ||
    !sameAsJson(entry.signed_op, item.op) ||
    !sameAsJson(entry.timestamp_ms, item.timestamp_ms)
  ) {
    throw fail('entry_display', 'the decoded entry differs from the one displayed');
  }
  if (hex(await entryHash(bytes)) !== item.entry_hash) {
    throw fail('entry_hash', 'entry hash does not match its bytes');
  }
  // The signed op is everything after seq, prev_hash and timestamp (48 bytes); the
  // envelope is the signed op without its 64-byte signature.
  const signedOp = bytes.subarray(48);
  const envelope = signedOp.subarray(0, signedOp.length - 64);
  const sig = signedOp.subarray(signedOp.length - 64);
  const problem = await verifyProblem(
    unhex(entry.signed_op.envelope.signer, 32),
    concat(OP_SIGNING_DOMAIN, envelope),
    sig,
  );
  if (problem) throw fail('entry_signature', problem);
  const effect = balanceEffect(entry, account, order, earn);
  if (effect === null) throw fail('entry_party', `entry does not concern ${account}`);
  let proof;
  try {
    proof = (item.proof || []).map((h) => unhex(h, 32));
  } catch (e) {
    throw fail('entry_inclusion', e.message);
  }
  try {
    await verifyInclusion(await leafHash(bytes), entry.seq, cp.size, proof, cp.root);
  } catch (e) {
    throw fail('entry_inclusion', `${e.code || e.message} (checkpoint ${cp.size})`);
  }
  return { entry, effect };
}

/**
 * Checks that checkpoint `cp` extends the one seen before (`seen`: {size, root hex}):
 * smaller is a rollback, equal size needs the same root, larger needs a valid consistency
 * proof (`getProof(from, to)` returns the served `{from, to, proof}`).
 */
export async function checkConsistency(seen, cp, getProof) {
  const seenSize = BigInt(seen.size);
  const seenRoot = unhex(seen.root, 32);
  if (cp.size < seenSize) {
    throw new CheckFailure('rollback', `checkpoint ${cp.size} is older than ${seenSize}, seen before`);
  }
  if (cp.size === seenSize) {
    if (!equal(cp.root, seenRoot)) {
      throw new CheckFailure('fork', `two different roots for size ${cp.size}`);
    }
    return;
  }
  const view = await getProof(seenSize, cp.size);
  if (!view || BigInt(view.from) !== seenSize || BigInt(view.to) !== cp.size) {
    throw new CheckFailure('consistency', 'the server answered a proof for other sizes');
  }
  let proof;
  try {
    proof = view.proof.map((h) => unhex(h, 32));
  } catch (e) {
    throw new CheckFailure('consistency', e.message);
  }
  try {
    await verifyConsistency(seenSize, cp.size, seenRoot, cp.root, proof);
  } catch (e) {
    throw new CheckFailure('consistency', `${seenSize} → ${cp.size}: ${e.code || e.message}`);
  }
}

const PAGE_LIMIT = 200;
const PAGES_MAX = 500;

/**
 * Verifies `account`'s whole history. `api` provides `info()`, `checkpoint()`,
 * `consistency(from, to)`, `history(account, {size, after, limit})`, `order(id)` and
 * `balance(account)`; `trust` is the stored state `{chain_id, checkpoint_verifier, size,
 * root, time_ms, pinned_ms}` or null. Returns a report:
 *
 * - `ok`: every check passed; `failures`: the failed checks (CheckFailure);
 * - `info`, `checkpoint` (opened), `pinnedNow`, `consistentWith` (size or null);
 * - `entries`: per entry `{seq, item, entry, effect, order, entryOk, ok, failure}`, oldest
 *   first (`entryOk`: the entry's own checks passed; `ok`: and so did every global check);
 * - `balance`: `{history, reported, compared}`;
 * - `trust`: the state to store (only when `ok`).
 */
export async function verifyWallet(api, account, trust, { onProgress } = {}) {
  const report = {
    ok: false,
    failures: [],
    info: null,
    checkpoint: null,
    pinnedNow: false,
    consistentWith: null,
    entries: [],
    balance: { history: 0n, reported: null, compared: false },
    trust: null,
  };
  const failed = (f) => {
    report.failures.push(f instanceof CheckFailure ? f : new CheckFailure('network', f.message || String(f)));
  };
  // 1. The checkpoint, under the pinned key, and its consistency with the one seen before.
  // A failure here is recorded and the history is still fetched, so the member sees what
  // the server claims, every entry marked unverified.
  let info = null, verifier = null, view = null, cp = null, vkey = null;
  try {
    info = await api.info();
    report.info = info;
    vkey = info.checkpoint_verifier;
    if (trust) {
      if (trust.chain_id !== info.chain_id) {
        throw new CheckFailure('chain_changed', `pinned ${trust.chain_id}, server says ${info.chain_id}`);
      }
      if (trust.checkpoint_verifier !== info.checkpoint_verifier) {
        throw new CheckFailure('key_changed', `pinned ${trust.checkpoint_verifier}, server says ${info.checkpoint_verifier}`);
      }
      vkey = trust.checkpoint_verifier;
    } else {
      report.pinnedNow = true;
    }
    try {
      verifier = await parseVkey(vkey);
    } catch (e) {
      throw new CheckFailure('checkpoint_signature', e.message);
    }
    if (verifier.name !== info.chain_id) {
      throw new CheckFailure('checkpoint_signature', 'the checkpoint key is not named after the chain id');
    }
    view = await api.checkpoint();
    try {
      cp = await openCheckpoint(view, verifier);
    } catch (e) {
      throw new CheckFailure('checkpoint_signature', e.message);
    }
    report.checkpoint = cp;
    if (trust) {
      await checkConsistency(trust, cp, (from, to) => api.consistency(from, to));
      report.consistentWith = BigInt(trust.size);
    }
    onProgress && onProgress({ phase: 'checkpoint', checkpoint: cp });
  } catch (e) {
    failed(e);
  }
  // 2. Every entry of the history, against that checkpoint.
  if (!view && report.failures.length > 0) {
    try {
      view = await api.checkpoint();
    } catch {
      view = null; // nothing more to show
    }
  }
  const size = cp ? cp.size : view && Number.isSafeInteger(view.size) ? BigInt(view.size) : null;
  if (size !== null) {
    try {
      await checkHistory(api, account, cp, verifier, size, report, failed, onProgress);
    } catch (e) {
      failed(e);
    }
  }
  // 3. The balance the server reports against the one the verified history adds up to.
  try {
    if (cp && report.failures.length === 0) {
      const reported = await api.balance(account);
      report.balance.reported = reported;
      const tip = BigInt((await api.info()).size);
      if (reported !== null && tip === cp.size) {
        report.balance.compared = true;
        if (BigInt(reported) !== report.balance.history) {
          failed(new CheckFailure('balance', `history adds up to ${report.balance.history}, server reports ${reported}`));
        }
      }
    }
  } catch (e) {
    failed(e);
  }
  if (report.failures.length === 0 && cp) {
    report.ok = true;
    report.trust = {
      chain_id: info.chain_id,
      checkpoint_verifier: vkey,
      size: cp.size.toString(),
      root: hex(cp.root),
      time_ms: cp.time.toString(),
      pinned_ms: trust ? trust.pinned_ms : Date.now(),
    };
  }
  for (const row of report.entries) row.ok = report.ok && row.entryOk;
  return report;
}

async function checkHistory(api, account, cp, verifier, size, report, failed, onProgress) {
  const orders = new Map();
  const earns = new Map();
  let after = null;
  for (let pages = 0; pages < PAGES_MAX; pages++) {
    const page = await api.history(account, { size, after, limit: PAGE_LIMIT });
    if (cp) {
      let pageCp;
      try {
        pageCp = await openCheckpoint(page.checkpoint, verifier);
      } catch (e) {
        throw new CheckFailure('checkpoint_signature', e.message);
      }
      if (pageCp.text !== cp.text) {
        throw new CheckFailure('checkpoint_changed', 'the history page is proven against another checkpoint');
      }
    }
    if (page.account !== account) throw new CheckFailure('entry_party', 'the history is of another account');
    for (const item of page.items) {
      const seq = BigInt(item.seq);
      if (after !== null && seq <= after) {
        throw new CheckFailure('history_order', 'history is not in increasing seq order', Number(seq));
      }
      after = seq;
      const row = { seq, item, entry: null, effect: null, order: null, earn: null, entryOk: false, ok: false, failure: null };
      report.entries.push(row);
      try {
        const op = item.op && item.op.envelope && item.op.envelope.op;
        let id = null;
        if (op && op.type === 'redeem') id = seq;
        if (op && (op.type === 'fulfill_order' || op.type === 'cancel_order')) id = BigInt(op.order_id);
        if (id !== null) {
          if (!orders.has(id)) orders.set(id, await api.order(id));
          row.order = orders.get(id);
        }
        let earnId = null;
        if (op && (op.type === 'confirm_earn' || op.type === 'reverse_earn')) earnId = BigInt(op.earn_id);
        if (earnId !== null) {
          if (!earns.has(earnId)) earns.set(earnId, await api.earn(earnId));
          row.earn = earns.get(earnId);
        }
        if (!cp) {
          row.entry = decodeEntry(unhex(item.entry));
          row.effect = balanceEffect(row.entry, account, row.order, row.earn);
          continue;
        }
        const { entry, effect } = await checkProvenEntry(item, account, cp, row.order, row.earn);
        // The records fetched must be the ones the verified bytes name.
        const need = orderNeeded(entry);
        const needE = earnNeeded(entry);
        if ((need === null) !== (id === null) || (need !== null && need !== id) ||
            (needE === null) !== (earnId === null) || (needE !== null && needE !== earnId)) {
          throw new CheckFailure('entry_display', 'the displayed op differs from the signed one', Number(seq));
        }
        row.entry = entry;
        row.effect = effect;
        row.entryOk = true;
        report.balance.history += effect;
      } catch (e) {
        if (cp || e instanceof CheckFailure) {
          row.failure = e instanceof CheckFailure ? e : new CheckFailure('network', e.message, Number(seq));
          failed(row.failure);
        }
        try {
          row.entry = row.entry || decodeEntry(unhex(item.entry));
        } catch {
          row.entry = null;
        }
      }
      onProgress && onProgress({ phase: 'entry', row });
    }
    if (page.next_after === undefined || page.next_after === null || page.items.length === 0) break;
  }
}
