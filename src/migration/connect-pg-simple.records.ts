import { migrationMarker, parseExpressSession } from './express-session-record.js';
import type { FoundRecord, FoundSession } from './session-migration.source.js';

/** What the reader needs of a `pg` `Pool`. */
export interface ExpressSessionPgPool {
  /** Runs one parameterised statement (`$1`, `$2`...), as `pg`'s `Pool.query(text, values)` does. */
  query(
    text: string,
    values?: unknown[],
  ): Promise<{
    /** The rows the statement returned. */
    rows: unknown[];
    /** How many rows the statement read or changed. */
    rowCount: number | null;
  }>;
}

/**
 * connect-pg-simple's records: a row (`sid`, `sess` json, `expire` timestamp) of its table. Claimed
 * with one `UPDATE … WHERE sess::text = <the text read>`: PostgreSQL re-checks the condition on the
 * row as a concurrent claim left it, so exactly one claim matches.
 */
export class ConnectPgSimpleRecords {
  private readonly select: string;
  private readonly update: string;

  /** `table`: a checked identifier, quoted here. */
  constructor(
    private readonly pool: ExpressSessionPgPool,
    table: string,
  ) {
    const quoted = table
      .split('.')
      .map((part) => `"${part}"`)
      .join('.');
    // Times as connect-pg-simple writes and compares them: to_timestamp of the app's clock, in seconds.
    this.select = `SELECT sess::text AS sess, (extract(epoch from expire) * 1000)::float8 AS expire FROM ${quoted} WHERE sid = $1 AND expire >= to_timestamp($2)`;
    this.update = `UPDATE ${quoted} SET sess = $3, expire = to_timestamp($4) WHERE sid = $1 AND sess::text = $2 AND expire >= to_timestamp($5) RETURNING sid`;
  }

  async find(id: string): Promise<FoundRecord | undefined> {
    const now = Date.now();
    const result = await this.pool.query(this.select, [id, now / 1000]);
    const row = result.rows[0] as { sess?: unknown; expire?: unknown } | undefined;
    if (typeof row?.sess !== 'string') return undefined;
    // The row's own end: the session's, also for a browser-session cookie, whose `sess` names none.
    const expire = typeof row.expire === 'number' && Number.isFinite(row.expire) ? row.expire : undefined;
    return parseExpressSession(row.sess, now, expire);
  }

  async claim(id: string, found: FoundSession, newId: string, lifetime: number): Promise<true | FoundRecord | undefined> {
    const now = Date.now();
    const result = await this.pool.query(this.update, [id, found.version, migrationMarker(newId, lifetime, now), (now + lifetime) / 1000, now / 1000]);
    if ((result.rowCount ?? 0) > 0) return true;
    return this.find(id);
  }
}
