import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';

/** A throw-away redis-server process on its own port, keeping nothing on disk. */
export interface RedisServer {
  readonly port: number;
  /** Kills the process (like a crash) and waits until the port refuses connections; safe to call twice. */
  stop(): Promise<void>;
  /** Starts it again on the same port, stopping it first if it runs; it comes back empty (nothing is persisted). */
  restart(): Promise<void>;
}

/** Spawns `redis-server` in the foreground; extra arguments are passed through (e.g. cluster flags). */
export function spawnRedis(port: number, dir: string, extraArgs: string[] = []): ChildProcess {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, ...extraArgs],
    { stdio: 'ignore' },
  );
  child.on('error', () => undefined); // a missing binary shows up as waitForPort timing out with a clear message
  return child;
}

/** Resolves once a PING on the port answers PONG, or rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ping(port)) return;
    await sleep(50);
  }
  throw new Error(`redis-server on 127.0.0.1:${port} did not answer within ${timeoutMs} ms; is redis-server on PATH and the port free?`);
}

/** Resolves once nothing accepts connections on the port. */
export async function waitForPortClosed(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await ping(port))) return;
    await sleep(50);
  }
  throw new Error(`127.0.0.1:${port} still answers ${timeoutMs} ms after stopping redis-server`);
}

/** Kills a child and waits for it to exit. */
export async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

/** Throws when something already listens on the port, so a test never talks to a stranger's server. */
export async function assertPortFree(port: number): Promise<void> {
  const open = await new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setTimeout(500, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(false));
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
  });
  if (open) throw new Error(`port ${port} is already in use; stop whatever listens there (a leftover redis-server?) and run again`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/**
 * Starts a standalone redis-server on `port`. It writes nothing to disk (no RDB, no AOF), so its
 * working directory is the system temp dir and there is nothing to clean up after stop().
 */
export async function startRedisServer(port: number): Promise<RedisServer> {
  let child: ChildProcess | undefined;
  const launch = async () => {
    await assertPortFree(port);
    child = spawnRedis(port, tmpdir());
    try {
      await waitForPort(port);
    } catch (err) {
      await kill(child);
      child = undefined;
      throw err;
    }
  };
  const halt = async () => {
    if (child) await kill(child);
    child = undefined;
    await waitForPortClosed(port);
  };
  await launch();
  return {
    port,
    stop: halt,
    restart: async () => {
      await halt();
      await launch();
    },
  };
}
