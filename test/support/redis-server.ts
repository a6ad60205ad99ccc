import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import type { Redis } from 'ioredis';
import { onFreePort, startServerProcess, type ServerProcess } from './server-process.js';

export { sleep } from './server-process.js';

export const REDIS_INSTALL = 'redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)';

/** A throw-away redis-server process on its own port, keeping nothing on disk. */
export interface RedisServer {
  readonly port: number;
  /** Kills the process (like a crash) and waits until the port refuses connections; safe to call twice. */
  stop(): Promise<void>;
  /** Starts it again on the same port, stopping it first if it runs; it comes back empty (nothing is persisted). */
  restart(): Promise<void>;
}

/**
 * Starts `redis-server` in the foreground on 127.0.0.1:port with `dir` as its working directory,
 * nothing saved unless `extraArgs` say so (e.g. `--appendonly yes`, cluster flags), and waits until
 * PING answers PONG (a LOADING reply is not PONG: this waits until an append-only file is replayed).
 * stop() kills it with SIGKILL, like a crash.
 */
export function startRedisProcess(port: number, dir: string, extraArgs: string[] = []): Promise<ServerProcess> {
  return startServerProcess({
    name: 'redis-server',
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, ...extraArgs],
    install: REDIS_INSTALL,
    port,
    ready: () => pingRedis(port),
  });
}

/** Whether a PING on 127.0.0.1:port answers PONG. */
export function pingRedis(port: number): Promise<boolean> {
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
 * Starts a standalone redis-server on `port` (by default a free one the OS picks, so that test runs
 * side by side never meet). It writes nothing to disk (no RDB, no AOF), so its working directory is
 * the system temp dir and there is nothing to clean up after stop().
 */
export function startRedisServer(port?: number): Promise<RedisServer> {
  return port === undefined ? onFreePort(startRedisServerOn) : startRedisServerOn(port);
}

async function startRedisServerOn(port: number): Promise<RedisServer> {
  let server: ServerProcess | undefined;
  const stop = async () => {
    const current = server;
    server = undefined;
    await current?.stop();
  };
  server = await startRedisProcess(port, tmpdir());
  return {
    port,
    stop,
    restart: async () => {
      await stop();
      server = await startRedisProcess(port, tmpdir());
    },
  };
}

/** How many sessions a RedisStore user index at `key` holds, whichever type it was written as (a sorted set now, a set before). */
export async function indexSize(redis: Pick<Redis, 'type' | 'zcard' | 'scard'>, key: string): Promise<number> {
  const type = await redis.type(key);
  return type === 'zset' ? redis.zcard(key) : type === 'set' ? redis.scard(key) : 0;
}
