import type { FoundRecord } from './session-migration.source.js';

/** The key of the marker that replaces a migrated record, naming the new session's id. */
const MIGRATED_TO = 'nest-sessions:migratedTo';

/**
 * What a stored express-session session's JSON text holds: its data (everything but `cookie`) and
 * the expiry in `cookie.expires`, or else `storeExpiresAt`, when the store itself ends the record
 * (a browser-session cookie's record lives the store's `ttl`); or a marker left by a migration.
 * Undefined for anything else (not JSON, not an object, an expiry that is not a date) and for a
 * session that has expired.
 */
export function parseExpressSession(text: string, now: number, storeExpiresAt?: number): FoundRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  const migratedTo = record[MIGRATED_TO];
  if (Object.hasOwn(record, MIGRATED_TO)) return typeof migratedTo === 'string' && migratedTo !== '' ? { migratedTo } : undefined;
  const cookie = record.cookie;
  let expiresAt: number | undefined;
  if (cookie !== undefined && cookie !== null) {
    if (typeof cookie !== 'object') return undefined;
    const expires = (cookie as { expires?: unknown }).expires;
    if (typeof expires === 'string' || typeof expires === 'number') {
      expiresAt = new Date(expires).getTime();
      if (!Number.isFinite(expiresAt)) return undefined;
      if (expiresAt <= now) return undefined;
    } else if (expires !== undefined && expires !== null && expires !== false) {
      return undefined;
    }
  }
  const data: Record<string, unknown> = {};
  for (const key of Object.keys(record)) {
    if (key === 'cookie') continue;
    Object.defineProperty(data, key, { value: record[key], enumerable: true, writable: true, configurable: true });
  }
  const persistent = expiresAt !== undefined;
  if (expiresAt === undefined && storeExpiresAt !== undefined) {
    if (storeExpiresAt <= now) return undefined;
    expiresAt = storeExpiresAt;
  }
  return { data, expiresAt, persistent, version: text };
}

/**
 * The marker's JSON text. It is itself a valid express-session session with no data (and a
 * `cookie` that ends with the marker), so an instance of the old app still running during a rolling
 * deploy reads it as an empty session instead of failing on it.
 */
export function migrationMarker(newId: string, lifetime: number, now: number): string {
  return JSON.stringify({
    cookie: { originalMaxAge: lifetime, expires: new Date(now + lifetime).toISOString(), httpOnly: true, path: '/' },
    [MIGRATED_TO]: newId,
  });
}
