import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A throw-away PostgreSQL instance of its own (initdb in a temp dir), listening on 127.0.0.1 only,
 * with trust authentication for the `postgres` role. Durable across an abrupt stop: committed rows
 * survive `stop()` (`pg_ctl stop -m immediate`, then crash recovery at the next `start()`).
 */
export interface PostgresServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly connectionString: string;
  /** Stops it abruptly (`pg_ctl stop -m immediate`: no checkpoint, like a crash) and waits until the port refuses connections. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops it if it runs and deletes its directory; safe to call twice. */
  dispose(): Promise<void>;
}

const NEEDS =
  'this test runs its own PostgreSQL: it needs the PostgreSQL server binaries (initdb, pg_ctl; found in $PG_BIN or /usr/lib/postgresql/<version>/bin), ' +
  'run either as a non-root user or as root with a `postgres` OS user and `runuser` (PostgreSQL refuses to run as root)';

/** The directory holding initdb and pg_ctl: $PG_BIN, else the newest /usr/lib/postgresql/<version>/bin. */
export function postgresBinDir(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(`${NEEDS}; none found`);
  return join(root, versions[0], 'bin');
}

/** Runs a PostgreSQL binary, as the `postgres` OS user when this process is root. */
async function pg(bin: string, args: string[], asPostgres: boolean): Promise<void> {
  const [file, argv] = asPostgres ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  await run(file, argv, { timeout: 60_000 });
}

function isOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
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
}

async function waitClosed(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await isOpen(port))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`127.0.0.1:${port} still accepts connections ${timeoutMs} ms after stopping PostgreSQL`);
}

function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '(no server log)';
  }
}

/** initdb in a fresh temp dir, then starts the server on `port`. */
export async function startPostgresServer(port: number): Promise<PostgresServer> {
  if (await isOpen(port)) throw new Error(`port ${port} is already in use; stop whatever listens there (a leftover postgres?) and run again`);
  const bin = postgresBinDir();
  const asPostgres = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'nest-sessions-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  let running = false;
  let disposed = false;

  const start = async () => {
    try {
      // -k: the Unix socket goes in our own dir; listen_addresses: loopback TCP only.
      await pg(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '30', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start'], asPostgres);
    } catch (err) {
      throw new Error(`PostgreSQL did not start on 127.0.0.1:${port} (${(err as Error).message.trim()}); server log:\n${logTail(log)}`, { cause: err });
    }
    running = true;
  };
  const stop = async () => {
    if (!running) return;
    await pg(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'], asPostgres);
    running = false;
    await waitClosed(port);
  };
  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    try {
      await stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  try {
    if (asPostgres) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
      chownSync(dir, uid, gid);
    }
    await pg(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale', '--no-sync'], asPostgres);
    await start();
  } catch (err) {
    await dispose().catch(() => undefined);
    throw new Error(`${NEEDS}, and port ${port} free: ${(err as Error).message}`, { cause: err });
  }
  return { port, connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, stop, start, dispose };
}
