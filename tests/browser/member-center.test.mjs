// The member center (web/) in a real browser against real `points serve` processes:
// a member created in the page earns points (issuer and merchant ops by the CLI), redeems
// and cancels in the mall, transfers, exports the key; a merchant imports a key file and
// fulfills the order; every history entry is verified in the page. Then the server lies:
// a fork of the data folder served to the same browser (same localStorage) must raise the
// consistency warning, and tampered proofs, entries, checkpoints and keys must each raise
// their own warning. A screenshot of the wallet is saved to docs/wallet.png.
//
//   cargo build --release && (cd tests/browser && npm ci && node --test)
//
// Needs Chromium at /usr/bin/chromium (or $CHROMIUM) and playwright-core.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { REPO, freePort, tempDir, startServer, stopServer, keygen, wallet, mall } from './ledger.mjs';
import { decodeEntry, encodeEntry, ENTRY_HASH_DOMAIN } from '../../web/codec.js';
import { hex, unhex, concat } from '../../web/bytes.js';

const LAUNCH = {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
};
const VIEWPORT = { width: 430, height: 932 };
const SCREENSHOT = process.env.WALLET_SCREENSHOT || path.join(REPO, 'docs', 'wallet.png');
const TIMEOUT_MS = 30_000;
// Screenshots of other views, for a person reviewing a run (not committed).
const ARTIFACTS = path.join(REPO, 'tests', 'browser', 'artifacts');
const snap = async (page, name) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
};
// For working on web/ without rebuilding the binary: serve the page's files from this
// folder instead of the binary (with the binary's headers). CI never sets it.
const WEB_DIR = process.env.POINTS_WEB_DIR ? path.resolve(REPO, process.env.POINTS_WEB_DIR) : null;
const TYPES = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };

async function newContext(browser, options) {
  const ctx = await browser.newContext({ viewport: VIEWPORT, ...options });
  if (WEB_DIR) {
    await ctx.route((url) => !url.pathname.startsWith('/v1/'), async (route) => {
      const url = new URL(route.request().url());
      const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
      const real = await route.fetch();
      let body;
      try {
        body = readFileSync(path.join(WEB_DIR, file));
      } catch {
        return route.fulfill({ response: real });
      }
      const csp = (await fetch(new URL('/', url)).then((r) => r.headers.get('content-security-policy'))) || '';
      await route.fulfill({
        status: 200,
        body,
        headers: { 'content-type': TYPES[file.split('.').pop()], 'content-security-policy': csp || "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; require-trusted-types-for 'script'; trusted-types 'none'" },
      });
    });
  }
  return ctx;
}

/** Collects what the page says went wrong: uncaught errors, CSP violations. */
function watch(page, label) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(`${label}: uncaught ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (m.type() === 'error' && /Content Security Policy|Trusted Type|Refused to/i.test(text)) {
      problems.push(`${label}: ${text}`);
    }
  });
  return problems;
}

const runs = (page) => page.evaluate(() => Number(document.body.dataset.verifyRuns || 0));

async function afterVerification(page, since) {
  await page.waitForFunction((n) => Number(document.body.dataset.verifyRuns || 0) > n, since, { timeout: TIMEOUT_MS });
}

/** Clicks "verify again" on the wallet tab and waits for the verification to finish. */
async function verifyAgain(page) {
  await page.click('a[data-tab="wallet"]');
  const n = await runs(page);
  await page.click('#refresh');
  await afterVerification(page, n);
}

/** The history as the page shows it: `[{seq, op, verified}]`, newest first. */
const historyRows = (page) =>
  page.$$eval('#history li.entry', (els) => els.map((e) => ({ seq: Number(e.dataset.seq), op: e.dataset.op, verified: e.dataset.verified === 'true' })));

async function expectAllVerified(page, count) {
  assert.equal(await page.getAttribute('#main [data-verification]', 'data-verification'), 'ok', 'verification summary is ok');
  assert.ok(await page.isHidden('#alerts'), 'no warning shown');
  const rows = await historyRows(page);
  assert.equal(rows.length, count, `history has ${count} entries: ${JSON.stringify(rows)}`);
  for (const r of rows) assert.ok(r.verified, `entry ${r.seq} (${r.op}) is marked verified`);
  const marks = await page.$$eval('#history .mark.ok', (els) => els.length);
  assert.equal(marks, count, 'every entry shows the verified mark');
}

async function expectWarning(page, check) {
  assert.ok(await page.isVisible('#alerts .alert-box'), 'the warning is shown');
  const checks = await page.$$eval('#alerts [data-check]', (els) => els.map((e) => e.dataset.check));
  assert.ok(checks.includes(check), `warning names ${check}: ${JSON.stringify(checks)}`);
  const text = await page.textContent('#alerts');
  assert.ok(text.length > 40, 'the warning says what failed');
  const verified = await page.$$eval('#history li.entry[data-verified="true"]', (els) => els.length);
  assert.equal(verified, 0, 'no entry is marked verified while a check fails');
  const balanceNote = await page.getAttribute('.balance-note', 'class');
  assert.match(balanceNote, /bad/, 'the balance is marked unchecked');
}

const balanceText = (page) => page.textContent('#balance');
const trustOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('points.trust.v1')));

async function inputLabelsOk(page) {
  const unlabeled = await page.$$eval('input, textarea, select', (els) =>
    els.filter((e) => e.type !== 'hidden' && (!e.labels || e.labels.length === 0)).map((e) => e.outerHTML));
  assert.deepEqual(unlabeled, [], 'every form control has a label');
}

/** Replaces the JSON body of matching responses with `edit(json)`. */
async function tamper(page, match, edit) {
  await page.route(match, async (route) => {
    const resp = await route.fetch();
    const json = await resp.json();
    await route.fulfill({ response: resp, json: await edit(json) });
  });
}

test('member center: sign in, earn, redeem, cancel, transfer, fulfill, verify; then the server lies', { timeout: 600_000 }, async (t) => {
  const work = tempDir('points-web-');
  const dataA = path.join(work, 'a');
  const dataB = path.join(work, 'b');
  const portA = await freePort();
  let serverA = await startServer(dataA, portA);
  let serverB = null;
  const browser = await chromium.launch(LAUNCH);
  const problems = [];
  try {
    const issuer = { path: path.join(dataA, 'issuer.key') };
    const merchant = keygen(work, 'merchant');
    const friend = keygen(work, 'friend');
    wallet(serverA, issuer, 'register-merchant', '--merchant', merchant.public, '--name', '茶铺 Tea House', '--issue-rate', '1/1', '--redeem-rate', '8/10');
    wallet(serverA, issuer, 'mint', '--to', merchant.public, '--amount', '100000', '--memo', 'invoice-2026-001');
    mall(serverA, merchant, 'add', '--title', '茉莉花茶 Jasmine tea', '--description', '100 g, loose leaf', '--price', '300', '--stock', '10', '--limit-per-order', '3');
    mall(serverA, merchant, 'add', '--title', '帆布袋 Tote bag', '--price', '800', '--stock', '5');

    const ctx = await newContext(browser, { locale: 'zh-CN' });
    const page = await ctx.newPage();
    problems.push(watch(page, 'member'));
    let member;

    await t.test('create a key in the page; it stays in localStorage', async () => {
      await page.goto(serverA.url + '/');
      await inputLabelsOk(page);
      const n = await runs(page);
      await page.click('#create-key');
      await afterVerification(page, n);
      member = (await page.textContent('#account')).trim();
      assert.match(member, /^[0-9a-f]{64}$/);
      const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('points.key.v1')));
      assert.equal(stored.public, member);
      assert.match(stored.secret, /^[0-9a-f]{64}$/);
      await expectAllVerified(page, 0);
      assert.ok(await trustOf(page), 'the checkpoint key is pinned on first use');
    });

    await t.test('points earned from the merchant show up, verified', async () => {
      wallet(serverA, merchant, 'earn', '--member', member, '--amount', '2000', '--reason', 'purchase', '--reference', 'receipt-0001');
      wallet(serverA, merchant, 'earn', '--member', member, '--amount', '500', '--reason', 'task', '--reference', 'checkin-7');
      await verifyAgain(page);
      assert.equal(await balanceText(page), '2,500');
      await expectAllVerified(page, 2);
      const text = await page.textContent('#history');
      assert.ok(text.includes('receipt-0001') && text.includes('购物') && text.includes('任务'), 'reason and reference are shown');
      await page.click('#trust summary');
      assert.match(await page.textContent('#pinned-key'), /^points\.example\/member-center\+[0-9a-f]{8}\+/);
    });

    await t.test('redeem two items in the mall, cancel one order', async () => {
      await page.click('a[data-tab="mall"]');
      await page.waitForSelector('li.item');
      await inputLabelsOk(page);
      const tea = page.locator('li.item', { hasText: 'Jasmine tea' });
      await snap(page, 'mall');
      await tea.locator('input.qty').fill('2');
      await tea.locator('[data-action="redeem"]').click();
      let n = await runs(page);
      await tea.locator('.confirm .btn.primary').click();
      await afterVerification(page, n);
      const tote = page.locator('li.item', { hasText: 'Tote bag' });
      await tote.locator('[data-action="redeem"]').click();
      n = await runs(page);
      await tote.locator('.confirm .btn.primary').click();
      await afterVerification(page, n);

      await page.click('a[data-tab="orders"]');
      await page.waitForSelector('li.order');
      await inputLabelsOk(page);
      const open = page.locator('li.order', { hasText: 'Tote bag' });
      assert.equal(await open.getAttribute('data-status'), 'open');
      await open.locator('input').fill('changed my mind');
      await open.locator('[data-action="cancel"]').click();
      n = await runs(page);
      await open.locator('.confirm .btn.danger').click();
      await afterVerification(page, n);
      assert.equal(await page.locator('li.order', { hasText: 'Tote bag' }).getAttribute('data-status'), 'cancelled');
      assert.equal(await page.locator('li.order', { hasText: 'Jasmine tea' }).getAttribute('data-status'), 'open');
      await page.click('a[data-tab="wallet"]');
      assert.equal(await balanceText(page), '1,900');
      await expectAllVerified(page, 5);
      const ops = (await historyRows(page)).map((r) => r.op);
      assert.deepEqual(ops, ['cancel_order', 'redeem', 'redeem', 'earn', 'earn']);
    });

    await t.test('transfer points to another member by public key', async () => {
      await page.click('a[data-tab="transfer"]');
      await inputLabelsOk(page);
      await page.fill('#transfer-to', 'not a key');
      await page.fill('#transfer-amount', '100');
      await page.click('#transfer-submit');
      assert.equal(await page.getAttribute('#transfer-to', 'aria-invalid'), 'true', 'a bad key is refused before signing');
      await page.fill('#transfer-to', friend.public);
      await page.fill('#transfer-memo', '生日快乐');
      await page.click('#transfer-submit');
      const n = await runs(page);
      await page.click('#view-transfer .confirm .btn.primary');
      await afterVerification(page, n);
      await page.click('a[data-tab="wallet"]');
      assert.equal(await balanceText(page), '1,800');
      await expectAllVerified(page, 6);
      assert.ok((await page.textContent('#history')).includes('生日快乐'));
    });

    await t.test('export the key as a key file', async () => {
      await page.click('a[data-tab="key"]');
      const where = await page.textContent('#key-where');
      assert.ok(where.includes('localStorage'), 'the page says where the key lives');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-key')]);
      const text = readFileSync(await download.path(), 'utf8');
      const lines = text.split('\n');
      assert.equal(lines[0], 'points-ledger-key v1');
      assert.match(lines[1], /^secret [0-9a-f]{64}$/);
      assert.equal(lines[2], `public ${member}`);
    });

    await t.test('a merchant imports its key file, fulfills the order and sees its draft statement', async () => {
      const mctx = await newContext(browser, { locale: 'en-US' });
      const mpage = await mctx.newPage();
      problems.push(watch(mpage, 'merchant'));
      await mpage.goto(serverA.url + '/');
      const n = await runs(mpage);
      await mpage.setInputFiles('#key-file', merchant.path);
      await afterVerification(mpage, n);
      assert.equal((await mpage.textContent('#account')).trim(), merchant.public);
      assert.equal(await mpage.getAttribute('html', 'lang'), 'en');
      await expectAllVerified(mpage, 9);
      assert.equal(await balanceText(mpage), '98,100');
      await mpage.click('a[data-tab="merchant"]');
      await mpage.waitForSelector('#merchant-orders li.order');
      await inputLabelsOk(mpage);
      const order = mpage.locator('#merchant-orders li.order', { hasText: 'Jasmine tea' });
      await order.locator('input').first().fill('SF-1234567');
      const m = await runs(mpage);
      await order.locator('[data-action="fulfill"]').click();
      await afterVerification(mpage, m);
      assert.equal(await mpage.locator('#merchant-orders li.order').count(), 0, 'no order left to fulfill');
      await snap(mpage, 'merchant');
      const redeemed = await mpage.textContent('#statement tr[data-field="points_redeemed"] td');
      assert.equal(redeemed, '1,400');
      const refunded = await mpage.textContent('#statement tr[data-field="points_refunded"] td');
      assert.equal(refunded, '800');
      await verifyAgain(mpage);
      await expectAllVerified(mpage, 10);
      await mctx.close();
      await verifyAgain(page);
      await expectAllVerified(page, 7);
      await page.click('a[data-tab="orders"]');
      await page.waitForSelector('li.order[data-status="fulfilled"]');
      await page.click('a[data-tab="wallet"]');
    });

    await t.test('the friend pastes a key file and sees the transfer, verified', async () => {
      const fctx = await newContext(browser, { locale: 'zh-CN' });
      const fpage = await fctx.newPage();
      problems.push(watch(fpage, 'friend'));
      await fpage.goto(serverA.url + '/');
      await fpage.fill('#key-paste', readFileSync(friend.path, 'utf8'));
      const n = await runs(fpage);
      await fpage.click('#import-paste');
      await afterVerification(fpage, n);
      assert.equal(await balanceText(fpage), '100');
      await expectAllVerified(fpage, 1);
      assert.ok((await fpage.textContent('#history')).includes('生日快乐'));
      await fctx.close();
    });

    await t.test('a pending award, then its release by the merchant, verified with the award record', async () => {
      const until = String(Date.now() + 90 * 86_400_000);
      wallet(serverA, merchant, 'earn', '--member', member, '--amount', '300', '--reason', 'campaign', '--reference', 'spring-bonus', '--pending-until-confirmed', '--expires-at-ms', until);
      await verifyAgain(page);
      await expectAllVerified(page, 8);
      const pendingRow = page.locator('#history li.entry', { hasText: 'spring-bonus' });
      assert.ok((await pendingRow.textContent()).includes('待解冻'), 'the pending award says it is held back');
      const earnId = await pendingRow.getAttribute('data-seq');
      wallet(serverA, merchant, 'confirm-earn', earnId);
      await verifyAgain(page);
      await expectAllVerified(page, 9);
      assert.equal((await historyRows(page))[0].op, 'confirm_earn');
      assert.equal(await balanceText(page), '2,100');
    });

    await t.test('screenshot of the wallet for the README', async () => {
      await page.click('a[data-tab="wallet"]');
      await page.evaluate(() => {
        document.getElementById('toast').hidden = true;
        window.scrollTo(0, 0);
      });
      if (!(await page.$eval('#trust', (e) => e.open))) await page.click('#trust summary');
      await page.setViewportSize({ width: VIEWPORT.width, height: 1240 });
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT });
      await page.setViewportSize(VIEWPORT);
    });

    await t.test('a fork of the log served to the same browser raises the consistency warning', async () => {
      await stopServer(serverA);
      cpSync(dataA, dataB, { recursive: true });
      serverA = await startServer(dataA, portA);
      serverB = await startServer(dataB, await freePort());
      // Same keys, same prefix, different continuations.
      wallet(serverA, merchant, 'earn', '--member', member, '--amount', '10', '--reference', 'honest-1');
      wallet(serverB, merchant, 'earn', '--member', member, '--amount', '20', '--reference', 'forked-1');
      wallet(serverB, merchant, 'earn', '--member', member, '--amount', '30', '--reference', 'forked-2');
      await verifyAgain(page);
      await expectAllVerified(page, 10);
      const seen = await trustOf(page);
      // The browser now talks to the fork at the same origin, as a lying operator would.
      await page.route((url) => url.pathname.startsWith('/v1/'), async (route) => {
        const u = new URL(route.request().url());
        const resp = await route.fetch({ url: `${serverB.url}${u.pathname}${u.search}` });
        await route.fulfill({ response: resp });
      });
      await verifyAgain(page);
      await expectWarning(page, 'consistency');
      const forked = await historyRows(page);
      assert.equal(forked.length, 11, 'what the fork claims is still shown, every entry marked unverified');
      await snap(page, 'fork-warning');
      assert.deepEqual(await trustOf(page), seen, 'the last checkpoint seen is kept, not replaced by the fork');
      await page.unrouteAll({ behavior: 'wait' });
      await verifyAgain(page);
      await expectAllVerified(page, 10);
    });

    await t.test('a tampered inclusion proof raises a warning on that entry', async () => {
      let target;
      await tamper(page, (url) => url.pathname.endsWith('/history') && url.searchParams.get('proofs') === 'true', (json) => {
        const item = json.items.find((i) => i.proof.length > 0);
        target = item.seq;
        const p = item.proof[0];
        item.proof[0] = (p[0] === '0' ? '1' : '0') + p.slice(1);
        return json;
      });
      await verifyAgain(page);
      await expectWarning(page, 'entry_inclusion');
      assert.equal(await page.getAttribute(`#history li.entry[data-seq="${target}"]`, 'class'), 'entry bad');
      assert.ok(await page.isVisible(`#history li.entry[data-seq="${target}"] .entry-failure`));
      await page.unrouteAll({ behavior: 'wait' });
      await verifyAgain(page);
      await expectAllVerified(page, 10);
    });

    await t.test('an entry whose amount was changed (hash recomputed) fails its signature check', async () => {
      await tamper(page, (url) => url.pathname.endsWith('/history'), (json) => {
        const item = json.items.find((i) => i.op.envelope.op.type === 'earn');
        const entry = decodeEntry(unhex(item.entry));
        entry.signed_op.envelope.op.amount = 2000000n;
        const bytes = encodeEntry(entry);
        item.entry = hex(bytes);
        item.entry_hash = createHash('sha256').update(concat(ENTRY_HASH_DOMAIN, bytes)).digest('hex');
        item.op.envelope.op.amount = 2000000;
        return json;
      });
      await verifyAgain(page);
      await expectWarning(page, 'entry_signature');
      await page.unrouteAll({ behavior: 'wait' });
      await verifyAgain(page);
      await expectAllVerified(page, 10);
    });

    await t.test('a checkpoint with a forged signature raises a warning', async () => {
      await tamper(page, (url) => url.pathname === '/v1/checkpoint', (json) => {
        const lines = json.note.split('\n');
        const sig = lines.findIndex((l) => l.startsWith('\u2014 '));
        const parts = lines[sig].split(' ');
        const b = Buffer.from(parts[2], 'base64');
        b[20] ^= 1;
        parts[2] = b.toString('base64');
        lines[sig] = parts.join(' ');
        json.note = lines.join('\n');
        return json;
      });
      await verifyAgain(page);
      await expectWarning(page, 'checkpoint_signature');
      await page.unrouteAll({ behavior: 'wait' });
    });

    await t.test('a server that shows another checkpoint key raises a warning', async () => {
      await tamper(page, (url) => url.pathname === '/v1/info', (json) => {
        json.checkpoint_verifier = 'points.example/member-center+00000000+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs';
        return json;
      });
      await verifyAgain(page);
      await expectWarning(page, 'key_changed');
      await page.unrouteAll({ behavior: 'wait' });
      await verifyAgain(page);
      await expectAllVerified(page, 10);
    });

    await t.test('the language toggle switches every text', async () => {
      await page.click('#lang');
      assert.equal(await page.getAttribute('html', 'lang'), 'en');
      assert.ok((await page.textContent('#main')).includes('Points history'));
      assert.ok((await page.textContent('#tabs')).includes('Wallet'));
      assert.equal(await page.textContent('#lang'), '中文');
      const cjk = await page.evaluate(() => /[\u4e00-\u9fff]/.test(document.querySelector('#tabs').textContent + document.querySelector('.top').textContent.replace('中文', '')));
      assert.ok(!cjk, 'no Chinese left in the English navigation');
      await page.click('#lang');
      assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
      assert.ok((await page.textContent('#main')).includes('积分记录'));
    });

    await t.test('keyboard: the tabs and actions are reachable with Tab and Enter', async () => {
      await page.focus('#lang');
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => document.activeElement.dataset.tab);
      assert.equal(focused, 'wallet');
      await page.keyboard.press('Tab');
      await page.keyboard.press('Enter');
      await page.waitForSelector('#view-mall');
    });

    await ctx.close();
    assert.deepEqual(problems.flat(), [], 'no page errors or policy violations');
  } finally {
    await browser.close();
    await stopServer(serverA);
    if (serverB) await stopServer(serverB);
    rmSync(work, { recursive: true, force: true });
  }
});
