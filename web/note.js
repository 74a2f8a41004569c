// C2SP signed notes and checkpoints (ledger-spec/checkpoints.md): verifier keys, key ids,
// note signatures, the checkpoint body with its `head` and `time` lines.

import { hex, unhex, b64, unb64, concat, utf8, equal } from './bytes.js';
import { sha256, verifyProblem } from './crypto.js';

/** A note or checkpoint failure; `code` is stable, `message` says what. */
export class NoteError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

const MAX_NOTE_BYTES = 131072;
const MAX_LINE_BYTES = 8192;
const MAX_SIGNATURES = 64;
const TYPE_ED25519 = 0x01;

function validKeyName(name) {
  // Non-empty, no Unicode white space, no '+', no control characters.
  return name.length > 0 && !/[\s+\p{Cc}]/u.test(name);
}

/** Key id: the first 4 bytes of SHA-256(name || 0x0A || type || key), as 8 hex digits. */
export async function keyId(name, type, key) {
  const h = await sha256(concat(utf8(name), Uint8Array.of(0x0a, type), key));
  return hex(h.subarray(0, 4));
}

/** Parses and checks a verifier key `name+keyid+base64(type || key)` (Ed25519 only). */
export async function parseVkey(vkey) {
  // The name and the id hold no '+'; the base64 key may.
  const m = typeof vkey === 'string' ? /^([^+]*)\+([^+]*)\+(.*)$/s.exec(vkey) : null;
  if (!m) throw new NoteError('bad_vkey', 'verifier key is not name+id+key');
  const [, name, id, k] = m;
  if (!validKeyName(name) || !/^[0-9a-f]{8}$/.test(id)) throw new NoteError('bad_vkey', 'bad name or key id');
  const raw = unb64(k);
  if (!raw || raw.length !== 33 || raw[0] !== TYPE_ED25519) {
    throw new NoteError('bad_vkey', 'unsupported key type');
  }
  const key = raw.subarray(1);
  if ((await keyId(name, TYPE_ED25519, key)) !== id) {
    throw new NoteError('bad_vkey', 'key id does not match the key');
  }
  return { name, id, key, vkey };
}

/**
 * Verifies a signed note against one trusted Ed25519 key (a parsed vkey). Returns
 * `{text, signatures}`, where each signature line is `{name, id, trusted}`; throws
 * NoteError when the note is malformed, a signature by the trusted key fails, or none
 * verifies.
 */
export async function openNote(note, verifier) {
  if (typeof note !== 'string') throw new NoteError('malformed', 'note is not text');
  const bytes = utf8(note);
  if (bytes.length > MAX_NOTE_BYTES) throw new NoteError('malformed', 'note too long');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new NoteError('malformed', 'control character');
  if (!note.endsWith('\n')) throw new NoteError('malformed', 'missing final newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('malformed', 'no signature block');
  const text = note.slice(0, split + 1);
  const sigBlock = note.slice(split + 2);
  for (const line of note.split('\n')) {
    if (utf8(line).length > MAX_LINE_BYTES) throw new NoteError('malformed', 'line too long');
  }
  const lines = sigBlock.slice(0, -1).split('\n');
  if (lines.length === 0 || lines.length > MAX_SIGNATURES) {
    throw new NoteError('malformed', 'bad number of signatures');
  }
  const textBytes = utf8(text);
  const signatures = [];
  let verified = false;
  for (const line of lines) {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m || !validKeyName(m[1])) throw new NoteError('malformed', 'bad signature line');
    const raw = unb64(m[2]);
    if (!raw || raw.length < 5) throw new NoteError('malformed', 'bad signature encoding');
    const id = hex(raw.subarray(0, 4));
    const trusted = m[1] === verifier.name && id === verifier.id;
    if (trusted) {
      if (raw.length !== 68) throw new NoteError('bad_signature', 'checkpoint signature has the wrong length');
      const problem = await verifyProblem(verifier.key, textBytes, raw.subarray(4));
      if (problem) throw new NoteError('bad_signature', `checkpoint signature: ${problem}`);
      verified = true;
    }
    signatures.push({ name: m[1], id, trusted });
  }
  if (!verified) throw new NoteError('no_trusted_signature', 'no signature by the pinned checkpoint key');
  return { text, signatures };
}

const DEC = /^(0|[1-9][0-9]{0,19})$/;
const U64_MAX = (1n << 64n) - 1n;

function decimal(s, what) {
  if (!DEC.test(s) || BigInt(s) > U64_MAX) throw new NoteError('malformed', `${what} is not a u64`);
  return BigInt(s);
}

/** Parses a checkpoint body (five lines). Sizes and times are BigInt, root/head bytes. */
export function parseCheckpointBody(text) {
  if (!text.endsWith('\n')) throw new NoteError('malformed', 'checkpoint body without final newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length !== 5) throw new NoteError('malformed', 'checkpoint body must have 5 lines');
  const [origin, sizeS, rootS, headS, timeS] = lines;
  if (!validKeyName(origin)) throw new NoteError('malformed', 'bad origin');
  const size = decimal(sizeS, 'size');
  const root = unb64(rootS);
  if (!root || root.length !== 32) throw new NoteError('malformed', 'bad root');
  const hm = /^head ([0-9a-f]{64})$/.exec(headS);
  if (!hm) throw new NoteError('malformed', 'bad head line');
  const tm = /^time (.*)$/.exec(timeS);
  if (!tm) throw new NoteError('malformed', 'bad time line');
  const time = decimal(tm[1], 'time');
  const head = unhex(hm[1], 32);
  if (size === 0n) {
    const empty = unb64('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');
    if (!equal(root, empty) || head.some((b) => b !== 0)) {
      throw new NoteError('malformed', 'size-0 checkpoint with a non-empty root or head');
    }
  }
  return { origin, size, root, head, time };
}

/**
 * Opens a served checkpoint view `{origin, size, root, head, time_ms, note}` with the
 * pinned verifier key: the note's signature, the body's syntax, the origin equal to the
 * key's name, and the JSON fields equal to the signed ones. Returns the parsed body plus
 * the note's signature lines.
 */
export async function openCheckpoint(view, verifier) {
  const { text, signatures } = await openNote(view && view.note, verifier);
  const cp = parseCheckpointBody(text);
  if (cp.origin !== verifier.name) throw new NoteError('wrong_origin', 'checkpoint origin is not the pinned key name');
  const same =
    view.origin === cp.origin &&
    BigInt(view.size) === cp.size &&
    view.root === hex(cp.root) &&
    view.head === hex(cp.head) &&
    BigInt(view.time_ms) === cp.time;
  if (!same) throw new NoteError('view_mismatch', "the checkpoint's JSON fields differ from its signed note");
  return { ...cp, signatures, text };
}

export { b64 };
