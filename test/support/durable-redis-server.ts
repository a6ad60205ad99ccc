import { startRedisProcess } from './redis-server.js';
import { PortInUseError, makeTempDir, onFreePort, type ServerProcess } from './server-process.js';

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

/** Starts one on `port`, or by default on a free port the OS picks. */
export async function startDurableRedisServer(port?: number): Promise<DurableRedisServer> {
  if (port === undefined) return onFreePort((free) => startDurableRedisServer(free));
  const dir = makeTempDir('nest-sessions-redis-');
  let server: ServerProcess | undefined;
  let disposed = false;

  const start = async () => {
    server = await startRedisProcess(port, dir.path, ['--appendonly', 'yes', '--appendfsync', 'always']);
  };
  const kill = async () => {
    const current = server;
    server = undefined;
    await current?.stop();
  };
  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    try {
      await kill();
    } finally {
      dir.remove();
    }
  };

  try {
    await start();
  } catch (err) {
    await dispose().catch(() => undefined);
    if (err instanceof PortInUseError) throw err; // the caller may try another port
    throw new Error(`this test runs its own redis-server on port ${port}: ${(err as Error).message}`, { cause: err });
  }
  return { port, kill, start, dispose };
}
