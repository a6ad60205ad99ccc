import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertPortFree, kill, spawnRedis, waitForPort, waitForPortClosed } from './redis-server.js';

/**
 * A throw-away redis-server that keeps its data across a crash: an append-only file fsynced on
 * every write (`--appendonly yes --appendfsync always`) in a temp dir of its own.
 */
export interface DurableRedisServer {
  readonly port: number;
  /** SIGKILL (a crash, no shutdown save) and waits until the port refuses connections; safe to call twice. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory; it reloads its append-only file before answering PING. */
  start(): Promise<void>;
  /** Kills it if it runs and deletes its directory; safe to call twice. */
  dispose(): Promise<void>;
}

export async function startDurableRedisServer(port: number): Promise<DurableRedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nest-sessions-redis-'));
  let child: ChildProcess | undefined;
  let disposed = false;

  const start = async () => {
    await assertPortFree(port);
    child = spawnRedis(port, dir, ['--appendonly', 'yes', '--appendfsync', 'always']);
    try {
      await waitForPort(port); // a LOADING reply is not PONG: this waits until the AOF is replayed
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
  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    try {
      await halt();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  try {
    await start();
  } catch (err) {
    await dispose().catch(() => undefined);
    throw new Error(`this test runs its own redis-server: it needs redis-server on PATH and port ${port} free (${(err as Error).message})`, { cause: err });
  }
  return { port, kill: halt, start, dispose };
}
