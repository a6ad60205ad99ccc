import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * The one place that starts, waits for and stops the throw-away servers the tests run (redis-server,
 * PostgreSQL): a child in the foreground, polled until it answers, killed and waited for.
 */

/** A server binary is not installed: the message says what to install. */
export class MissingBinaryError extends Error {
  override name = 'MissingBinaryError';
}

/** Something already listens on the port: the tests never talk to a server they did not start. */
export class PortInUseError extends Error {
  override name = 'PortInUseError';
  constructor(readonly port: number) {
    super(`port ${port} on 127.0.0.1 is already in use; stop whatever listens there (a leftover server?) and run again`);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function isPortOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => done(true));
  });
}

export async function assertPortFree(port: number): Promise<void> {
  if (await isPortOpen(port)) throw new PortInUseError(port);
}

/** A port nothing listens on right now (the OS picks it; another process could still take it before us). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts a server on a port the OS says is free, and tries another if someone takes it first. */
export async function onFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      if (!(err instanceof PortInUseError) || attempt === 5) throw err;
    }
  }
}

/** Polls `check` every 50 ms until it returns true; throws `message()` after `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(message());
    await sleep(50);
  }
}

export async function waitForPortClosed(port: number, timeoutMs = 10_000): Promise<void> {
  await waitUntil(async () => !(await isPortOpen(port)), timeoutMs, () => `127.0.0.1:${port} still accepts connections ${timeoutMs} ms after its server was stopped`);
}

/** The absolute path of an executable: `name` itself when it is a path, else the first match in `dirs` then on PATH. */
export function findBinary(name: string, dirs: string[] = []): string | undefined {
  const candidates = isAbsolute(name) ? [name] : [...dirs, ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)].map((dir) => join(dir, name));
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs a command to completion; the error carries its output. */
export function runCommand(file: string, args: string[], options: { timeoutMs?: number; uid?: number; gid?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: options.timeoutMs ?? 60_000, uid: options.uid, gid: options.gid }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${[file, ...args].join(' ')} failed: ${err.message.trim()}\n${stdout}${stderr}`.trim(), { cause: err }));
      else resolve(stdout);
    });
  });
}

const tempDirs = new Set<string>();
let exitHook = false;

/**
 * A fresh directory under the system temp dir; `remove()` deletes it. Whatever is not removed by
 * then is removed when the process exits, so an interrupted run leaves no directory behind.
 */
export function makeTempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(path);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    });
  }
  return {
    path,
    remove: () => {
      tempDirs.delete(path);
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/** Kills a child and waits for it to exit; SIGKILL if it is still there after `graceMs`. Safe to call twice. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface ServerProcessOptions {
  /** For messages: `redis-server`, `PostgreSQL`. */
  name: string;
  /** The binary (a path, or a name looked up on PATH) and its arguments. */
  command: string;
  args: string[];
  /** What to install when `command` is missing, e.g. "redis-server (Debian: apt-get install redis-server)". */
  install: string;
  /** The port it listens on: it must be free before the start, and is closed again after stop(). */
  port: number;
  /** Resolves true once the server serves requests (not merely accepts connections). */
  ready(): Promise<boolean>;
  /** The signal stop() sends (default SIGKILL: a crash). */
  stopSignal?: NodeJS.Signals;
  /** Wraps the command line, e.g. to run it in a user namespace. */
  wrap?: (file: string, args: string[]) => [string, string[]];
  uid?: number;
  gid?: number;
  startTimeoutMs?: number;
}

export interface ServerProcess {
  readonly port: number;
  readonly pid: number;
  /** The last lines the server printed. */
  output(): string;
  /** Sends the stop signal, waits for the exit and for the port to close; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Spawns a server in the foreground and waits until `ready()` answers. The server gets a
 * parent-death signal (`setpriv --pdeathsig`, where util-linux has it): should the process that
 * started it die without stopping it, it goes too. Fails fast, with the server's own output, when it
 * exits before it is ready; throws MissingBinaryError when the binary is not installed and
 * PortInUseError when the port is taken.
 */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const { name, port } = options;
  const binary = findBinary(options.command);
  if (binary === undefined) throw new MissingBinaryError(`${options.command} is not installed (not found on PATH): install ${options.install}`);
  await assertPortFree(port);

  const stopSignal = options.stopSignal ?? 'SIGKILL';
  // The parent-death signal is set last, right before the server itself starts (a wrapper that
  // enters a user namespace would clear it).
  const setpriv = findBinary('setpriv');
  const inner: [string, string[]] = setpriv === undefined ? [binary, options.args] : [setpriv, ['--pdeathsig', stopSignal.replace(/^SIG/, ''), '--', binary, ...options.args]];
  const [file, args] = options.wrap ? options.wrap(...inner) : inner;

  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], uid: options.uid, gid: options.gid });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const output = () => tail.trim().split('\n').slice(-15).join('\n');
  const exitedEarly = () => child.exitCode !== null || child.signalCode !== null || spawnError !== undefined;

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    if (exitedEarly()) {
      await sleep(20); // let the last output arrive
      if (/address already in use/i.test(tail)) throw new PortInUseError(port);
      throw new Error(
        `${name} (${[file, ...args].join(' ')}) exited before it answered on 127.0.0.1:${port}: ${spawnError?.message ?? `exit code ${child.exitCode}, signal ${child.signalCode}`}\n${output()}`,
      );
    }
    // Ready, and still ours: a server of ours that lost a race for the port exits at once.
    if ((await options.ready()) && !exitedEarly()) break;
    if (Date.now() > deadline) {
      await stopChild(child, 'SIGKILL');
      throw new Error(`${name} did not answer on 127.0.0.1:${port} within ${options.startTimeoutMs ?? 30_000} ms\n${output()}`);
    }
    await sleep(50);
  }

  return {
    port,
    pid: child.pid!,
    output,
    stop: async () => {
      await stopChild(child, stopSignal);
      await waitForPortClosed(port);
    },
  };
}
