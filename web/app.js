// 会员中心 / Member center: the page's state, views and actions.
//
// The member's key lives in this browser's localStorage and signs ops and read requests
// here; the history is verified here (verify.js) against the operator's signed
// checkpoint, whose key is pinned on first use, and against the last checkpoint this
// browser saw. Any failed check is shown at the top of the page, prominently.

import { hex, utf8 } from './bytes.js';
import { publicFromSeed, randomSeed, parseKeyFile, formatKeyFile } from './crypto.js';
import { Api, ApiError } from './api.js';
import { verifyWallet } from './verify.js';
import { t, setLang, currentLang, locale, has } from './i18n.js';
import { h, add, replace, field, fmtPoints, fmtDelta, fmtTime, shortKey, bytesText, confirmInline } from './ui.js';

const STORE_KEY = 'points.key.v1';
const STORE_TRUST = 'points.trust.v1';
const STORE_LANG = 'points.lang';
const TABS = ['wallet', 'mall', 'orders', 'transfer', 'merchant', 'key'];

const state = {
  key: null, // {seed, pub, pubHex}
  api: new Api(null),
  info: null,
  wallet: null, // {kind, balance}
  walletError: null,
  report: null,
  verifying: false,
  items: new Map(),
  mallItems: null,
  mallError: null,
  orders: null,
  merchantOrders: null,
  statement: null,
  statementError: null,
  tab: 'wallet',
  trustOpen: false,
};

const $ = (id) => document.getElementById(id);

// ---- storage ----------------------------------------------------------------------------

function loadJson(name) {
  try {
    const v = localStorage.getItem(name);
    return v ? JSON.parse(v) : null;
  } catch {
    return null;
  }
}

const saveJson = (name, v) => localStorage.setItem(name, JSON.stringify(v));
const loadTrust = () => loadJson(STORE_TRUST);

// ---- messages -----------------------------------------------------------------------------

let toastTimer = null;
function toast(msg, kind = 'info') {
  const el = $('toast');
  el.className = `toast ${kind}`;
  el.textContent = msg;
  el.hidden = false;
  el.onclick = () => {
    el.hidden = true;
  };
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 8000);
}

function problemText(e) {
  if (e instanceof ApiError) {
    const key = `problem.${e.code}`;
    if (has(key)) return t(key, { detail: e.detail });
    return t('common.error', { detail: `${e.code}${e.detail ? `: ${e.detail}` : ''}` });
  }
  return t('common.error', { detail: e && e.message ? e.message : String(e) });
}

// ---- key ----------------------------------------------------------------------------------

async function useKey(seed, pub, created) {
  state.key = { seed, pub, pubHex: hex(pub) };
  saveJson(STORE_KEY, { secret: hex(seed), public: hex(pub), created_ms: created || Date.now() });
  state.api = new Api({ seed, pub });
  state.report = null;
  state.wallet = null;
  state.orders = null;
  state.merchantOrders = null;
  state.statement = null;
  await start();
}

async function restoreKey() {
  const stored = loadJson(STORE_KEY);
  if (!stored) return false;
  try {
    const parsed = await parseKeyFile(`points-ledger-key v1\nsecret ${stored.secret}\npublic ${stored.public}\n`);
    state.key = { seed: parsed.seed, pub: parsed.pub, pubHex: hex(parsed.pub) };
    state.api = new Api({ seed: parsed.seed, pub: parsed.pub });
    return true;
  } catch {
    return false;
  }
}

async function createKey() {
  try {
    const seed = randomSeed();
    const pub = await publicFromSeed(seed);
    await useKey(seed, pub);
    toast(t('signin.done.created'), 'ok');
  } catch {
    toast(t('signin.error.crypto'), 'error');
  }
}

async function importKeyText(text, fieldCtl) {
  try {
    const { seed, pub } = await parseKeyFile(text);
    fieldCtl && fieldCtl.setError(null);
    await useKey(seed, pub);
    toast(t('signin.done.imported'), 'ok');
  } catch (e) {
    const msg = e.code === 'key_mismatch' ? t('signin.error.mismatch') : e.code === 'key_format' ? t('signin.error.format') : t('signin.error.crypto');
    if (fieldCtl) fieldCtl.setError(msg);
    toast(msg, 'error');
  }
}

function exportKey() {
  const text = formatKeyFile(state.key.seed, state.key.pub);
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const a = h('a', { href: url, download: `points-${state.key.pubHex.slice(0, 8)}.key`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  toast(t('key.exported'), 'ok');
}

function signOut() {
  localStorage.removeItem(STORE_KEY);
  state.key = null;
  state.api = new Api(null);
  state.report = null;
  state.wallet = null;
  render();
  toast(t('key.signedout'), 'ok');
}

// ---- loading --------------------------------------------------------------------------------

async function start() {
  render();
  try {
    state.info = await state.api.info();
  } catch (e) {
    toast(problemText(e), 'error');
  }
  await refresh();
}

let verifyQueue = Promise.resolve();

/** Reloads the wallet, verifies the history, and reloads whatever the current tab shows. */
function refresh() {
  verifyQueue = verifyQueue.then(doRefresh, doRefresh);
  return verifyQueue;
}

async function doRefresh() {
  if (!state.key) return;
  const account = state.key.pubHex;
  state.verifying = true;
  render();
  const wallet = state.api.wallet(account).then(
    (w) => {
      state.wallet = w;
      state.walletError = null;
    },
    (e) => {
      if (e.code === 'unknown_account') state.wallet = { kind: 'member', balance: 0, account };
      else state.walletError = e;
    },
  );
  const report = verifyWallet(state.api, account, loadTrust());
  await wallet;
  state.report = await report;
  state.verifying = false;
  if (state.report.ok && state.report.trust) saveJson(STORE_TRUST, state.report.trust);
  if (state.report.info) state.info = state.report.info;
  await loadItemTitles();
  await loadTab();
  render();
  // A counter that tells an observer (and the browser test) that a verification finished.
  document.body.dataset.verifyRuns = String(Number(document.body.dataset.verifyRuns || 0) + 1);
}

async function loadItemTitles() {
  const ids = new Set();
  for (const row of (state.report && state.report.entries) || []) {
    const op = row.entry && row.entry.signed_op.envelope.op;
    if (row.order) ids.add(String(row.order.item_id));
    if (op && (op.type === 'list_item')) ids.add(String(row.seq));
    if (op && (op.type === 'update_item' || op.type === 'redeem')) ids.add(String(op.item_id));
  }
  await Promise.all(
    [...ids].filter((id) => !state.items.has(id)).map((id) =>
      state.api.item(id).then((it) => state.items.set(id, it), () => {}),
    ),
  );
}

async function loadTab() {
  const account = state.key && state.key.pubHex;
  if (!account) return;
  try {
    if (state.tab === 'mall') {
      const page = await state.api.items();
      state.mallItems = page.items;
      state.mallError = null;
      for (const it of page.items) state.items.set(String(it.item_id), it);
    } else if (state.tab === 'orders') {
      state.orders = (await state.api.memberOrders(account)).items;
      await Promise.all(state.orders.map((o) => String(o.item_id)).filter((id) => !state.items.has(id)).map((id) => state.api.item(id).then((it) => state.items.set(id, it), () => {})));
    } else if (state.tab === 'merchant' && state.wallet && state.wallet.kind === 'merchant') {
      const [orders, statement] = await Promise.allSettled([state.api.merchantOrders(account), state.api.statement(account)]);
      state.merchantOrders = orders.status === 'fulfilled' ? orders.value.items : [];
      state.statement = statement.status === 'fulfilled' ? statement.value : null;
      state.statementError = statement.status === 'rejected' ? statement.reason : null;
      await Promise.all((state.merchantOrders || []).map((o) => String(o.item_id)).filter((id) => !state.items.has(id)).map((id) => state.api.item(id).then((it) => state.items.set(id, it), () => {})));
    }
  } catch (e) {
    if (state.tab === 'mall') state.mallError = e;
    toast(problemText(e), 'error');
  }
}

async function submitOp(op, button) {
  const status = $('status');
  status.textContent = t('common.sending');
  if (button) button.disabled = true;
  try {
    const receipt = await state.api.submit(op);
    status.textContent = '';
    return receipt;
  } catch (e) {
    status.textContent = '';
    toast(problemText(e), 'error');
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- rendering: shell ---------------------------------------------------------------------

function render() {
  document.documentElement.lang = locale();
  document.title = `${t('app.title')} · Points`;
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  const langBtn = $('lang');
  langBtn.textContent = t('lang.switch');
  langBtn.setAttribute('aria-label', t('lang.switch.label'));
  langBtn.setAttribute('lang', currentLang() === 'zh' ? 'en' : 'zh');
  renderAlerts();
  renderNav();
  const main = $('main');
  if (!state.key) {
    replace(main, renderSignIn());
    return;
  }
  const views = { wallet: renderWallet, mall: renderMall, orders: renderOrders, transfer: renderTransfer, merchant: renderMerchant, key: renderKey };
  replace(main, (views[state.tab] || renderWallet)());
}

function renderNav() {
  const nav = $('tabs');
  nav.setAttribute('aria-label', t('nav.label'));
  if (!state.key) {
    replace(nav);
    nav.hidden = true;
    return;
  }
  nav.hidden = false;
  const isMerchant = state.wallet && state.wallet.kind === 'merchant';
  replace(
    nav,
    h('ul', {}, TABS.filter((tab) => tab !== 'merchant' || isMerchant).map((tab) =>
      h('li', {}, h('a', {
        href: `#${tab}`,
        class: 'tab',
        'data-tab': tab,
        'aria-current': state.tab === tab ? 'page' : false,
        onclick: (e) => {
          e.preventDefault();
          go(tab, true);
        },
      }, t(`nav.${tab}`))),
    )),
  );
}

async function go(tab, focus) {
  if (!TABS.includes(tab)) tab = 'wallet';
  state.tab = tab;
  if (location.hash !== `#${tab}`) history.replaceState(null, '', `#${tab}`);
  render();
  if (focus) {
    const heading = $('main').querySelector('h2');
    if (heading) heading.focus();
  }
  await loadTab();
  render();
}

function failureText(f) {
  const key = `check.${f.check}`;
  return has(key) ? t(key, { seq: f.seq ?? '', detail: f.detail }) : `${f.check}: ${f.detail}`;
}

function renderAlerts() {
  const box = $('alerts');
  const r = state.report;
  if (!state.key || !r || r.ok) {
    replace(box);
    box.hidden = true;
    return;
  }
  box.hidden = false;
  replace(
    box,
    h('div', { class: 'alert-box', 'data-verification': 'failed' },
      h('h2', { class: 'alert-title' }, h('span', { 'aria-hidden': 'true', text: '\u26a0 ' }), t('verify.fail.title')),
      h('p', { text: t('verify.fail.intro') }),
      h('ul', { class: 'failures' }, r.failures.map((f) => h('li', { 'data-check': f.check, 'data-seq': f.seq ?? false, text: failureText(f) }))),
      h('details', {}, h('summary', { text: t('verify.fail.more') }),
        h('pre', { class: 'mono small', text: r.failures.map((f) => f.message).join('\n') })),
    ),
  );
}

// ---- sign in ----------------------------------------------------------------------------------

function renderSignIn() {
  const fileInput = h('input', { type: 'file', id: 'key-file', accept: '.key,text/plain' });
  const fileField = field(t('signin.file'), fileInput);
  fileInput.addEventListener('change', async () => {
    const f = fileInput.files && fileInput.files[0];
    if (f) await importKeyText(await f.text(), fileField);
  });
  const paste = h('textarea', { id: 'key-paste', rows: 4, spellcheck: 'false', autocomplete: 'off', class: 'mono' });
  const pasteField = field(t('signin.paste'), paste);
  return h('section', { class: 'view', id: 'view-signin', 'aria-labelledby': 'signin-h' },
    h('h2', { id: 'signin-h', tabindex: '-1', text: t('signin.title') }),
    h('p', { class: 'lead', text: t('signin.intro') }),
    h('div', { class: 'card' },
      h('h3', { text: t('signin.create') }),
      h('p', { class: 'help', text: t('signin.create.help') }),
      h('button', { type: 'button', class: 'btn primary', id: 'create-key', onclick: createKey }, t('signin.create')),
    ),
    h('div', { class: 'card' },
      h('h3', { text: t('signin.import') }),
      h('p', { class: 'help', text: t('signin.import.help') }),
      fileField.wrap,
      pasteField.wrap,
      h('button', { type: 'button', class: 'btn', id: 'import-paste', onclick: () => importKeyText(paste.value, pasteField) }, t('signin.paste.button')),
    ),
  );
}

// ---- wallet -------------------------------------------------------------------------------------

function verifySummary() {
  const r = state.report;
  if (state.verifying || !r) {
    return h('div', { class: 'verify-status running', role: 'status', 'data-verification': 'running' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), t('verify.running'));
  }
  if (!r.ok) {
    return h('div', { class: 'verify-status failed', 'data-verification': 'failed' },
      h('p', { class: 'verify-title' }, h('span', { 'aria-hidden': 'true', text: '\u26a0 ' }), t('verify.fail.title')));
  }
  return h('div', { class: 'verify-status ok', role: 'status', 'data-verification': 'ok' },
    h('p', { class: 'verify-title' }, h('span', { class: 'check', 'aria-hidden': 'true', text: '\u2713 ' }), t('verify.ok.title')),
    h('p', { text: t('verify.ok', { count: r.entries.length, size: r.checkpoint.size.toString(), time: fmtTime(r.checkpoint.time) }) }),
    h('p', { text: r.consistentWith !== null ? t('verify.ok.consistent', { from: r.consistentWith.toString() }) : t('verify.ok.first') }),
  );
}

function renderWallet() {
  const k = state.key;
  const w = state.wallet;
  const r = state.report;
  const kind = w ? w.kind : 'member';
  let note = t('wallet.balance.pending');
  let noteClass = 'pending';
  if (r && !state.verifying) {
    if (r.ok && r.balance.compared) {
      note = t('wallet.balance.matches');
      noteClass = 'ok';
    } else if (!r.ok) {
      note = t('wallet.balance.unverified');
      noteClass = 'bad';
    } else {
      note = '';
    }
  }
  const copyBtn = h('button', {
    type: 'button', class: 'btn small', onclick: async () => {
      try {
        await navigator.clipboard.writeText(k.pubHex);
        copyBtn.textContent = t('wallet.copied');
      } catch {
        /* clipboard refused: the key is selectable */
      }
    },
  }, t('wallet.copy'));
  const rows = r ? [...r.entries].reverse() : [];
  return h('section', { class: 'view', id: 'view-wallet', 'aria-labelledby': 'wallet-h' },
    h('h2', { id: 'wallet-h', class: 'visually-hidden', tabindex: '-1', text: t('nav.wallet') }),
    h('div', { class: 'card account' },
      h('div', { class: 'balance-block' },
        h('p', { class: 'label', text: t('wallet.balance') }),
        h('p', { class: 'balance' }, h('span', { class: 'amount', id: 'balance', text: w ? fmtPoints(w.balance) : '—' }), ' ', h('span', { class: 'unit', text: t('wallet.balance.unit') })),
        note ? h('p', { class: `balance-note ${noteClass}`, text: note }) : null,
      ),
      h('p', { class: 'label' }, t('wallet.account'), ' ', h('span', { class: `badge kind-${kind}`, text: t(`wallet.kind.${kind}`) })),
      h('p', { class: 'mono key', id: 'account', text: k.pubHex }),
      h('div', { class: 'actions' }, copyBtn,
        h('button', { type: 'button', class: 'btn small', id: 'refresh', onclick: () => refresh() }, t('wallet.refresh'))),
    ),
    verifySummary(),
    renderTrust(),
    h('h2', { tabindex: '-1', text: t('history.title') }),
    r && !state.verifying && rows.length === 0 && r.ok ? h('p', { class: 'empty', text: t('wallet.new') }) : null,
    h('ol', { class: 'history', id: 'history', reversed: true }, rows.map(renderEntry)),
  );
}

function renderTrust() {
  const trust = loadTrust();
  const forget = h('button', {
    type: 'button', class: 'btn small danger-outline', onclick: async (e) => {
      if (await confirmInline(e.target.parentElement, t('trust.forget.confirm'), t('trust.forget'), { danger: true })) {
        localStorage.removeItem(STORE_TRUST);
        toast(t('trust.forgotten'), 'ok');
        render();
      }
    },
  }, t('trust.forget'));
  const details = h('details', { class: 'card trust', id: 'trust', open: state.trustOpen },
    h('summary', { text: t('trust.title') }),
    trust
      ? h('dl', {},
        h('dt', { text: t('trust.key', { date: fmtTime(trust.pinned_ms) }) }),
        h('dd', { class: 'mono', id: 'pinned-key', text: trust.checkpoint_verifier }),
        h('dt', { text: t('trust.seen') }),
        h('dd', { class: 'mono', id: 'seen-checkpoint', text: t('trust.seen.value', { size: trust.size, root: trust.root }) }),
      )
      : h('p', { text: t('trust.key.none') }),
    h('p', { class: 'help', text: t('trust.where') }),
    trust ? h('div', { class: 'actions' }, forget) : null,
  );
  details.addEventListener('toggle', () => {
    state.trustOpen = details.open;
  });
  return details;
}

function itemTitle(id) {
  const it = state.items.get(String(id));
  return it ? it.title : t('desc.item', { item: String(id) });
}

/** Title, description lines and balance change of a history row, from the verified bytes. */
function describe(row) {
  const me = state.key.pubHex;
  const entry = row.entry;
  if (!entry) return { title: `#${row.seq}`, lines: [], delta: null };
  const env = entry.signed_op.envelope;
  const op = env.op;
  const lines = [];
  const party = (k) => shortKey(k);
  let title = has(`op.${op.type}`) ? t(`op.${op.type}`) : op.type;
  let delta = row.effect;
  switch (op.type) {
    case 'earn':
      if (op.member === me) {
        title = t('op.earn.in');
        lines.push(t('desc.earn', { merchant: party(env.signer) }));
      } else {
        title = t('op.earn.out');
        lines.push(t('desc.earn.out', { member: party(op.member) }));
      }
      lines.push(`${t('history.reason')}: ${t(`reason.${op.reason}`)}`);
      if (op.reference) lines.push(`${t('history.reference')}: ${bytesText(op.reference)}`);
      if (op.pending) {
        lines.push(op.pending.release_at_ms !== null
          ? t('desc.pending.time', { date: fmtTime(op.pending.release_at_ms) })
          : t('desc.pending.confirm'));
      }
      if (op.expires_at_ms !== null && op.expires_at_ms !== undefined) lines.push(t('desc.expires', { date: fmtTime(op.expires_at_ms) }));
      break;
    case 'transfer':
      if (op.to === me) {
        title = t('op.transfer.in');
        lines.push(t('desc.transfer.in', { from: party(env.signer) }));
      } else {
        title = t('op.transfer.out');
        lines.push(t('desc.transfer.out', { to: party(op.to) }));
      }
      if (op.memo) lines.push(`${t('history.memo')}: ${bytesText(op.memo)}`);
      break;
    case 'mint':
      lines.push(t('desc.mint'));
      if (op.memo) lines.push(`${t('history.memo')}: ${bytesText(op.memo)}`);
      if (op.expires_at_ms !== null && op.expires_at_ms !== undefined) lines.push(t('desc.expires', { date: fmtTime(op.expires_at_ms) }));
      break;
    case 'burn':
      lines.push(t('desc.burn', { reason: t(`burn.${op.reason}`) }));
      break;
    case 'redeem': {
      if (env.signer !== me) title = t('op.redeem.merchant');
      const o = row.order;
      lines.push(t('desc.redeem', { qty: op.quantity.toString(), item: itemTitle(op.item_id), order: row.seq.toString() }));
      if (o) lines.push(`${t('history.order')}: ${t(`orders.status.${o.status}`)}`);
      if (env.signer !== me) lines.push(t('merchant.member', { member: party(env.signer) }));
      break;
    }
    case 'fulfill_order':
      lines.push(row.order
        ? t('desc.redeem', { qty: String(row.order.quantity), item: itemTitle(row.order.item_id), order: op.order_id.toString() })
        : t('desc.fulfill', { order: op.order_id.toString() }));
      if (op.reference) lines.push(`${t('history.reference')}: ${bytesText(op.reference)}`);
      break;
    case 'cancel_order':
      lines.push(t(row.order && row.order.member === me ? 'desc.cancel' : 'desc.cancel.merchant', { order: op.order_id.toString() }));
      if (op.reason) lines.push(`${t('history.reason')}: ${bytesText(op.reason)}`);
      break;
    case 'settle':
      lines.push(t('desc.settle', { from: op.from_seq.toString(), to: op.to_seq.toString() }));
      break;
    case 'expire':
      lines.push(t('desc.expire', { date: fmtTime(op.as_of_ms) }));
      break;
    case 'confirm_earn':
      lines.push(t('desc.confirm_earn', { earn: op.earn_id.toString(), amount: row.earn ? fmtPoints(row.earn.amount) : '?' }));
      break;
    case 'reverse_earn':
      lines.push(t('desc.reverse_earn', {
        earn: op.earn_id.toString(),
        returned: row.earn ? fmtPoints(row.earn.returned) : '?',
        unrecovered: row.earn ? fmtPoints(row.earn.unrecovered) : '?',
      }));
      if (op.reason) lines.push(`${t('history.reason')}: ${bytesText(op.reason)}`);
      break;
    case 'list_item':
      lines.push(`“${op.title}” · ${t('mall.price', { price: fmtPoints(op.price) })}`);
      break;
    case 'update_item':
      lines.push(t('desc.item', { item: op.item_id.toString() }) + ` · ${itemTitle(op.item_id)}`);
      break;
    case 'register_merchant':
      lines.push(t('desc.register_merchant', { name: op.name }));
      break;
    default:
      break;
  }
  return { title, lines, delta };
}

function renderEntry(row) {
  const d = describe(row);
  const entry = row.entry;
  const failure = row.failure;
  let mark, markClass, markTitle;
  if (row.ok) {
    mark = t('verify.mark.ok');
    markClass = 'ok';
    markTitle = t('verify.mark.ok.long');
  } else if (failure) {
    mark = t('verify.mark.fail');
    markClass = 'bad';
    markTitle = failureText(failure);
  } else {
    mark = t('verify.mark.unverified');
    markClass = 'bad';
    markTitle = t('verify.mark.global');
  }
  const delta = d.delta === null || d.delta === undefined ? null : d.delta;
  const env = entry && entry.signed_op.envelope;
  const cp = state.report && state.report.checkpoint;
  return h('li', { class: `entry ${markClass}`, 'data-seq': row.seq.toString(), 'data-verified': row.ok ? 'true' : 'false', 'data-op': env ? env.op.type : 'unknown' },
    h('div', { class: 'entry-main' },
      h('div', { class: 'entry-text' },
        h('p', { class: 'entry-title', text: d.title }),
        d.lines.map((l) => h('p', { class: 'entry-line', text: l })),
        h('p', { class: 'entry-time', text: fmtTime(row.item.timestamp_ms) }),
      ),
      h('div', { class: 'entry-side' },
        delta !== null ? h('p', { class: `delta ${delta > 0n ? 'plus' : delta < 0n ? 'minus' : ''}`, text: fmtDelta(delta) }) : null,
        h('p', { class: `mark ${markClass}`, title: markTitle },
          h('span', { 'aria-hidden': 'true', text: row.ok ? '\u2713 ' : '\u2717 ' }), mark),
      ),
    ),
    failure || !row.ok ? h('p', { class: 'entry-failure', text: markTitle }) : null,
    h('details', { class: 'entry-details' },
      h('summary', { text: t('history.details') }),
      h('dl', { class: 'mono small' },
        h('dt', { text: t('history.seq') }), h('dd', { text: row.seq.toString() }),
        h('dt', { text: t('history.hash') }), h('dd', { text: row.item.entry_hash }),
        env ? [h('dt', { text: t('history.signer') }), h('dd', { text: env.signer })] : null,
        env ? [h('dt', { text: t('history.opid') }), h('dd', { text: env.op_id.toString() })] : null,
        h('dt', { text: t('history.proof') }), h('dd', { text: t('history.proof.value', { n: (row.item.proof || []).length, size: cp ? cp.size.toString() : '?' }) }),
        h('dt', { text: t('history.checks') }), h('dd', { text: row.entryOk ? t('verify.mark.ok.long') : markTitle }),
      ),
    ),
  );
}

// ---- mall ---------------------------------------------------------------------------------------

function renderMall() {
  const items = state.mallItems;
  const now = Date.now();
  return h('section', { class: 'view', id: 'view-mall', 'aria-labelledby': 'mall-h' },
    h('h2', { id: 'mall-h', tabindex: '-1', text: t('mall.title') }),
    items === null ? h('p', { text: t('common.loading') }) : null,
    items && items.length === 0 ? h('p', { class: 'empty', text: t('mall.empty') }) : null,
    h('ul', { class: 'items' }, (items || []).map((it) => {
      const available = it.active && it.stock > 0 && now >= it.available_from_ms && (it.available_until_ms === null || now < it.available_until_ms);
      const max = Math.max(1, Math.min(it.stock, it.limit_per_order || it.stock));
      const qty = h('input', { type: 'number', min: 1, max, step: 1, value: '1', inputmode: 'numeric', class: 'qty', 'data-item': it.item_id });
      const qtyField = field(t('mall.quantity'), qty);
      const card = h('li', { class: 'card item', 'data-item': it.item_id });
      const redeem = h('button', {
        type: 'button', class: 'btn primary', disabled: !available, 'data-action': 'redeem',
        onclick: async () => {
          const n = Number(qty.value);
          if (!Number.isInteger(n) || n < 1 || n > max) {
            qtyField.setError(t('transfer.error.amount'));
            return;
          }
          qtyField.setError(null);
          const total = BigInt(n) * BigInt(it.price);
          const balance = state.wallet ? BigInt(state.wallet.balance) : 0n;
          if (total > balance) {
            toast(t('mall.insufficient', { total: fmtPoints(total), balance: fmtPoints(balance) }), 'error');
            return;
          }
          const msg = t('mall.confirm', { qty: n, item: it.title, total: fmtPoints(total), price: fmtPoints(it.price) });
          if (!(await confirmInline(card, msg, t('mall.confirm.button')))) return;
          const receipt = await submitOp({ type: 'redeem', item_id: it.item_id, quantity: n, max_unit_price: it.price }, redeem);
          if (receipt) {
            toast(t('mall.done', { order: receipt.seq }), 'ok');
            await refresh();
          }
        },
      }, available ? t('mall.redeem') : t('mall.soldout'));
      add(card,
        h('h3', { text: it.title }),
        it.description ? h('p', { class: 'description', text: it.description }) : null,
        h('p', { class: 'price', text: t('mall.price', { price: fmtPoints(it.price) }) }),
        h('p', { class: 'meta' },
          t('mall.stock', { stock: fmtPoints(it.stock) }),
          it.limit_per_order ? ` · ${t('mall.limit.order', { n: it.limit_per_order })}` : '',
          ` · ${t('mall.merchant', { merchant: shortKey(it.merchant) })}`),
        h('div', { class: 'item-actions' }, qtyField.wrap, redeem),
      );
      return card;
    })),
  );
}

// ---- orders -------------------------------------------------------------------------------------

function renderOrderCard(o, { merchant = false } = {}) {
  const card = h('li', { class: `card order status-${o.status}`, 'data-order': o.order_id, 'data-status': o.status });
  const actions = h('div', { class: 'order-actions' });
  if (o.status === 'open') {
    if (merchant) {
      const ref = h('input', { type: 'text', maxlength: 64, autocomplete: 'off' });
      const refField = field(t('merchant.reference'), ref);
      const fulfill = h('button', {
        type: 'button', class: 'btn primary', 'data-action': 'fulfill',
        onclick: async () => {
          const bytes = utf8(ref.value);
          if (bytes.length > 64) return refField.setError(t('transfer.error.memo'));
          refField.setError(null);
          const receipt = await submitOp({ type: 'fulfill_order', order_id: o.order_id, reference: hex(bytes) }, fulfill);
          if (receipt) {
            toast(t('merchant.fulfilled', { order: o.order_id }), 'ok');
            await refresh();
          }
        },
      }, t('merchant.fulfill'));
      actions.append(refField.wrap, fulfill);
    }
    const reason = h('input', { type: 'text', maxlength: 64, autocomplete: 'off' });
    const reasonField = field(t('orders.reason'), reason);
    const cancel = h('button', {
      type: 'button', class: 'btn danger-outline', 'data-action': 'cancel',
      onclick: async () => {
        const bytes = utf8(reason.value);
        if (bytes.length > 64) return reasonField.setError(t('transfer.error.memo'));
        reasonField.setError(null);
        const msg = t('orders.cancel.confirm', { order: o.order_id, total: fmtPoints(o.total) });
        if (!(await confirmInline(card, msg, t('orders.cancel.button'), { danger: true }))) return;
        const receipt = await submitOp({ type: 'cancel_order', order_id: o.order_id, reason: hex(bytes) }, cancel);
        if (receipt) {
          toast(t('orders.cancelled', { order: o.order_id }), 'ok');
          await refresh();
        }
      },
    }, merchant ? t('merchant.cancel') : t('orders.cancel'));
    actions.append(reasonField.wrap, cancel);
  }
  add(card,
    h('div', { class: 'order-head' },
      h('h3', { text: t('orders.order', { order: o.order_id }) }),
      h('span', { class: `badge status-${o.status}`, text: t(`orders.status.${o.status}`) })),
    h('p', { text: t('orders.item', { qty: o.quantity, item: itemTitle(o.item_id) }) }),
    h('p', { class: 'price', text: t('orders.total', { total: fmtPoints(o.total) }) }),
    merchant ? h('p', { class: 'meta', text: t('merchant.member', { member: shortKey(o.member) }) }) : null,
    o.fulfilment_reference ? h('p', { class: 'meta', text: `${t('history.reference')}: ${bytesText(o.fulfilment_reference)}` }) : null,
    o.status === 'open' ? actions : null,
  );
  return card;
}

function renderOrders() {
  const orders = state.orders;
  return h('section', { class: 'view', id: 'view-orders', 'aria-labelledby': 'orders-h' },
    h('h2', { id: 'orders-h', tabindex: '-1', text: t('orders.title') }),
    orders === null ? h('p', { text: t('common.loading') }) : null,
    orders && orders.length === 0 ? h('p', { class: 'empty', text: t('orders.empty') }) : null,
    h('ul', { class: 'orders' }, [...(orders || [])].reverse().map((o) => renderOrderCard(o))),
  );
}

// ---- transfer -----------------------------------------------------------------------------------

function renderTransfer() {
  const to = field(t('transfer.to'), h('input', { type: 'text', id: 'transfer-to', autocomplete: 'off', spellcheck: 'false', class: 'mono', maxlength: 64 }));
  const amount = field(t('transfer.amount'), h('input', { type: 'number', id: 'transfer-amount', min: 1, step: 1, inputmode: 'numeric' }));
  const memo = field(t('transfer.memo'), h('input', { type: 'text', id: 'transfer-memo', autocomplete: 'off', maxlength: 64 }));
  const submit = h('button', { type: 'submit', class: 'btn primary', id: 'transfer-submit' }, t('transfer.submit'));
  const form = h('form', { class: 'card', novalidate: true }, to.wrap, amount.wrap, memo.wrap, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const toV = to.input.value.trim();
    const amountV = amount.input.value.trim();
    const memoB = utf8(memo.input.value);
    let ok = true;
    to.setError(null);
    amount.setError(null);
    memo.setError(null);
    if (!/^[0-9a-f]{64}$/.test(toV)) {
      to.setError(t('transfer.error.to'));
      ok = false;
    } else if (toV === state.key.pubHex) {
      to.setError(t('transfer.error.self'));
      ok = false;
    }
    if (!/^[1-9][0-9]{0,18}$/.test(amountV)) {
      amount.setError(t('transfer.error.amount'));
      ok = false;
    }
    if (memoB.length > 64) {
      memo.setError(t('transfer.error.memo'));
      ok = false;
    }
    if (!ok) {
      form.querySelector('[aria-invalid="true"]').focus();
      return;
    }
    const msg = t('transfer.confirm', { amount: fmtPoints(BigInt(amountV)), to: toV });
    if (!(await confirmInline(form, msg, t('transfer.confirm.button')))) return;
    const receipt = await submitOp({ type: 'transfer', to: toV, amount: amountV, memo: hex(memoB) }, submit);
    if (receipt) {
      toast(t('transfer.done', { amount: fmtPoints(BigInt(amountV)), seq: receipt.seq }), 'ok');
      form.reset();
      await refresh();
    }
  });
  return h('section', { class: 'view', id: 'view-transfer', 'aria-labelledby': 'transfer-h' },
    h('h2', { id: 'transfer-h', tabindex: '-1', text: t('transfer.title') }),
    form,
  );
}

// ---- merchant -----------------------------------------------------------------------------------

const STATEMENT_FIELDS = [
  'points_purchased', 'purchase_amount', 'points_awarded', 'points_redeemed', 'redemption_amount',
  'points_refunded', 'refund_amount', 'points_refunded_after_settlement', 'clawback_amount',
  'float_credit_amount', 'transfers_in', 'transfers_out', 'points_burned', 'points_to_burn',
  'due_to_merchant', 'due_from_merchant',
];

function money(minor) {
  const digits = state.info ? state.info.minor_unit_digits : 2;
  const currency = state.info ? state.info.currency : '';
  const v = BigInt(minor);
  const base = 10n ** BigInt(digits);
  const whole = v / base, frac = (v % base).toString().padStart(digits, '0');
  return `${fmtPoints(whole)}${digits ? `.${frac}` : ''} ${currency}`;
}

function renderStatement() {
  const st = state.statement;
  if (!st) {
    return h('p', { class: 'empty', text: state.statementError ? problemText(state.statementError) : t('merchant.statement.none') });
  }
  const isMoney = (f) => f.endsWith('_amount') || f.startsWith('due_');
  return h('div', { id: 'statement' },
    h('p', { class: 'meta', text: t('merchant.statement.period', { from: st.from_seq, to: st.to_seq }) }),
    h('table', { class: 'statement' },
      h('tbody', {}, STATEMENT_FIELDS.map((f) => h('tr', { 'data-field': f },
        h('th', { scope: 'row', text: t(`stmt.${f}`) }),
        h('td', { text: isMoney(f) ? money(st.totals[f]) : fmtPoints(st.totals[f]) }))))),
    st.lines && st.lines.length
      ? h('table', { class: 'statement lines' },
        h('caption', { text: t('merchant.statement.lines') }),
        h('thead', {}, h('tr', {},
          ['category', 'rate', 'points', 'amount'].map((c) => h('th', { scope: 'col', text: t(`merchant.statement.${c}`) })))),
        h('tbody', {}, st.lines.map((l) => h('tr', {},
          h('td', { text: l.category }),
          h('td', { text: `${l.rate.minor_units}/${l.rate.per_points}` }),
          h('td', { text: fmtPoints(l.points) }),
          h('td', { text: money(l.amount) })))))
      : null,
  );
}

function renderMerchant() {
  const isMerchant = state.wallet && state.wallet.kind === 'merchant';
  const orders = state.merchantOrders;
  return h('section', { class: 'view', id: 'view-merchant', 'aria-labelledby': 'merchant-h' },
    h('h2', { id: 'merchant-h', tabindex: '-1', text: t('merchant.title') }),
    !isMerchant ? h('p', { class: 'empty', text: t('merchant.not') }) : [
      h('h3', { text: t('merchant.orders') }),
      orders === null ? h('p', { text: t('common.loading') }) : null,
      orders && orders.length === 0 ? h('p', { class: 'empty', text: t('merchant.orders.empty') }) : null,
      h('ul', { class: 'orders', id: 'merchant-orders' }, (orders || []).map((o) => renderOrderCard(o, { merchant: true }))),
      h('h3', { text: t('merchant.statement') }),
      renderStatement(),
    ],
  );
}

// ---- key ------------------------------------------------------------------------------------------

function renderKey() {
  const signout = h('button', {
    type: 'button', class: 'btn danger-outline', id: 'signout',
    onclick: async (e) => {
      if (await confirmInline(e.target.parentElement, t('key.signout.confirm'), t('key.signout.button'), { danger: true })) signOut();
    },
  }, t('key.signout'));
  return h('section', { class: 'view', id: 'view-key', 'aria-labelledby': 'key-h' },
    h('h2', { id: 'key-h', tabindex: '-1', text: t('key.title') }),
    h('div', { class: 'card notice', id: 'key-where' },
      h('h3', { text: t('key.where') }),
      h('p', { text: t('key.where.text') }),
    ),
    h('div', { class: 'card' },
      h('p', { class: 'label', text: t('key.public') }),
      h('p', { class: 'mono key', text: state.key.pubHex }),
      h('p', { class: 'help', text: t('key.export.help') }),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn primary', id: 'export-key', onclick: exportKey }, t('key.export'))),
    ),
    h('div', { class: 'card' }, h('div', { class: 'actions' }, signout)),
  );
}

// ---- boot -------------------------------------------------------------------------------------------

async function boot() {
  const stored = localStorage.getItem(STORE_LANG);
  setLang(stored || ((navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en'));
  $('lang').addEventListener('click', () => {
    setLang(currentLang() === 'zh' ? 'en' : 'zh');
    localStorage.setItem(STORE_LANG, currentLang());
    render();
  });
  window.addEventListener('hashchange', () => {
    const tab = location.hash.slice(1);
    if (tab !== state.tab && TABS.includes(tab)) go(tab, false);
  });
  const tab = location.hash.slice(1);
  if (TABS.includes(tab)) state.tab = tab;
  if (await restoreKey()) {
    await start();
  } else {
    render();
  }
}

boot();

// For tests and the curious: the state of the last verification.
window.pointsMemberCenter = { state, refresh };
