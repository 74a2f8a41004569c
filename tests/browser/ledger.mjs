// Test helpers: the real `points` binary as a server on a free loopback port with a
// temporary data folder, and as the CLI for the issuer's and the merchant's ops.

import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');

/** The `points` binary: $POINTS_BIN, else the release build of $CARGO_TARGET_DIR or target/. */
export function pointsBin() {
  const candidates = [
    process.env.POINTS_BIN,
    process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, 'release', 'points'),
    path.join(REPO, 'target', 'release', 'points'),
  ].filter(Boolean);
  const bin = candidates.find((p) => existsSync(p));
  if (!bin) throw new Error(`no points binary (tried ${candidates.join(', ')}): run cargo build --release`);
  return bin;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A new temporary folder. */
export const tempDir = (prefix) => mkdtempSync(path.join(tmpdir(), prefix));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `points serve` on `port` with data folder `data`; resolves once /healthz answers. */
export async function startServer(data, port, { chainId = 'points.example/member-center', logFile } = {}) {
  const args = ['serve', '--data', data, '--listen', `127.0.0.1:${port}`, '--chain-id', chainId, '--checkpoint-interval-ms', '200'];
  const child = spawn(pointsBin(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`points serve exited (${child.exitCode}):\n${output}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) return { child, url, port, data, output: () => output };
    } catch {
      /* not up yet */
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`points serve did not answer on ${url}:\n${output}`);
}

/** Stops a server gracefully (SIGTERM) and waits for it to exit. */
export async function stopServer(server) {
  const { child } = server;
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Runs the `points` CLI; returns its stdout, throws with its output on failure. */
export function points(args, server) {
  try {
    return execFileSync(pointsBin(), args, {
      encoding: 'utf8',
      env: { ...process.env, POINTS_SERVER: server ? server.url : '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (e) {
    throw new Error(`points ${args.join(' ')} failed:\n${e.stdout || ''}${e.stderr || ''}`);
  }
}

/** `points keygen`: `{path, public}`. */
export function keygen(dir, name) {
  const p = path.join(dir, `${name}.key`);
  const out = points(['keygen', '--out', p]);
  const m = /Public key: ([0-9a-f]{64})/.exec(out);
  if (!m) throw new Error(`keygen printed no public key: ${out}`);
  return { path: p, public: m[1] };
}

/** The public key of a key file. */
export function publicOf(keyPath) {
  return /public ([0-9a-f]{64})/.exec(readFileSync(keyPath, 'utf8'))[1];
}

/** `points wallet --key KEY ARGS…` against `server`. */
export const wallet = (server, key, ...args) => points(['wallet', '--key', key.path, '--server', server.url, ...args], server);

/** `points mall --key KEY ARGS…` against `server`. */
export const mall = (server, key, ...args) => points(['mall', '--key', key.path, '--server', server.url, ...args], server);
