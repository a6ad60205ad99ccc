import { isUserTie, type SessionMeta, type SessionRecord } from '../stores/session-store.interface.js';

/** The field of an express-session session that holds a record of ours, as JSON text. */
const FIELD = 'nestSessions';
/** The version of that text's shape, so that a later shape can still read this one. */
const VERSION = 1;
/** Ids made of these characters (the engine's: base64url) reach the store as they are. */
const PLAIN_ID = /^[A-Za-z0-9_-]+$/;

/** What the adapter hands an express-session store's `set()`: a session in express-session's shape. */
export interface StoredSession {
  /**
   * The cookie as express-session serialises it: stores compute their TTL from `expires`
   * (connect-redis, connect-pg-simple, connect-mongo) or from `maxAge` (memorystore).
   */
  cookie: { originalMaxAge: number; maxAge: number; expires: Date; httpOnly: true; path: '/' };
  /** The record as one JSON string: no store sees its keys, so none can refuse or rewrite them. */
  nestSessions: string;
}

/**
 * The id the store is given for a session id. The engine's ids go as they are; any other id
 * (hostile, or one a custom generator made) becomes `~` and the base64url of its JSON text, which is
 * pure ASCII without `/` or `.`: no store can turn it into a path, and no text encoding can merge
 * two ids into one (a lone surrogate becomes U+FFFD in UTF-8, not in JSON's escapes).
 */
export function storeIdOf(id: string): string {
  return PLAIN_ID.test(id) ? id : `~${Buffer.from(JSON.stringify(id), 'utf8').toString('base64url')}`;
}

/** The session to write for `record`, whose store TTL ends at `record.expiresAt` (which must be after `now`). */
export function storedSession(id: string, record: SessionRecord, now: number): StoredSession {
  // At least 1 ms: memorystore reads a maxAge of 0 as "never expires".
  const lifetime = Math.max(1, Math.ceil(record.expiresAt - now));
  return {
    cookie: { originalMaxAge: lifetime, maxAge: lifetime, expires: new Date(record.expiresAt), httpOnly: true, path: '/' },
    [FIELD]: JSON.stringify({ v: VERSION, id, data: record.data, meta: record.meta, expiresAt: record.expiresAt }),
  };
}

/**
 * The id and record in what a store's `get()` or `all()` gave back; undefined for anything that is
 * not a live record this adapter wrote (nothing, an express-session session of another app, text
 * that is not JSON, a field of the wrong type, an expired record).
 */
export function readStoredSession(value: unknown, now: number): { id: string; record: SessionRecord } | undefined {
  if (!isObject(value)) return undefined;
  const text = value[FIELD];
  if (typeof text !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || parsed.v !== VERSION) return undefined;
  const { id, data, expiresAt } = parsed;
  if (typeof id !== 'string' || typeof expiresAt !== 'number' || !(expiresAt > now)) return undefined;
  if (!isObject(data) || !Object.values(data).every((item) => typeof item === 'string')) return undefined;
  const meta = metaOf(parsed.meta);
  if (meta === undefined) return undefined;
  return { id, record: { data: data as Record<string, string>, meta, expiresAt } };
}

/** The meta in a parsed record, with only the fields the engine writes, each of its type; undefined if one is not. */
function metaOf(value: unknown): SessionMeta | undefined {
  if (!isObject(value)) return undefined;
  const { createdAt, maxAge, flash, session, user } = value;
  if (typeof createdAt !== 'number' || !Number.isFinite(createdAt)) return undefined;
  const meta: SessionMeta = { createdAt };
  if (maxAge !== undefined) {
    if (typeof maxAge !== 'number' || !(maxAge > 0)) return undefined;
    meta.maxAge = maxAge;
  }
  if (flash !== undefined) {
    if (!isObject(flash) || !Object.values(flash).every((list) => Array.isArray(list))) return undefined;
    meta.flash = flash as Record<string, unknown[]>;
  }
  if (session !== undefined) {
    if (typeof session !== 'string') return undefined;
    meta.session = session;
  }
  if (user !== undefined) {
    if (!isUserTie(user)) return undefined;
    meta.user = user;
  }
  return meta;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
