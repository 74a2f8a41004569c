// DOM helpers. The page never parses strings as markup (the Content-Security-Policy
// enforces Trusted Types with no policy): every element is built here, and every text
// from the server is set as text.

import { t, locale } from './i18n.js';

/**
 * `h('button', {class: 'x', onclick: fn, 'aria-label': '…'}, child, …)`: an element with
 * attributes (`on*` become listeners; false/null/undefined are skipped; `text` sets the
 * text) and children (nodes, strings, arrays; null is skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children as `h` does (nodes, strings, arrays; null and false skipped). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A unique element id with a prefix. */
export const uid = (prefix) => `${prefix}-${++ids}`;

/** A labelled form field: `{label, input, help, error}`. */
export function field(labelText, input, helpText = null) {
  const id = input.id || uid('f');
  input.id = id;
  const help = helpText ? h('p', { class: 'help', id: `${id}-help`, text: helpText }) : null;
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const described = [help && `${id}-help`, `${id}-error`].filter(Boolean).join(' ');
  input.setAttribute('aria-describedby', described);
  const wrap = h('div', { class: 'field' }, h('label', { for: id, text: labelText }), input, help, error);
  return {
    wrap,
    input,
    setError(msg) {
      error.textContent = msg || '';
      error.hidden = !msg;
      if (msg) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    },
  };
}

/** Formats a points amount (number, BigInt or decimal string) for the current language. */
export function fmtPoints(n) {
  try {
    return new Intl.NumberFormat(locale()).format(typeof n === 'string' ? BigInt(n) : n);
  } catch {
    return String(n);
  }
}

/** A signed amount: +1,000 / −250 / 0. */
export function fmtDelta(n) {
  const b = BigInt(n);
  if (b > 0n) return `+${fmtPoints(b)}`;
  if (b < 0n) return `\u2212${fmtPoints(-b)}`;
  return '0';
}

/** Formats unix milliseconds as a local date and time. */
export function fmtTime(ms) {
  try {
    return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(Number(ms)));
  } catch {
    return String(ms);
  }
}

/** A key shortened for display: first 8 and last 4 hex digits. */
export const shortKey = (k) => (k && k.length > 16 ? `${k.slice(0, 8)}…${k.slice(-4)}` : String(k));

/** Opaque bytes (hex) shown as text when they are printable UTF-8, else as hex. */
export function bytesText(hexStr) {
  if (!hexStr) return '';
  try {
    const b = Uint8Array.from(hexStr.match(/../g), (x) => parseInt(x, 16));
    const s = new TextDecoder('utf-8', { fatal: true }).decode(b);
    if (/^[^\p{Cc}\p{Cf}]*$/u.test(s)) return s;
  } catch {
    /* not UTF-8 */
  }
  return `0x${hexStr}`;
}

/**
 * A two-step confirmation: shows `message` with a confirm and a cancel button inside
 * `container`; resolves true or false. Keyboard focus moves to the confirm button.
 */
export function confirmInline(container, message, confirmLabel, { danger = false } = {}) {
  return new Promise((resolve) => {
    const box = h('div', { class: `confirm${danger ? ' danger' : ''}`, role: 'group', 'aria-label': message });
    const done = (v) => {
      box.remove();
      resolve(v);
    };
    const yes = h('button', { type: 'button', class: danger ? 'btn danger' : 'btn primary', onclick: () => done(true) }, confirmLabel);
    const no = h('button', { type: 'button', class: 'btn', onclick: () => done(false) }, t('common.cancel'));
    box.append(h('p', { text: message }), h('div', { class: 'actions' }, yes, no));
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') done(false);
    });
    container.append(box);
    yes.focus();
  });
}
