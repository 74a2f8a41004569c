// Both languages are complete: the same keys, the same placeholders, no empty text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { MESSAGES, t, setLang } from '../i18n.js';

const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('Chinese and English have the same messages and placeholders', () => {
  const zh = MESSAGES.zh, en = MESSAGES.en;
  assert.deepEqual(Object.keys(zh).sort(), Object.keys(en).sort());
  for (const k of Object.keys(zh)) {
    assert.ok(zh[k].trim() && en[k].trim(), `${k} is not empty`);
    assert.deepEqual(placeholders(zh[k]), placeholders(en[k]), `${k}: placeholders`);
  }
});

test('every message key the page uses exists', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const web = path.resolve(here, '..');
  const used = new Set();
  for (const f of ['app.js', 'ui.js', 'index.html']) {
    const src = readFileSync(path.join(web, f), 'utf8');
    for (const m of src.matchAll(/\bt\('([a-z_.]+)'/g)) used.add(m[1]);
    for (const m of src.matchAll(/data-i18n="([a-z_.]+)"/g)) used.add(m[1]);
  }
  assert.ok(used.size > 100, `${used.size} keys found`);
  for (const k of used) assert.ok(k in MESSAGES.en, `missing message ${k}`);
  // Keys built at run time: op types, reasons, statuses, checks, statement fields.
  for (const k of ['op.earn.in', 'reason.purchase', 'burn.expiry', 'orders.status.open', 'check.consistency', 'stmt.due_to_merchant', 'problem.insufficient_funds', 'wallet.kind.merchant', 'nav.merchant']) {
    assert.ok(k in MESSAGES.zh, k);
  }
});

test('placeholders are filled', () => {
  setLang('en');
  assert.equal(t('mall.price', { price: '300' }), '300 points');
  setLang('zh');
  assert.equal(t('mall.price', { price: '300' }), '300 积分');
});
