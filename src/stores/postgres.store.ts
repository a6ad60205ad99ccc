import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';
import { SessionConfigError, SessionStoreError } from '../session.errors.js';
import type { SessionMeta, SessionPatch, SessionRecord, SessionStore } from '../session-store.interface.js';

export interface PostgresStoreOptions {
  /** A `pg` Pool you own: the store never ends it. */
  pool: Pool;
  /** Default `'sessions'`. Letters, digits and `_`, starting with a letter or `_`, at most 48 characters. */
  tableName?: string;
  /** Default: the first schema of the connection's `search_path` (usually `public`). Same rules as `tableName`, at most 63 characters. */
  schemaName?: string;
  /** Create the table and its index if missing, on first use. Default `true`. */
  createTable?: boolean;
  /** How often expired rows are deleted, in ms. Default 15 minutes; `0` disables the sweep (call `reclaim()` yourself). */
  sweepInterval?: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_SWEEP = 15 * 60 * 1000;
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
 *   meta jsonb NOT NULL,
 *   expires_at bigint NOT NULL  -- epoch ms
 * );
 * CREATE INDEX IF NOT EXISTS "sessions_expires_at_idx" ON "sessions" (expires_at);
 * ```
 *
 * Each value is kept as its exact JSON text inside the `data` object, so it comes back byte for
 * byte (jsonb would otherwise reorder object keys and round large numbers). `patch` is one UPDATE,
 * so concurrent patches to different keys all survive. Expiry is compared with the application's
 * clock, the same clock that computed it.
 */
export class PostgresStore implements SessionStore {
  private readonly pool: Pool;
  private readonly table: string;
  private readonly indexName: string;
  private readonly tableLabel: string;
  private readonly createTable: boolean;
  private readonly logger = new Logger('PostgresStore');
  private ready: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(options: PostgresStoreOptions) {
    if (options === null || typeof options !== 'object') {
      throw new SessionConfigError('PostgresStore: pass an options object with `pool` (a pg Pool).');
    }
    const { pool, tableName = 'sessions', schemaName, createTable = true, sweepInterval = DEFAULT_SWEEP } = options;
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
    this.pool = pool;
    this.table = (schemaName === undefined ? '' : `"${schemaName}".`) + `"${tableName}"`;
    this.tableLabel = schemaName === undefined ? tableName : `${schemaName}.${tableName}`;
    this.indexName = `"${tableName}_expires_at_idx"`;
    this.createTable = createTable;
    if (sweepInterval > 0) {
      this.timer = setInterval(() => void this.sweep(), sweepInterval);
      this.timer.unref(); // a sweep timer must never keep the process alive
    }
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const { rows } = await this.query<{ data: Record<string, unknown>; meta: SessionMeta; expires_at: string }>(
      'get',
      `SELECT data, meta, expires_at FROM ${this.table} WHERE id = $1 AND expires_at > $2`,
      [id, Date.now()],
    );
    const row = rows[0];
    if (!row) return undefined;
    // pg parses jsonb; a value stored as anything but a string (edited by hand) is turned back into JSON text.
    const data = Object.fromEntries(
      Object.entries(row.data).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]),
    );
    return { data, meta: row.meta, expiresAt: Number(row.expires_at) };
  }

  async set(id: string, record: SessionRecord): Promise<void> {
    await this.query(
      'set',
      `INSERT INTO ${this.table} (id, data, meta, expires_at) VALUES ($1, $2::jsonb, $3::jsonb, $4)
       ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, meta = EXCLUDED.meta, expires_at = EXCLUDED.expires_at`,
      [id, JSON.stringify(record.data), JSON.stringify(record.meta), Math.floor(record.expiresAt)],
    );
  }

  async patch(id: string, patch: SessionPatch): Promise<void> {
    // One statement: the row lock orders concurrent patches and each applies to the latest data.
    await this.query(
      'patch',
      `UPDATE ${this.table} SET data = (data - $2::text[]) || $3::jsonb, meta = $4::jsonb, expires_at = $5
       WHERE id = $1 AND expires_at > $6`,
      [id, patch.unset, JSON.stringify(patch.set), JSON.stringify(patch.meta), Math.floor(patch.expiresAt), Date.now()],
    );
  }

  async touch(id: string, expiresAt: number): Promise<void> {
    await this.query('touch', `UPDATE ${this.table} SET expires_at = $2 WHERE id = $1 AND expires_at > $3`, [
      id,
      Math.floor(expiresAt),
      Date.now(),
    ]);
  }

  async destroy(id: string): Promise<void> {
    await this.query('destroy', `DELETE FROM ${this.table} WHERE id = $1`, [id]);
  }

  /** Deletes every expired row now. */
  async reclaim(): Promise<void> {
    await this.query('reclaim', `DELETE FROM ${this.table} WHERE expires_at <= $1`, [Date.now()]);
  }

  /** Stops the sweep timer; the pool is yours to end. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
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

  private async create(): Promise<void> {
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
           expires_at bigint NOT NULL
         )`,
      );
      await client.query(`CREATE INDEX IF NOT EXISTS ${this.indexName} ON ${this.table} (expires_at)`);
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

function checkIdentifier(option: string, value: unknown, maxLength: number): void {
  if (typeof value !== 'string' || !IDENTIFIER.test(value) || value.length > maxLength) {
    throw new SessionConfigError(
      `PostgresStore: \`${option}\` must be 1 to ${maxLength} letters, digits or underscores, starting with a letter or underscore (got ${JSON.stringify(value)}).`,
    );
  }
}
