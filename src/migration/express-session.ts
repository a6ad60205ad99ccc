/**
 * `nest-sessions/express-session`: for an app that comes from express-session (or nestjs-session).
 * `expressSessionReader()` moves its users' sessions in as their cookies come back;
 * `fromExpressSessionStore()` uses any express-session store as a session store.
 *
 * @module nest-sessions/express-session
 */
import { SessionConfigError } from '../session/session.errors.js';
import { withoutUnsetOlder } from '../session/secret-list.js';
import { ConnectPgSimpleRecords, type ExpressSessionPgPool } from './connect-pg-simple.records.js';
import { ConnectRedisRecords, type ExpressSessionRedisClient } from './connect-redis.records.js';
import { ExpressSessionCookie } from './express-session-cookie.js';
import type { FoundRecord, FoundSession, SessionMigrationSource } from './session-migration.source.js';

export type { ExpressSessionPgPool } from './connect-pg-simple.records.js';
export type { ExpressSessionRedisClient } from './connect-redis.records.js';
export type { SessionMigrationSource, FoundRecord, FoundSession } from './session-migration.source.js';
export { fromExpressSessionStore } from './express-session-store.js';
export type { ExpressSessionCompatibleStore, ExpressSessionStoreOptions } from './express-session-store.js';

/** Where express-session kept its sessions and how it signed its cookie: the same values the old app used. */
export interface ExpressSessionReaderOptions {
  /**
   * express-session's `secret`: a string, or a list of which any may have signed a cookie.
   * `process.env.X` is accepted as it is typed; an unset variable fails at startup.
   */
  secret: string | readonly (string | undefined)[] | undefined;
  /** express-session's `name`. Default `'connect.sid'`. */
  name?: string;
  /** connect-redis: an ioredis `Redis` or `Cluster` client connected to its Redis (never closed by the reader). */
  redis?: ExpressSessionRedisClient;
  /** connect-redis's `prefix`. Default `'sess:'`. */
  prefix?: string;
  /** connect-pg-simple: a `pg` `Pool` connected to its database (never ended by the reader). */
  pool?: ExpressSessionPgPool;
  /** connect-pg-simple's table: `tableName`, or `schemaName.tableName`. Default `'session'`. */
  table?: string;
  /** express-session's `cookie.path` and `cookie.domain`, for clearing the old cookie. Defaults `'/'` and none. */
  cookie?: {
    /** The old cookie's `Path`. Default `'/'`. */
    path?: string;
    /** The old cookie's `Domain`. Default: none. */
    domain?: string;
  };
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/;

interface Records {
  find(id: string): Promise<FoundRecord | undefined>;
  claim(id: string, found: FoundSession, newId: string, lifetime: number): Promise<true | FoundRecord | undefined>;
}

/**
 * Reads express-session's sessions (also those of nestjs-session, which runs express-session) stored
 * by connect-redis or connect-pg-simple, for `SessionModule.forRoot({ migrateFrom })`: each moves
 * into this library's default session the first time its cookie comes back, once.
 *
 * ```ts
 * SessionModule.forRoot({
 *   secret: process.env.SESSION_SECRET,
 *   store: new RedisStore({ client: redis }),
 *   migrateFrom: expressSessionReader({ secret: process.env.OLD_SESSION_SECRET, redis }),
 * });
 * ```
 *
 * express-session's in-process `MemoryStore` cannot be read: its sessions end with the old process.
 */
export function expressSessionReader(options: ExpressSessionReaderOptions): SessionMigrationSource {
  if (options === null || typeof options !== 'object') {
    throw new SessionConfigError('expressSessionReader() takes { secret, redis } (connect-redis) or { secret, pool } (connect-pg-simple)');
  }
  const secrets = secretsOf(options.secret);
  const name = options.name ?? 'connect.sid';
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
    throw new SessionConfigError(`expressSessionReader: name ${JSON.stringify(name)} is not a valid cookie name`);
  }
  const path = options.cookie?.path ?? '/';
  const domain = options.cookie?.domain;
  if (typeof path !== 'string' || !path.startsWith('/') || (domain !== undefined && typeof domain !== 'string')) {
    throw new SessionConfigError("expressSessionReader: cookie.path must be a path starting with '/' and cookie.domain a string, as in express-session's cookie option");
  }
  let records: Records;
  let description: string;
  if (options.redis !== undefined && options.pool !== undefined) {
    throw new SessionConfigError('expressSessionReader: give redis (connect-redis) or pool (connect-pg-simple), not both');
  }
  if (options.redis !== undefined) {
    const client = options.redis as Partial<ExpressSessionRedisClient> | null;
    if (client === null || typeof client !== 'object' || typeof client.eval !== 'function') {
      throw new SessionConfigError('expressSessionReader: redis must be an ioredis Redis or Cluster client');
    }
    // node-redis (createClient()) has an eval() of another shape: it would fail at every read.
    if (typeof (client as { status?: unknown }).status !== 'string' && typeof (client as { isOpen?: unknown }).isOpen === 'boolean') {
      throw new SessionConfigError(
        "expressSessionReader: redis is a node-redis client (the 'redis' package's createClient()); the reader needs an ioredis client: create one on the same Redis for it (new Redis(process.env.REDIS_URL)), whatever client connect-redis used",
      );
    }
    if (options.table !== undefined) throw new SessionConfigError('expressSessionReader: table is for connect-pg-simple (pool), not redis');
    const prefix = options.prefix ?? 'sess:';
    if (typeof prefix !== 'string') throw new SessionConfigError("expressSessionReader: prefix must be a string (connect-redis's prefix, 'sess:' by default)");
    records = new ConnectRedisRecords(options.redis, prefix);
    description = 'express-session (connect-redis)';
  } else if (options.pool !== undefined) {
    const pool = options.pool as Partial<ExpressSessionPgPool> | null;
    if (pool === null || typeof pool !== 'object' || typeof pool.query !== 'function') {
      throw new SessionConfigError('expressSessionReader: pool must be a pg Pool');
    }
    if (options.prefix !== undefined) throw new SessionConfigError('expressSessionReader: prefix is for connect-redis (redis), not pool');
    const table = options.table ?? 'session';
    if (typeof table !== 'string' || !TABLE.test(table)) {
      throw new SessionConfigError(`expressSessionReader: table ${JSON.stringify(table)} must be a table name, or schema.table (letters, digits, _ and $)`);
    }
    records = new ConnectPgSimpleRecords(options.pool, table);
    description = 'express-session (connect-pg-simple)';
  } else {
    throw new SessionConfigError(
      "expressSessionReader: give redis (an ioredis client, for connect-redis) or pool (a pg Pool, for connect-pg-simple); express-session's MemoryStore keeps its sessions in the old process, where nothing can read them",
    );
  }
  const cookie = new ExpressSessionCookie(name, secrets, path, domain);
  return {
    cookieName: name,
    clearCookie: cookie.clearCookie,
    description,
    verify: (value) => cookie.verify(value),
    find: (id) => records.find(id),
    claim: (id, found, newId, lifetime) => records.claim(id, found, newId, lifetime),
  };
}

function secretsOf(value: unknown): string[] {
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? withoutUnsetOlder(value as unknown[]) : undefined;
  if (list === undefined || list.length === 0) {
    throw new SessionConfigError("expressSessionReader: secret must be express-session's secret, a string or a non-empty list of strings (is the environment variable set?)");
  }
  return list.map((entry, index) => {
    if (typeof entry !== 'string' || entry === '') {
      throw new SessionConfigError(`expressSessionReader: secret${Array.isArray(value) ? `[${index}]` : ''} must be a non-empty string (is the environment variable set?)`);
    }
    return entry;
  });
}
