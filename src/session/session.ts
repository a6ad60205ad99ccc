import { inspect } from 'node:util';
import { FlashBox, type FlashHolder } from './flash.js';
import { CSRF_SECRET_KEY, DEFAULT_SESSION, INTERNAL_KEY_PREFIX, isInternalKey, MAX_LIFETIME } from './session.constants.js';
import { reported, SessionValidationError } from './session.errors.js';
import type { Session, SetUserOptions } from './session.interface.js';
import type { SessionDefinition } from './session-definition.js';
import { generateSessionId } from './session-id.js';
import { putData, type SessionMeta, type SessionPatch, type SessionRecord, type SessionUser } from '../stores/session-store.interface.js';
import { putValue, type IssueSet } from '../schema/session-schema.js';

/** What a session asks of the request that holds it, for the operations that cannot wait. */
export interface SessionHost {
  /** Removes the stored session `id` once any save of it still running has finished. */
  destroyStored(session: SessionState, id: string, replaced?: boolean): Promise<void>;
  saveNow(session: SessionState): Promise<void>;
  checkSize(session: SessionState, growth?: number): void;
  /**
   * Throws when this host cannot carry the change about to be made (a socket cannot change a
   * cookie); absent where every change can be saved (an HTTP request).
   */
  refuseChange?(session: SessionState, change: 'change' | 'regenerate' | 'sign-in'): void;
}

/** A write the engine has started: what it will make the stored state once the store confirms it. */
export interface PendingWrite {
  readonly generation: number;
  readonly expiresAt: number;
  /** The data and flash/maxAge changes written (undefined for a touch). */
  readonly changes: SessionPatch | undefined;
  /** The whole data written (a new session), when known. */
  readonly data: Record<string, string> | undefined;
  /** The meta as it was when the write was planned. */
  readonly meta: SessionMeta;
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});
const hasOwn = Object.hasOwn;

/**
 * One session of one request. Values are parsed from the store's JSON text on first read and
 * compared as JSON text at save time, so a value changed in place is saved too and a value only
 * read is not written. The stored state (`raw`, `storedMeta`) changes only when the store has
 * confirmed a write.
 */
export class SessionState implements Session<any>, FlashHolder {
  /** The stored JSON text of each key as the store last confirmed it. Never mutated. */
  #raw: Readonly<Record<string, string>>;
  /** Values read or set during this request. */
  #values: Map<string, unknown> | undefined;
  /** Stored keys deleted during this request. */
  #removed: Set<string> | undefined;
  /** The meta as the store last confirmed it; replaced, never mutated. */
  #storedMeta: SessionMeta;
  /** The meta as it is now; replaced (copy on write), never mutated. */
  #metaValue: SessionMeta;
  #flashBox: FlashBox | undefined;
  #sessionId: string | undefined;
  /** Moves on at `regenerate()` and `destroy()`: a write planned before can no longer confirm. */
  #generation = 0;

  /** The session exists in its store under `sessionId`. */
  stored: boolean;
  /** Stored expiry (epoch ms); 0 for a session not stored yet. */
  storedExpiresAt: number;
  /** Store writes of this session still running. */
  writing = 0;
  /** The last write queued for this session object, settled (never rejects); undefined when none is running (see `session-writer.ts`). */
  lastWrite: Promise<void> | undefined = undefined;
  /** A save queued that has not started yet: a save asked for meanwhile joins it. */
  waitingSave: Promise<void> | undefined = undefined;
  touchRequested = false;
  /** `destroy()` ran: the cookie must be cleared unless the session gets new content. */
  destroyed = false;
  /** The verified cookie value the request came with, when it can be sent back as it is. */
  #cookieValue: string | undefined;
  /** The cookie was signed with an old key: send one signed with the current key on the next write. */
  signedWithOldKey = false;
  /** Written whole to the store during this request (a migrated session): no touch is due before the next request. */
  storedThisRequest = false;
  /** Cookie-stored sessions: bytes known to be left under the cookie limit at the last exact check. */
  sizeHeadroom: number | undefined;
  /** `setUser()` tied the session while `userVersion` is configured: the user's version is read before the save. */
  versionDue = false;
  /** With a schema: the issues the data has as last checked (a change may not add one); undefined: not known yet. */
  schemaIssues: IssueSet | undefined;

  // The state is in private (#) fields, so that what enumerates an object's own properties (spread,
  // Object.keys, Object.entries, structuredClone, a logger's serializer) never reaches the data, its
  // internal keys (the CSRF secret), the id, the cookie or the definition.
  readonly #definition: SessionDefinition;
  readonly #host: SessionHost;

  constructor(definition: SessionDefinition, host: SessionHost, id?: string, record?: SessionRecord) {
    this.#definition = definition;
    this.#host = host;
    this.#sessionId = id;
    this.stored = record !== undefined;
    this.#raw = record?.data ?? EMPTY;
    this.#metaValue = this.#storedMeta = record?.meta ?? freshMeta(definition);
    this.storedExpiresAt = record?.expiresAt ?? 0;
  }

  /**
   * What `console.log(session)` and `util.inspect()` show: whether it is new and the data the
   * Session API shows; never the id, the cookie, internal keys (the CSRF secret) or the definition
   * (whose signer remembers other clients' cookie values).
   */
  [inspect.custom](): unknown {
    return { isNew: this.isNew, data: this.toJSON() };
  }

  get definition(): SessionDefinition {
    return this.#definition;
  }

  get cookieValue(): string | undefined {
    return this.#cookieValue;
  }

  set cookieValue(value: string | undefined) {
    this.#cookieValue = value;
  }

  get id(): string {
    return (this.#sessionId ??= generateSessionId());
  }

  get isNew(): boolean {
    return !this.stored;
  }

  get expiresAt(): Date {
    return new Date(this.stored && this.#metaValue.maxAge === this.#storedMeta.maxAge ? this.storedExpiresAt : this.nextExpiry(Date.now()));
  }

  get meta(): Readonly<SessionMeta> {
    return this.#metaValue;
  }

  get user(): string | undefined {
    return this.#metaValue.user?.id;
  }

  setUser(user: string | number | undefined, options?: SetUserOptions): void {
    if (user === undefined) {
      if (this.#metaValue.user === undefined) return;
      this.#host.refuseChange?.(this, 'change');
      const { user: _old, ...rest } = this.#metaValue;
      this.#metaValue = rest;
      this.versionDue = false;
      return;
    }
    const id = userIdOf(user);
    // The version the app read when it checked the credentials: only `userVersion` compares it, and
    // without it the value is ignored unread (a NULL column, NaN), as documented.
    const version = this.#definition.userVersion === undefined || options?.version === undefined ? undefined : versionOf(options.version);
    const tie = this.#metaValue.user;
    if (tie?.id === id && (version === undefined || tie.version === version)) return;
    this.#host.refuseChange?.(this, tie?.id === id ? 'change' : 'sign-in');
    const previous = this.#metaValue;
    this.#metaValue = { ...previous, user: version === undefined ? { id } : { id, version } };
    if (this.#definition.clientSide) {
      try {
        this.#host.checkSize(this, Buffer.byteLength(JSON.stringify(id)) + 48 + (version === undefined ? 0 : Buffer.byteLength(JSON.stringify(version)) + 12));
      } catch (error) {
        this.#metaValue = previous;
        throw error;
      }
    }
    // Without a version given, the user's version is read just before the save.
    this.versionDue = version === undefined && this.#definition.userVersion !== undefined;
  }

  /** Replaces the tie with what this request saw of the user's device (same user). */
  refreshUser(user: SessionUser): void {
    this.#metaValue = { ...this.#metaValue, user };
  }

  get flash(): FlashBox {
    return (this.#flashBox ??= new FlashBox(this));
  }

  get(key: string): any {
    return isInternalKey(key) ? undefined : this.read(key);
  }

  /** A value under one of the library's own keys (see `INTERNAL_KEY_PREFIX`), hidden from `get()`. */
  getInternal(key: string): unknown {
    return this.read(key);
  }

  private read(key: string): any {
    const values = this.#values;
    if (values !== undefined && values.has(key)) return values.get(key);
    if (!hasOwn(this.#raw, key) || this.#removed?.has(key) === true) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(this.#raw[key]);
    } catch {
      return undefined; // a value the store mangled reads as absent
    }
    // Only objects can change in place: they are kept so that the save compares them.
    if (value !== null && typeof value === 'object') (this.#values ??= new Map()).set(key, value);
    return value;
  }

  set(key: string, value: unknown): void {
    refuseInternal(key, 'set');
    this.#host.refuseChange?.(this, 'change');
    if (value === undefined) return this.delete(key);
    this.write(key, value);
  }

  /** Sets one of the library's own keys (see `INTERNAL_KEY_PREFIX`); `undefined` deletes it. */
  setInternal(key: string, value: unknown): void {
    if (value === undefined) this.remove(key);
    else this.write(key, value);
  }

  private write(key: string, value: unknown): void {
    const text = jsonOf(value, `session.set('${key}')`, key);
    const schema = this.#definition.schema;
    // Checked as it will read back (parsed from its JSON), before anything changes.
    const issues =
      schema === undefined || isInternalKey(key)
        ? undefined
        : schema.checkChange(key, this.userData(key, text), () => this.currentIssues(), `session.set('${key}')`);
    const values = (this.#values ??= new Map());
    const had = values.has(key);
    const previous = values.get(key);
    const wasRemoved = this.#removed?.delete(key) === true;
    values.set(key, value);
    if (this.#definition.clientSide) {
      try {
        // At most what the key and value add to the sealed text: exact checks only near the limit.
        this.#host.checkSize(this, Buffer.byteLength(JSON.stringify(key)) + Buffer.byteLength(JSON.stringify(text)) + 2);
      } catch (error) {
        // A value that does not fit leaves the session as it was.
        if (had) values.set(key, previous);
        else values.delete(key);
        if (wasRemoved) this.#removed!.add(key);
        throw error;
      }
    }
    if (schema !== undefined && !isInternalKey(key)) this.schemaIssues = issues;
  }

  has(key: string): boolean {
    if (isInternalKey(key)) return false;
    if (this.#values?.has(key) === true) return true;
    return hasOwn(this.#raw, key) && this.#removed?.has(key) !== true;
  }

  delete(key: string): void {
    refuseInternal(key, 'delete');
    this.#host.refuseChange?.(this, 'change');
    const schema = this.#definition.schema;
    if (schema !== undefined && this.has(key)) {
      this.schemaIssues = schema.checkChange(key, this.userData(key), () => this.currentIssues(), `session.delete('${key}')`);
    }
    this.remove(key);
  }

  private remove(key: string): void {
    this.#values?.delete(key);
    if (hasOwn(this.#raw, key)) (this.#removed ??= new Set()).add(key);
  }

  /** Deletes every key of the user's; the library's own keys stay. */
  clear(): void {
    this.#host.refuseChange?.(this, 'change');
    this.schemaIssues = undefined;
    if (this.#values !== undefined) {
      for (const key of this.#values.keys()) if (!isInternalKey(key)) this.#values.delete(key);
    }
    for (const key of Object.keys(this.#raw)) if (!isInternalKey(key)) (this.#removed ??= new Set()).add(key);
  }

  toJSON(): Record<string, any> {
    const result = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(this.#raw)) {
      const value = this.get(key);
      if (value !== undefined) result[key] = value;
    }
    if (this.#values !== undefined) for (const [key, value] of this.#values) if (!isInternalKey(key)) result[key] = value;
    return result;
  }

  setMaxAge(ms: number | undefined): void {
    if (ms !== undefined && (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > MAX_LIFETIME)) {
      throw reported(new SessionValidationError(
        `session.setMaxAge(): expected a whole number of milliseconds from 1 to ${MAX_LIFETIME} (400 days, the longest a browser keeps a cookie), or undefined; got ${String(ms)}`,
        'maxAge',
      ));
    }
    if (ms === this.#metaValue.maxAge) return;
    this.#host.refuseChange?.(this, 'change');
    const previous = this.#metaValue;
    const { maxAge: _old, ...rest } = previous;
    this.#metaValue = ms === undefined ? rest : { ...rest, maxAge: ms };
    if (!this.#definition.clientSide) return;
    try {
      this.#host.checkSize(this, 24);
    } catch (error) {
      this.#metaValue = previous;
      throw error;
    }
  }

  touch(): void {
    this.touchRequested = true;
  }

  regenerate(): Promise<void> {
    return unhandledIsFine(this.regenerateNow());
  }

  destroy(): Promise<void> {
    return unhandledIsFine(this.destroyNow());
  }

  private async regenerateNow(): Promise<void> {
    this.#host.refuseChange?.(this, 'regenerate');
    // The old id is destroyed first: if the store fails, the session stays as it was.
    const id = this.#sessionId;
    if ((this.stored || this.writing > 0) && id !== undefined) await this.#host.destroyStored(this, id, true);
    this.#generation++;
    this.#sessionId = generateSessionId();
    // A new CSRF secret for the new id, made when a token is next asked for: tokens given before the sign-in stop working.
    this.remove(CSRF_SECRET_KEY);
    this.stored = false;
    this.#cookieValue = undefined;
    // Everything is written anew under the new id.
    this.#metaValue = { ...this.#metaValue, createdAt: Date.now() };
    this.#storedMeta = freshMeta(this.#definition);
  }

  private async destroyNow(): Promise<void> {
    const id = this.#sessionId;
    if ((this.stored || this.writing > 0) && id !== undefined) await this.#host.destroyStored(this, id);
    this.#generation++;
    this.#sessionId = undefined;
    this.stored = false;
    this.#cookieValue = undefined;
    this.#raw = EMPTY;
    this.#values = undefined;
    this.#removed = undefined;
    this.#metaValue = this.#storedMeta = freshMeta(this.#definition);
    this.schemaIssues = undefined;
    this.destroyed = true;
    this.versionDue = false;
  }

  save(): Promise<void> {
    return unhandledIsFine(this.#host.saveNow(this));
  }

  // FlashHolder
  storedFlash(): Readonly<Record<string, readonly unknown[]>> | undefined {
    return this.#metaValue.flash;
  }

  replaceFlash(flash: Record<string, unknown[]> | undefined, growth: number): void {
    this.#host.refuseChange?.(this, 'change');
    const previous = this.#metaValue;
    const { flash: _old, ...rest } = previous;
    this.#metaValue = flash === undefined ? rest : { ...rest, flash };
    if (growth <= 0 || !this.#definition.clientSide) return;
    try {
      this.#host.checkSize(this, growth);
    } catch (error) {
      this.#metaValue = previous;
      throw error;
    }
  }

  /** Something to store: data or flash messages. */
  hasContent(): boolean {
    if (this.#metaValue.flash !== undefined || this.#metaValue.user !== undefined) return true;
    if (this.#values !== undefined && this.#values.size > 0) return true;
    for (const key in this.#raw) if (hasOwn(this.#raw, key) && this.#removed?.has(key) !== true) return true;
    return false;
  }

  /**
   * What changed since the store last confirmed a write, as a patch (its `expiresAt` left at 0), or
   * undefined when nothing did. Throws `SessionValidationError` for a value changed in place into
   * something JSON cannot represent.
   */
  changes(): SessionPatch | undefined {
    let set: Record<string, string> | undefined;
    if (this.#values !== undefined) {
      for (const [key, value] of this.#values) {
        const text = jsonOf(value, `session key '${key}'`, key);
        if (!hasOwn(this.#raw, key) || this.#raw[key] !== text || this.#removed?.has(key) === true) {
          putData((set ??= {}), key, text);
        }
      }
    }
    let unset: string[] | undefined;
    if (this.#removed !== undefined) for (const key of this.#removed) (unset ??= []).push(key);
    const meta = this.#metaValue;
    const old = this.#storedMeta;
    let flashSet: Record<string, unknown[]> | undefined;
    let flashUnset: string[] | undefined;
    if (meta.flash !== old.flash) {
      // Lists are replaced, never changed in place: a key whose list is the same object is unchanged.
      if (meta.flash !== undefined) {
        for (const key of Object.keys(meta.flash)) {
          if (old.flash === undefined || !hasOwn(old.flash, key) || old.flash[key] !== meta.flash[key]) {
            (flashSet ??= Object.create(null) as Record<string, unknown[]>)[key] = meta.flash[key];
          }
        }
      }
      if (old.flash !== undefined) {
        for (const key of Object.keys(old.flash)) if (meta.flash === undefined || !hasOwn(meta.flash, key)) (flashUnset ??= []).push(key);
      }
    }
    const maxAgeChanged = meta.maxAge !== old.maxAge;
    // The tie is replaced, never changed in place: a different object is a change.
    const userChanged = meta.user !== old.user;
    if (set === undefined && unset === undefined && flashSet === undefined && flashUnset === undefined && !maxAgeChanged && !userChanged) return undefined;
    const patch: SessionPatch = {
      set: set ?? {},
      unset: unset ?? [],
      flash: { set: flashSet ?? {}, unset: flashUnset ?? [] },
      expiresAt: 0,
    };
    if (maxAgeChanged) patch.maxAge = meta.maxAge ?? null;
    if (userChanged) patch.user = meta.user ?? null;
    return patch;
  }

  /**
   * The user's data as the schema sees it (values parsed, the library's own keys left out), with `key` set to
   * the value of JSON `text`, or removed when `text` is undefined; undefined when it is empty.
   */
  private userData(key?: string, text?: string): Record<string, unknown> | undefined {
    let data: Record<string, unknown> | undefined;
    const values = this.#values;
    for (const name of Object.keys(this.#raw)) {
      if (name === key || isInternalKey(name) || values?.has(name) === true || this.#removed?.has(name) === true) continue;
      let value: unknown;
      try {
        value = JSON.parse(this.#raw[name]);
      } catch {
        continue; // reads as absent, as get() has it
      }
      putValue((data ??= {}), name, value);
    }
    if (values !== undefined) for (const [name, value] of values) if (name !== key && !isInternalKey(name)) putValue((data ??= {}), name, value);
    if (key !== undefined && text !== undefined) putValue((data ??= {}), key, JSON.parse(text));
    return data;
  }

  /** The issues the data has now, found when not known. */
  private currentIssues(): IssueSet | undefined {
    return (this.schemaIssues ??= this.#definition.schema?.issuesOf(this.userData()));
  }

  /** The data's JSON texts as a save with `changes` would store them. */
  dataAfter(changes: SessionPatch): Record<string, string> {
    return applyChanges(this.#raw, changes);
  }

  /** The whole session as it should be stored now. */
  record(expiresAt: number, changes = this.changes()): SessionRecord {
    return { data: applyChanges(this.#raw, changes), meta: this.#metaValue, expiresAt };
  }

  /** Describes a write about to start, so that `confirm` can apply exactly it. */
  pending(expiresAt: number, changes: SessionPatch | undefined, data?: Record<string, string>): PendingWrite {
    return { generation: this.#generation, expiresAt, changes, data, meta: this.#metaValue };
  }

  /** The store confirmed `write`: it is the stored state now (unless the session was regenerated or destroyed meanwhile). */
  confirm(write: PendingWrite): void {
    if (write.generation !== this.#generation) return;
    const changes = write.changes;
    if (write.data !== undefined) this.#raw = write.data;
    else if (changes !== undefined) this.#raw = applyChanges(this.#raw, changes);
    if (changes !== undefined && this.#removed !== undefined) {
      for (const key of changes.unset) this.#removed.delete(key);
      if (this.#removed.size === 0) this.#removed = undefined;
    }
    this.#storedMeta = write.meta;
    this.stored = true;
    this.storedExpiresAt = write.expiresAt;
    this.touchRequested = false;
    this.destroyed = false;
    this.signedWithOldKey = false;
  }

  /** The expiry a write made now would give: sliding lifetime, capped by the absolute timeout. */
  nextExpiry(now: number): number {
    const def = this.#definition;
    const sliding = now + (this.#metaValue.maxAge ?? def.idleTimeout);
    return def.absoluteTimeout === undefined ? sliding : Math.min(sliding, this.#metaValue.createdAt + def.absoluteTimeout);
  }
}

/**
 * The promise as it is, but one nobody awaits cannot end the process: a failure is logged where it
 * happens (a store error) and the response still saves or answers 503.
 */
function unhandledIsFine(promise: Promise<void>): Promise<void> {
  promise.catch(() => undefined);
  return promise;
}

function freshMeta(def: SessionDefinition): SessionMeta {
  return def.name === DEFAULT_SESSION ? { createdAt: Date.now() } : { createdAt: Date.now(), session: def.name };
}

/** The library's own keys are not the user's to change. */
function refuseInternal(key: string, method: string): void {
  if (isInternalKey(key)) {
    throw reported(new SessionValidationError(
      `session.${method}(): keys beginning with a NUL character (${JSON.stringify(INTERNAL_KEY_PREFIX)}) are reserved for the library's own data; choose another key`,
      key,
    ));
  }
}

/** A user's version as recorded: a string, or a finite number as its text. */
function versionOf(version: unknown): string {
  if (typeof version === 'number' && Number.isFinite(version)) return String(version);
  if (typeof version === 'string') return version;
  throw reported(new SessionValidationError(
    `session.setUser(id, { version }): expected the user's version as userVersion returns it (a string or a finite number); got ${typeof version}`,
    'version',
  ));
}

/** Longest user id accepted, in characters. */
const MAX_USER_ID = 256;

/** A user id as the stores keep it (a finite number as its decimal text), or undefined when `user` is none. */
export function asUserId(user: unknown): string | undefined {
  if (typeof user === 'number' && Number.isFinite(user)) return String(user);
  if (typeof user === 'string' && user.length > 0 && user.length <= MAX_USER_ID) return user;
  return undefined;
}

/** A user id as stored: a non-empty string of at most 256 characters, or a finite number as its text. */
export function userIdOf(user: unknown, where = 'session.setUser()'): string {
  const id = asUserId(user);
  if (id !== undefined) return id;
  throw reported(new SessionValidationError(
    `${where}: expected a user id (a string of 1 to ${MAX_USER_ID} characters or a finite number)${where === 'session.setUser()' ? ', or undefined to untie' : ''}; got ${typeof user === 'string' ? `a string of ${user.length} characters` : typeof user}`,
    'user',
  ));
}

/** The JSON text of a session value; a value JSON cannot represent is refused with a typed error. */
function jsonOf(value: unknown, where: string, key: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw reported(new SessionValidationError(`${where}: the value cannot be stored as JSON (${(error as Error)?.message ?? String(error)}); session values must be JSON-serialisable`, key, { cause: error }));
  }
  if (typeof text !== 'string') {
    throw reported(new SessionValidationError(`${where}: a ${typeof value} cannot be stored; session values must be JSON-serialisable`, key));
  }
  return text;
}

function applyChanges(raw: Readonly<Record<string, string>>, changes: SessionPatch | undefined): Record<string, string> {
  // Copied key by key: a fast object for V8 even from a prototype-less one (which spreads slowly);
  // keys such as `__proto__` go through putData.
  const data: Record<string, string> = {};
  for (const key of Object.keys(raw)) putData(data, key, raw[key]);
  if (changes !== undefined) {
    for (const key of changes.unset) delete data[key];
    for (const key of Object.keys(changes.set)) putData(data, key, changes.set[key]);
  }
  return data;
}

