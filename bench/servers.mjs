// The contenders' servers: each a child process (bench/server.mjs) pinned to the server core, all
// tracked so that every exit path of the benchmark stops them and the load generators.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { BENCH_DIR } from './lib.mjs';

const READY_TIMEOUT_MS = 30_000;
const children = new Set();

/** Tracks a child process until it exits; `killAll()` ends whatever is still running. */
export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function killAll() {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  children.clear();
}

/** Kills every tracked child when this process exits or is interrupted. */
export function stopChildrenOnExit() {
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping the servers`);
      killAll();
      process.exit(130);
    });
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port (Redis, PostgreSQL). */
export function portOpen(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Starts one contender on `cpu` (taskset) and waits until it listens. The server picks a free port
 * and prints it. Returns { name, pid, port, alive, stderr() }; `alive` turns false if it exits.
 */
export async function startServer(name, cpu) {
  const child = track(spawn('taskset', ['-c', cpu, process.execPath, join(BENCH_DIR, 'server.mjs'), name, '0'], {
    cwd: BENCH_DIR,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  }));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const onExit = (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name}: exited (${code ?? signal}) before it was ready\n${stderr}`));
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      child.kill('SIGKILL');
      reject(new Error(`${name}: not ready within ${READY_TIMEOUT_MS} ms\n${stderr}`));
    }, READY_TIMEOUT_MS);
    child.stdout.on('data', (d) => {
      out += d;
      const ready = /READY (\d+)/.exec(out);
      if (ready) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(Number(ready[1]));
      }
    });
    child.once('exit', onExit);
  });
  // taskset execs node, so the child's pid is the server's pid.
  const server = { name, pid: child.pid, port, alive: true, child, stderr: () => stderr };
  child.once('exit', () => { server.alive = false; });
  return server;
}

export async function stopServer(server) {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 6000);
  await exited;
  clearTimeout(timer);
}

/**
 * One request as a contender's route sends it: `GET /hit` by default, or `spec` ({ method, path,
 * body }, a GraphQL POST). Resolves to the status, the body and the Set-Cookie name=value pairs.
 */
export function send(port, spec, cookie) {
  const what = spec === undefined ? 'GET /hit' : `${spec.method} /${spec.path}`;
  return new Promise((resolve, reject) => {
    const headers = { ...(spec === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie ? { cookie } : {}) };
    const options = { host: '127.0.0.1', port, path: `/${spec?.path ?? 'hit'}`, method: spec?.method ?? 'GET', timeout: 5000, headers };
    const req = request(options, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const cookies = (res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]);
        resolve({ what, status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), cookie: cookies.length > 0 ? cookies.join('; ') : undefined });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${what} timed out`)));
    req.on('error', reject);
    req.end(spec?.body);
  });
}

/**
 * The session cookie a contender answers its first `/hit` with (no cookie sent), after checking
 * that the contender works: a 200; a GraphQL answer with data and no `errors` (GraphQL reports
 * failures with a 200); a cookie from every session contender; and, sending that cookie back, a
 * `read` that sees the written counter. A contender that fails here would measure its error path.
 */
export async function firstCookie(port, { requests, needsCookie = false, readsBack = false } = {}) {
  const check = (res) => {
    if (res.status !== 200) throw new Error(`${res.what} answered ${res.status}: ${res.body.slice(0, 200)}`);
    if (requests === undefined) return undefined;
    const answer = JSON.parse(res.body);
    if (answer.errors !== undefined || answer.data == null) throw new Error(`${res.what} answered GraphQL errors: ${res.body.slice(0, 300)}`);
    return answer.data;
  };
  const first = await send(port, requests?.hit);
  check(first);
  if (needsCookie && first.cookie === undefined) throw new Error(`${first.what} set no session cookie`);
  if (readsBack) {
    const read = await send(port, requests?.read ?? { method: 'GET', path: 'read' }, first.cookie);
    const data = check(read);
    const value = data === undefined ? JSON.parse(read.body).hits : data.read;
    if (!(value >= 1)) throw new Error(`${read.what} with the first cookie read ${read.body.slice(0, 200)}: the session was not kept`);
  }
  return first.cookie;
}
