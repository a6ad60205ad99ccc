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

/** GET /hit (or `first`, a GraphQL mutation) without a cookie; the Set-Cookie name=value pairs it answers with form the session cookie. */
export function firstCookie(port, first) {
  const what = first === undefined ? 'GET /hit' : `${first.method} /${first.path}`;
  return new Promise((resolve, reject) => {
    const options = first === undefined
      ? { host: '127.0.0.1', port, path: '/hit', method: 'GET', timeout: 5000 }
      : { host: '127.0.0.1', port, path: `/${first.path}`, method: first.method, timeout: 5000, headers: { 'content-type': 'application/json' } };
    const req = request(options, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${what} answered ${res.statusCode}`));
        const pairs = (res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]);
        resolve(pairs.length > 0 ? pairs.join('; ') : undefined);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${what} timed out`)));
    req.on('error', reject);
    req.end(first?.body);
  });
}
