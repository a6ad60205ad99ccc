/**
 * `nest-sessions/postgres`: `PostgresStore`, sessions in a PostgreSQL table through a `pg` `Pool` (an
 * optional peer dependency: the entry point loads without it).
 *
 * @module nest-sessions/postgres
 */
import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';
import { SessionConfigError, SessionStoreError } from '../session/session.errors.js';
import { decodeStoreKey, encodeStoreKey, isUserTie, type SessionMeta, type SessionPatch, type SessionRecord, type SessionStore, type SessionUser, type UserSessionEntry } from './session-store.interface.js';

/** The options of `new PostgresStore({ pool })`. */
export interface PostgresStoreOptions {
  /** A `pg` Pool you own: the store never ends it. */
  pool: Pool;
  /** Default `'sessions'`. Letters, digits and `_`, starting with a letter or `_`, at most 48 characters. */
  tableName?: string;
  /** Default: the first schema of the connection's `search_path` (usually `public`). Same rules as `tableName`, at most 63 characters. */
  schemaName?: string;
  /** Create the table and its indexes if missing (and add the `user_id` column to a table made before it), on first use. Default `true`. */
  createTable?: boolean;
  /** How often expired rows are deleted, in ms. Default 15 minutes; `0` disables the sweep (call `reclaim()` yourself). */
  sweepInterval?: number;
  /**
   * Expired rows deleted per statement by the sweep and `reclaim()`. Default 1000. Each batch is its
   * own short transaction that skips rows another transaction holds, so requests never wait on the
   * sweep for long and several instances sweeping at once each delete batches of their own.
   */
  sweepBatchSize?: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_SWEEP = 15 * 60 * 1000;
const DEFAULT_SWEEP_BATCH = 1000;
const MAX_SWEEP_BATCH = 100_000;
const MAX_TIMER = 2 ** 31 - 1;
// First half of the advisory lock key that serialises table creation across processes.
const LOCK_NAMESPACE = 0x6e657373;

/**
 * Sessions in PostgreSQL, one row per session. The table (created for you unless `createTable` is
 * false) is:
 *
 * ```sql
 * CREATE TABLE IF NOT EXISTS "sessions" (
 *   id text PRIMARY KEY,
 *   data jsonb NOT NULL,        -- { key: JSON text of its value }
 *   meta jsonb NOT NULL,        -- { createdAt, maxAge?, session?, flash?: { key: JSON text of its list } }
 *   expires_at bigint NOT NULL, -- epoch ms
 *   user_id text                -- the user the session is tied to (session.setUser()), encoded
 * );
 * CREATE INDEX IF NOT EXISTS "sessions_expires_at_idx" ON "sessions" (expires_at);
 * CREATE INDEX IF NOT EXISTS "sessions_user_id_idx" ON "sessions" (user_id) WHERE user_id IS NOT NULL;
 * ```
 *
 * Each value and each flash list is kept as its exact JSON text inside the `data` and `meta.flash`
 * objects, so it comes back byte for byte (jsonb would otherwise reorder object keys, round large
 * numbers and refuse NUL characters and lone surrogates). Keys, ids and the session name that jsonb
 * or text could not hold are encoded (`encodeStoreKey`). `patch` is one UPDATE that changes only
 * the data keys, flash keys and `maxAge` it names, so concurrent patches all survive. Expiry is
 * compared with the application's clock, the same clock that computed it.
 */
export class PostgresStore implements SessionStore {
  private readonly pool: Pool;
  private readonly table: string;
  private readonly indexName: string;
  private readonly userIndexName: string;
  private readonly tableLabel: string;
  private readonly createTable: boolean;
  private readonly sweepBatchSize: number;
  private readonly logger = new Logger('PostgresStore');
  private ready: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    if (options === null || typeof options !== 'object') {
      throw new SessionConfigError('PostgresStore: pass an options object with `pool` (a pg Pool).');
    }
    const { pool, tableName = 'sessions', schemaName, createTable = true, sweepInterval = DEFAULT_SWEEP, sweepBatchSize = DEFAULT_SWEEP_BATCH } = options;
    if (pool === null || typeof pool !== 'object' || typeof (pool as Partial<Pool>).query !== 'function' || typeof (pool as Partial<Pool>).connect !== 'function') {
      throw new SessionConfigError('PostgresStore: `pool` is required and must be a pg Pool (new Pool({ connectionString })).');
    }
    checkIdentifier('tableName', tableName, 48);
    if (schemaName !== undefined) checkIdentifier('schemaName', schemaName, 63);
    if (typeof createTable !== 'boolean') {
      throw new SessionConfigError('PostgresStore: `createTable` must be true or false.');
    }
    if (typeof sweepInterval !== 'number' || !Number.isFinite(sweepInterval) || sweepInterval < 0 || sweepInterval > MAX_TIMER) {
      throw new SessionConfigError(`PostgresStore: \`sweepInterval\` must be a number of ms between 0 (no sweep) and ${MAX_TIMER}.`);
    }
    if (typeof sweepBatchSize !== 'number' || !Number.isInteger(sweepBatchSize) || sweepBatchSize < 1 || sweepBatchSize > MAX_SWEEP_BATCH) {
      throw new SessionConfigError(`PostgresStore: \`sweepBatchSize\` must be a whole number of rows from 1 to ${MAX_SWEEP_BATCH}.`);
    }
    this.pool = pool;
    this.sweepBatchSize = sweepBatchSize;
    this.table = (schemaName === undefined ? '' : `"${schemaName}".`) + `"${tableName}"`;
    this.tableLabel = schemaName === undefined ? tableName : `${schemaName}.${tableName}`;
    this.indexName = `"${tableName}_expires_at_idx"`;
    this.userIndexName = `"${tableName}_user_id_idx"`;
    this.createTable = createTable;
    if (sweepInterval > 0) {
      this.timer = setInterval(() => void this.sweep(), sweepInterval);
      this.timer.unref(); // a sweep timer must never keep the process alive
    }
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const { rows } = await this.query<{ data: unknown; meta: unknown; expires_at: string }>(
      'get',
      `SELECT data, meta, expires_at FROM ${this.table} WHERE id = $1 AND expires_at > $2`,
      [encodeStoreKey(id), Date.now()],
    );
    const row = rows[0];
    return row ? readRecord(row.data, row.meta, Number(row.expires_at)) : undefined;
  }

  async set(id: string, record: SessionRecord): Promise<void> {
    const { meta } = record;
    const fields: [string, string][] = [['createdAt', JSON.stringify(meta.createdAt)]];
    if (meta.maxAge !== undefined) fields.push(['maxAge', JSON.stringify(meta.maxAge)]);
    if (meta.session !== undefined) fields.push(['session', JSON.stringify(encodeStoreKey(meta.session))]);
    if (meta.flash !== undefined) fields.push(['flash', flashText(meta.flash)]);
    if (meta.user !== undefined) fields.push(['user', tieText(meta.user)]);
    await this.query(
      'set',
      `INSERT INTO ${this.table} (id, data, meta, expires_at, user_id) VALUES ($1, $2::jsonb, $3::jsonb, $4, $5)
       ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, meta = EXCLUDED.meta, expires_at = EXCLUDED.expires_at, user_id = EXCLUDED.user_id`,
      [encodeStoreKey(id), dataText(record.data), jsonObject(fields), Math.floor(record.expiresAt), meta.user === undefined ? null : encodeStoreKey(meta.user.id)],
    );
  }

  async patch(id: string, patch: SessionPatch): Promise<void> {
    const { maxAge, flash, user } = patch;
    const metaSet: [string, string][] = [];
    if (typeof maxAge === 'number') metaSet.push(['maxAge', JSON.stringify(maxAge)]);
    if (user) metaSet.push(['user', tieText(user)]);
    const metaUnset: string[] = [];
    if (maxAge === null) metaUnset.push('maxAge');
    if (user === null) metaUnset.push('user');
    // One statement: the row lock orders concurrent patches and each applies to the latest row, so
    // only the data keys, flash keys and maxAge named here change.
    await this.query(
      'patch',
      `UPDATE ${this.table} SET
         data = (data - $2::text[]) || $3::jsonb,
         meta = jsonb_set((meta - $4::text[]) || $5::jsonb, '{flash}', (COALESCE(meta->'flash', '{}'::jsonb) - $6::text[]) || $7::jsonb),
         expires_at = $8,
         user_id = CASE WHEN $10::boolean THEN $11 ELSE user_id END
       WHERE id = $1 AND expires_at > $9`,
      [
        encodeStoreKey(id),
        patch.unset.map(encodeStoreKey),
        dataText(patch.set),
        metaUnset,
        jsonObject(metaSet),
        flash.unset.map(encodeStoreKey),
        flashText(flash.set),
        Math.floor(patch.expiresAt),
        Date.now(),
        user !== undefined,
        user ? encodeStoreKey(user.id) : null,
      ],
    );
  }

  async touch(id: string, expiresAt: number): Promise<void> {
    await this.query('touch', `UPDATE ${this.table} SET expires_at = $2 WHERE id = $1 AND expires_at > $3`, [
      encodeStoreKey(id),
      Math.floor(expiresAt),
      Date.now(),
    ]);
  }

  async destroy(id: string): Promise<void> {
    await this.query('destroy', `DELETE FROM ${this.table} WHERE id = $1`, [encodeStoreKey(id)]);
  }

  /** The live sessions tied to `userId`, through the index on `user_id`. */
  async listByUser(userId: string): Promise<UserSessionEntry[]> {
    const { rows } = await this.query<{ id: string; meta: unknown; expires_at: string }>(
      'listByUser',
      `SELECT id, meta, expires_at FROM ${this.table} WHERE user_id = $1 AND expires_at > $2`,
      [encodeStoreKey(userId), Date.now()],
    );
    const found: UserSessionEntry[] = [];
    for (const row of rows) {
      const record = readRecord({}, row.meta, Number(row.expires_at));
      if (record?.meta.user?.id === userId) found.push({ id: decodeStoreKey(row.id), meta: record.meta, expiresAt: record.expiresAt });
    }
    return found;
  }

  /**
   * Deletes the rows expired now, `sweepBatchSize` at a time in order of expiry, each batch its own
   * statement; resolves when a batch comes back short. Rows another transaction holds are skipped
   * (left for the next sweep), so a request never waits behind a batch, nor one sweeping instance
   * behind another.
   */
  async reclaim(): Promise<void> {
    // One started while the store is open stops when it closes; one called after close() runs to the end.
    const closedAtStart = this.closed;
    await this.deleteExpired(() => closedAtStart || !this.closed);
  }

  /** A `SELECT 1` round trip to PostgreSQL (for health checks); rejects while no connection answers. */
  async ping(): Promise<void> {
    try {
      await this.pool.query('SELECT 1');
    } catch (err) {
      throw new SessionStoreError(`PostgresStore: ping failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
  }

  /** Stops the sweep timer (a sweep under way ends after its current batch); the pool is yours to end. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.closed = true;
  }

  private async deleteExpired(keepGoing: () => boolean): Promise<void> {
    const now = Date.now();
    let after = Number.MIN_SAFE_INTEGER;
    while (keepGoing()) {
      // Each batch starts where the last one ended, so it does not walk again over the index entries
      // of rows already deleted (dead until vacuumed).
      const { rows } = await this.query<{ deleted: string; last: string | null }>(
        'reclaim',
        `WITH batch AS (
           DELETE FROM ${this.table} WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM ${this.table} WHERE expires_at >= $1 AND expires_at <= $2
             ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED
           )) AND expires_at <= $2
           RETURNING expires_at
         )
         SELECT count(*) AS deleted, max(expires_at) AS last FROM batch`,
        [after, now, this.sweepBatchSize],
      );
      const deleted = Number(rows[0]?.deleted ?? 0);
      if (deleted < this.sweepBatchSize || rows[0]?.last == null) return;
      after = Number(rows[0].last);
    }
  }

  private async sweep(): Promise<void> {
    if (this.sweeping) return; // a slow sweep is not stacked with the next one
    this.sweeping = true;
    try {
      await this.reclaim();
    } catch (err) {
      this.logger.error(`Deleting expired sessions failed; will retry at the next sweep: ${(err as Error).message}`);
    } finally {
      this.sweeping = false;
    }
  }

  private async query<R extends object>(operation: string, text: string, values: unknown[]): Promise<{ rows: R[] }> {
    try {
      if (this.createTable) await this.ensureTable();
      return await this.pool.query<R & Record<string, unknown>>(text, values);
    } catch (err) {
      if (err instanceof SessionStoreError) throw err;
      if ((err as { code?: string })?.code === '42703' && /user_id/.test((err as Error).message)) {
        throw new SessionStoreError(
          `PostgresStore: table "${this.tableLabel}" has no user_id column (it was created by an earlier version). Add it: ALTER TABLE ${this.table} ADD COLUMN user_id text; CREATE INDEX ${this.userIndexName} ON ${this.table} (user_id) WHERE user_id IS NOT NULL; or set createTable: true, which adds them.`,
          { cause: err },
        );
      }
      if ((err as { code?: string })?.code === '42P01') {
        throw new SessionStoreError(
          `PostgresStore: table "${this.tableLabel}" does not exist. Create it with the SQL in the PostgresStore documentation, or set createTable: true.`,
          { cause: err },
        );
      }
      throw new SessionStoreError(`PostgresStore: ${operation} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
  }

  /** Creates the table and index once; a failure is not remembered, so the next call tries again. */
  private ensureTable(): Promise<void> {
    this.ready ??= this.create().catch((err: unknown) => {
      this.ready = undefined;
      throw new SessionStoreError(
        `PostgresStore: could not create table "${this.tableLabel}": ${(err as Error)?.message ?? String(err)}. Check the database is up and the user may create tables, or create it yourself and set createTable: false.`,
        { cause: err },
      );
    });
    return this.ready;
  }

  /**
   * Whether the table, its user_id column and both indexes are there already: then nothing is
   * created and no lock is taken (ALTER TABLE … IF NOT EXISTS takes an ACCESS EXCLUSIVE lock before it
   * looks, and CREATE INDEX IF NOT EXISTS a SHARE lock: each would queue every session query of every
   * instance behind any long reader at each process start).
   */
  private async complete(): Promise<boolean> {
    const { rows } = await this.pool.query<{ complete: boolean }>(
      `SELECT count(*) = 3 AS complete FROM (
         SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'user_id' AND NOT attisdropped
         UNION ALL
         SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = to_regclass($1) AND c.relname IN ($2, $3)
       ) AS found`,
      [this.table, this.indexName.slice(1, -1), this.userIndexName.slice(1, -1)],
    );
    return rows[0]?.complete === true;
  }

  private async create(): Promise<void> {
    if (await this.complete()) return;
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      // Two processes creating the same table at once can collide in the catalog: take turns.
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, this.table]);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.table} (
           id text PRIMARY KEY,
           data jsonb NOT NULL,
           meta jsonb NOT NULL,
           expires_at bigint NOT NULL,
           user_id text
         )`,
      );
      await client.query(`CREATE INDEX IF NOT EXISTS ${this.indexName} ON ${this.table} (expires_at)`);
      // A table made by a version without user ties gains the column and its index here.
      await client.query(`ALTER TABLE ${this.table} ADD COLUMN IF NOT EXISTS user_id text`);
      await client.query(`CREATE INDEX IF NOT EXISTS ${this.userIndexName} ON ${this.table} (user_id) WHERE user_id IS NOT NULL`);
      await client.query('COMMIT');
    } catch (err) {
      // A connection that cannot even roll back is discarded rather than returned to the pool.
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/** JSON text of an object from [key, JSON text of its value] pairs (written as text, so a key named __proto__ stays plain data). */
function jsonObject(entries: readonly (readonly [string, string])[]): string {
  return `{${entries.map(([key, json]) => `${JSON.stringify(key)}:${json}`).join(',')}}`;
}

/** The `data` column: keys encoded, each value its JSON text as a string. */
function dataText(data: Record<string, string>): string {
  return jsonObject(Object.keys(data).map((key) => [encodeStoreKey(key), JSON.stringify(data[key])]));
}

/** `meta.flash`: keys encoded, each list its JSON text as a string (jsonb cannot hold every string a list may carry). */
function flashText(flash: Record<string, unknown[]>): string {
  return jsonObject(Object.keys(flash).map((key) => [encodeStoreKey(key), JSON.stringify(JSON.stringify(flash[key]))]));
}

/** The session in a row this store wrote; undefined when any part is not what the store writes there. */
function readRecord(rawData: unknown, rawMeta: unknown, expiresAt: number): SessionRecord | undefined {
  if (!isObject(rawData) || !isObject(rawMeta) || !Number.isFinite(expiresAt)) return undefined;
  const data: Record<string, string> = {};
  for (const key of Object.keys(rawData)) {
    const text = rawData[key];
    if (typeof text !== 'string') return undefined;
    define(data, decodeStoreKey(key), text);
  }
  const { createdAt, maxAge, session, flash: rawFlash, user } = rawMeta;
  if (typeof createdAt !== 'number') return undefined;
  const meta: SessionMeta = { createdAt };
  if (maxAge !== undefined) {
    if (typeof maxAge !== 'number') return undefined;
    meta.maxAge = maxAge;
  }
  if (session !== undefined) {
    if (typeof session !== 'string') return undefined;
    meta.session = decodeStoreKey(session);
  }
  if (rawFlash !== undefined) {
    if (!isObject(rawFlash)) return undefined;
    const flash: Record<string, unknown[]> = {};
    for (const key of Object.keys(rawFlash)) {
      const list = flashList(rawFlash[key]);
      if (list === undefined) return undefined;
      define(flash, decodeStoreKey(key), list);
    }
    if (Object.keys(flash).length > 0) meta.flash = flash;
  }
  if (user !== undefined) {
    const tie = typeof user === 'string' ? parseJson(user) : undefined;
    if (!isUserTie(tie)) return undefined;
    meta.user = tie;
  }
  return { data, meta, expiresAt };
}

/** `meta.user`: the tie's JSON text, as a string (jsonb cannot hold every string a user id or user agent may carry). */
function tieText(user: SessionUser): string {
  return JSON.stringify(JSON.stringify(user));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A flash list as stored: its JSON text, or (rows written before lists were kept as text) the list itself. */
function flashList(stored: unknown): unknown[] | undefined {
  if (Array.isArray(stored)) return stored;
  if (typeof stored !== 'string') return undefined;
  try {
    const list: unknown = JSON.parse(stored);
    return Array.isArray(list) ? list : undefined;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function define<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function checkIdentifier(option: string, value: unknown, maxLength: number): void {
  if (typeof value !== 'string' || !IDENTIFIER.test(value) || value.length > maxLength) {
    throw new SessionConfigError(
      `PostgresStore: \`${option}\` must be 1 to ${maxLength} letters, digits or underscores, starting with a letter or underscore (got ${JSON.stringify(value)}).`,
    );
  }
}
