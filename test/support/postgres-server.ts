import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { MissingBinaryError, findBinary, makeTempDir, runCommand, startServerProcess, type ServerProcess } from './server-process.js';

/**
 * A throw-away PostgreSQL instance of its own (initdb in a temp dir), listening on 127.0.0.1 only,
 * with trust authentication for the `postgres` role. Durable across an abrupt stop: committed rows
 * survive `stop()` (SIGQUIT, PostgreSQL's immediate shutdown, then crash recovery at the next `start()`).
 */
export interface PostgresServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly connectionString: string;
  /** Stops it abruptly (immediate shutdown: no checkpoint, like a crash) and waits until the port refuses connections. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops it if it runs and deletes its directory; safe to call twice. */
  dispose(): Promise<void>;
}

export const POSTGRES_INSTALL =
  'the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), ' +
  'or set PG_BIN to the directory holding its initdb and postgres';

/** The directory holding initdb and postgres: $PG_BIN, else the newest /usr/lib/postgresql/<version>/bin, else the one on PATH. */
export function postgresBinDir(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length > 0) return join(root, versions[0], 'bin');
  const initdb = findBinary('initdb');
  if (initdb !== undefined) return join(initdb, '..');
  throw new MissingBinaryError(`PostgreSQL's initdb and postgres were not found (in $PG_BIN, /usr/lib/postgresql/<version>/bin or on PATH): install ${POSTGRES_INSTALL}`);
}

interface RunAs {
  uid?: number;
  gid?: number;
  wrap?: (file: string, args: string[]) => [string, string[]];
}

function osUser(name: string): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith(`${name}:`));
    if (line === undefined) return undefined;
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

let runAs: RunAs | undefined;

/**
 * PostgreSQL refuses to run as root. Not root: run it as we are. Root on the host with a `postgres`
 * OS user (Debian's packages create one): switch to it. Root inside a user namespace (`unshare -r`,
 * where no other uid can be switched to), or without that user: run it in a user namespace of its
 * own in which our uid shows as the `postgres` (or `nobody`) uid, so it is not root in its own eyes.
 */
function postgresRunAs(): RunAs {
  if (runAs !== undefined) return runAs;
  if (process.getuid?.() !== 0) return (runAs = {});
  const postgres = osUser('postgres');
  const hostRoot = /^\s*0\s+0\s+4294967295\s*$/.test(readFileSync('/proc/self/uid_map', 'utf8'));
  if (hostRoot && postgres !== undefined) return (runAs = postgres);
  const unshare = findBinary('unshare');
  const as = postgres ?? osUser('nobody') ?? { uid: 65534, gid: 65534 };
  const prefix = ['--user', `--map-user=${as.uid}`, `--map-group=${as.gid}`, '--'];
  try {
    if (unshare === undefined) throw new Error('unshare (util-linux) is not installed');
    execFileSync(unshare, [...prefix, 'true'], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(
      'PostgreSQL refuses to run as root, and this root process can neither switch to a `postgres` OS user nor create a user namespace ' +
        `(${(err as Error).message.trim()}): run the tests as another user, or set DATABASE_URL to a database they may use`,
      { cause: err },
    );
  }
  return (runAs = { wrap: (file, args) => [unshare, [...prefix, file, ...args]] });
}

/** Whether PostgreSQL on 127.0.0.1:port accepts a session for `postgres` (not only the TCP connection: not while it starts or recovers). */
export function postgresAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const params = Buffer.from('user\0postgres\0database\0postgres\0\0');
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4); // protocol 3.0
    params.copy(startup, 8);
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      if (ok) socket.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
      else socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write(startup));
    socket.once('data', (chunk) => done(chunk[0] === 0x52)); // 'R' (authentication); 'E' while starting up
  });
}

export interface PostgresServerOptions {
  /** Extra server settings (`-c name=value`), e.g. `fsync: 'off'` for a cluster thrown away after the run. */
  settings?: Record<string, string>;
}

/** initdb in a fresh temp dir, then starts the server on `port`. */
export async function startPostgresServer(port: number, options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  for (const name of ['initdb', 'postgres']) {
    if (findBinary(join(bin, name)) === undefined) throw new MissingBinaryError(`${join(bin, name)} is missing: install ${POSTGRES_INSTALL}`);
  }
  const as = postgresRunAs();
  const dir = makeTempDir('nest-sessions-pg-');
  const data = join(dir.path, 'data');
  const settings = { listen_addresses: '127.0.0.1', max_connections: '200', ...options.settings };
  let server: ServerProcess | undefined;
  let disposed = false;

  const start = async () => {
    server = await startServerProcess({
      name: 'PostgreSQL',
      command: join(bin, 'postgres'),
      // -k: the Unix socket goes in our own dir, not /var/run/postgresql.
      args: ['-D', data, '-p', String(port), '-k', dir.path, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])],
      install: POSTGRES_INSTALL,
      port,
      ready: () => postgresAccepts(port),
      stopSignal: 'SIGQUIT', // immediate shutdown
      ...as,
    });
  };
  const stop = async () => {
    const current = server;
    server = undefined;
    await current?.stop();
  };
  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    try {
      await stop();
    } finally {
      dir.remove();
    }
  };

  try {
    if (as.uid !== undefined) chownSync(dir.path, as.uid, as.gid!);
    const initdb = [join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-locale', '--no-sync']] as const;
    const [file, args] = as.wrap ? as.wrap(initdb[0], [...initdb[1]]) : [initdb[0], [...initdb[1]]];
    await runCommand(file, args, { uid: as.uid, gid: as.gid });
    await start();
  } catch (err) {
    await dispose().catch(() => undefined);
    throw err;
  }
  return { port, connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, stop, start, dispose };
}
