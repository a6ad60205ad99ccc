import { DEFAULT_SESSION } from '../session/session.constants.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { SessionState, type SessionHost } from '../session/session.js';
import { isUserTie, type ClientSessionStore, type SessionRecord } from '../stores/session-store.interface.js';
import type { IssueSet } from '../schema/session-schema.js';
import type { RequestSessions } from './request-sessions.js';
import type { SessionEngine } from './session-engine.js';
import type { SessionReader } from './session-source.js';
import { isThenable } from './thenable.js';

/**
 * The one read of a session, whoever asks (an HTTP request, a socket's message, a subscription):
 * the cookie is opened (unsealed, or its signature verified) here alone, and a session is adopted
 * only when its store knows it, its record has the expected shape, its schema accepts it and its
 * user's version (`userVersion`) still matches.
 */

/** A session cookie's value, opened: the session a cookie-stored one carries, or the verified id of a stored one. */
export type OpenedCookie =
  | { readonly sealed: { id: string; record: SessionRecord }; readonly id?: undefined }
  | { readonly sealed?: undefined; readonly id: string; readonly currentKey: boolean; readonly value: string };

/** Opens the cookie value `value` of session `def`; undefined when it is forged, tampered with, or sealed with no known key. */
export function openCookie(def: SessionDefinition, value: string): OpenedCookie | undefined {
  if (def.clientSide) {
    const sealed = (def.store as ClientSessionStore).open(value);
    return sealed === undefined ? undefined : { sealed };
  }
  const signed = def.signer.unsign(value);
  return signed === undefined ? undefined : { id: signed[0], currentKey: signed[1], value };
}

/** The session a request's cookie points to, or a fresh one; never adopts an id the store does not know. */
export function readSession(engine: SessionEngine, def: SessionDefinition, request: SessionReader): SessionState | Promise<SessionState> {
  const value = request.incomingCookie(def);
  if (value === undefined) {
    // Only a request without a cookie of ours looks for the cookie of the library the app comes from.
    // Over HTTP only: the migrated session's cookie needs a response (a subscription's socket has none).
    const migration = engine.migration;
    if (migration !== undefined && def === migration.definition && canMigrate(request)) {
      const old = request.cookie(migration.source.cookieName);
      if (old !== undefined) return migration.migrate(request, old);
    }
    return new SessionState(def, request);
  }
  // The cookie it came in tells a cookie-stored session's size.
  return readOpened(engine, def, request, openCookie(def, value), value.length);
}

/**
 * The session `opened` leads to, held by `host`: a cookie-stored one as its cookie carried it (of
 * `cookieLength` characters, when known), a stored one as its store has it now; a fresh one when
 * there is none.
 */
export function readOpened(engine: SessionEngine, def: SessionDefinition, host: SessionHost, opened: OpenedCookie | undefined, cookieLength?: number): SessionState | Promise<SessionState> {
  if (opened === undefined) return new SessionState(def, host);
  if (opened.sealed === undefined) return readStored(engine, def, host, opened.id, opened.currentKey, opened.value);
  const { id, record: found } = opened.sealed;
  const record = checked(found, def);
  engine.telemetry?.loaded(def, record !== undefined);
  if (record === undefined) return new SessionState(def, host);
  const open = (): SessionState => {
    const session = new SessionState(def, host, id, record);
    // A few bytes of margin for a longer expiry.
    if (cookieLength !== undefined) session.sizeHeadroom = def.cookieLimit - (def.cookieName.length + 1 + cookieLength) - 16;
    return session;
  };
  // userVersion: a user signed out everywhere is signed out of this cookie at its next read.
  return checkedVersion(engine, def, host, matching(def, host, record, open));
}

/**
 * The session stored under `id`, whose cookie `cookieValue` was verified (`currentKey`: with the
 * current secret), held by `host`; a fresh one when the store does not know it.
 */
export function readStored(engine: SessionEngine, def: SessionDefinition, host: SessionHost, id: string, currentKey: boolean, cookieValue: string): SessionState | Promise<SessionState> {
  const found = engine.call(def, 'read a session', (store) => store.get(id));
  if (isThenable(found)) {
    return Promise.resolve(found).then((record) => {
      engine.telemetry?.loaded(def, checked(record, def) !== undefined);
      return checkedVersion(engine, def, host, adopt(def, host, id, currentKey, cookieValue, record));
    });
  }
  engine.telemetry?.loaded(def, checked(found, def) !== undefined);
  return checkedVersion(engine, def, host, adopt(def, host, id, currentKey, cookieValue, found));
}

/** The session, checked against its user's version when `userVersion` is set. */
function checkedVersion(engine: SessionEngine, def: SessionDefinition, host: SessionHost, session: SessionState | Promise<SessionState>): SessionState | Promise<SessionState> {
  if (def.userVersion === undefined) return session;
  return session instanceof Promise ? session.then((loaded) => checkVersion(engine, def, host, loaded)) : checkVersion(engine, def, host, session);
}

/**
 * `userVersion`: a tied session whose recorded version is not the user's version now was ended
 * by the app (sign out everywhere): it reads as no session, and a server-side one is destroyed.
 */
function checkVersion(engine: SessionEngine, def: SessionDefinition, host: SessionHost, session: SessionState): SessionState | Promise<SessionState> {
  const tie = session.meta.user;
  if (tie === undefined || !session.stored) return session;
  const current = engine.call(def, "read the user's version (userVersion)", () => def.userVersion!(tie.id));
  const decide = (version: string | number | undefined): SessionState | Promise<SessionState> => {
    if (version !== undefined && version !== null && String(version) === tie.version) return session;
    const fresh = () => new SessionState(def, host);
    const destroyed = engine.destroy(def, session.id);
    return destroyed === undefined ? fresh() : destroyed.then(fresh);
  };
  return isThenable(current) ? Promise.resolve(current).then(decide) : decide(current);
}

/** A reader whose response can carry a new cookie: an HTTP request's sessions. */
function canMigrate(reader: SessionReader): reader is RequestSessions {
  return typeof (reader as Partial<RequestSessions>).cookie === 'function';
}

/**
 * The session for a stored record, or a fresh one when the record is missing, expired or not one of
 * this session kind. `currentKey` false: the client is sent a new cookie on the next save.
 */
export function adopt(
  def: SessionDefinition,
  request: SessionHost,
  id: string,
  currentKey: boolean,
  cookieValue: string,
  found: SessionRecord | undefined,
): SessionState | Promise<SessionState> {
  const record = checked(found, def);
  if (record === undefined) return new SessionState(def, request);
  const open = (): SessionState => {
    const session = new SessionState(def, request, id, record);
    if (currentKey) session.cookieValue = cookieValue;
    else session.signedWithOldKey = true;
    return session;
  };
  return matching(def, request, record, open);
}

/** The session `open` makes when the record's data matches the schema (if any), else a fresh one (as for a bad cookie). */
function matching(def: SessionDefinition, request: SessionHost, record: SessionRecord, open: () => SessionState): SessionState | Promise<SessionState> {
  const schema = def.schema;
  if (schema === undefined) return open();
  const made = (verdict: IssueSet | false | undefined): SessionState => {
    if (verdict === false) return new SessionState(def, request);
    const session = open();
    session.schemaIssues = verdict;
    return session;
  };
  const verdict = schema.acceptStored(record.data);
  return verdict instanceof Promise ? verdict.then(made) : made(verdict);
}

/**
 * A stored record of this session kind in the expected shape and not expired, else undefined:
 * garbage, and a record of another named session, read as no session.
 */
export function checked(record: unknown, def: SessionDefinition): SessionRecord | undefined {
  if (record === null || typeof record !== 'object') return undefined;
  const { data, meta, expiresAt } = record as Partial<SessionRecord>;
  if (typeof expiresAt !== 'number' || !(expiresAt > Date.now())) return undefined;
  if (data === null || typeof data !== 'object' || meta === null || typeof meta !== 'object') return undefined;
  if (typeof meta.createdAt !== 'number') return undefined;
  if ((meta.session ?? DEFAULT_SESSION) !== def.name) return undefined;
  if (meta.maxAge !== undefined && !(typeof meta.maxAge === 'number' && meta.maxAge > 0)) return undefined;
  if (meta.flash !== undefined) {
    if (meta.flash === null || typeof meta.flash !== 'object') return undefined;
    for (const key of Object.keys(meta.flash)) if (!Array.isArray(meta.flash[key])) return undefined;
  }
  if (meta.user !== undefined && !isUserTie(meta.user)) return undefined;
  return record as SessionRecord;
}
