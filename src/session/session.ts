import { inspect } from 'node:util';
import { FlashBox, type FlashHolder } from './flash.js';
import { CSRF_SECRET_KEY, isInternalKey, MAX_LIFETIME } from './session.constants.js';
import { reported, SessionValidationError } from './session.errors.js';
import type { Session, SetUserOptions } from './session.interface.js';
import type { SessionDefinition } from './session-definition.js';
import { generateSessionId } from './session-id.js';
import type { SessionMeta, SessionPatch, SessionRecord, SessionUser } from '../stores/session-store.interface.js';
import type { IssueSet } from '../schema/session-schema.js';
import { SessionContent, type PendingWrite } from './session-content.js';
import { jsonOf, refuseInternal, unhandledIsFine, userIdOf, versionOf } from './session-values.js';

export type { PendingWrite } from './session-content.js';
export { asUserId, userIdOf } from './session-values.js';

/** What a session asks of the request that holds it, for the operations that cannot wait. */
export interface SessionHost {
  /**
   * Removes the stored session `id` in its turn, after the writes of it asked for before; then,
   * before any later write of it starts, calls `ended` (the session object forgets the id).
   * `replaced`: by `regenerate()`.
   */
  destroyStored(session: SessionState, id: string, replaced: boolean, ended: () => void): Promise<void>;
  saveNow(session: SessionState): Promise<void>;
  checkSize(session: SessionState, growth?: number): void;
  /**
   * Throws when this host cannot carry the change about to be made (a socket cannot change a
   * cookie); absent where every change can be saved (an HTTP request).
   */
  refuseChange?(session: SessionState, change: 'change' | 'regenerate' | 'sign-in'): void;
}

/**
 * One session of one request (or of one socket's message): the Session API over what it holds
 * (`SessionContent`), its id and cookie, and what it asks of its host (the request) to check, save
 * and end it.
 */
export class SessionState extends SessionContent implements Session<any>, FlashHolder {
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

  // In private (#) fields, as the content's: what enumerates an object's own properties never
  // reaches the id, the cookie or the definition.
  readonly #definition: SessionDefinition;
  readonly #host: SessionHost;

  constructor(definition: SessionDefinition, host: SessionHost, id?: string, record?: SessionRecord) {
    super(definition, record);
    this.#definition = definition;
    this.#host = host;
    this.#sessionId = id;
    this.stored = record !== undefined;
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
    return new Date(this.stored && this.meta.maxAge === this.storedMeta.maxAge ? this.storedExpiresAt : this.nextExpiry(Date.now()));
  }

  get user(): string | undefined {
    return this.meta.user?.id;
  }

  setUser(user: string | number | undefined, options?: SetUserOptions): void {
    if (user === undefined) {
      if (this.meta.user === undefined) return;
      this.#host.refuseChange?.(this, 'change');
      const { user: _old, ...rest } = this.meta;
      this.setMeta(rest);
      this.versionDue = false;
      return;
    }
    const id = userIdOf(user);
    // The version the app read when it checked the credentials: only `userVersion` compares it, and
    // without it the value is ignored unread (a NULL column, NaN), as documented.
    const version = this.#definition.userVersion === undefined || options?.version === undefined ? undefined : versionOf(options.version);
    const tie = this.meta.user;
    if (tie?.id === id && (version === undefined || tie.version === version)) return;
    this.#host.refuseChange?.(this, tie?.id === id ? 'change' : 'sign-in');
    this.changeMeta({ ...this.meta, user: version === undefined ? { id } : { id, version } }, Buffer.byteLength(JSON.stringify(id)) + 48 + (version === undefined ? 0 : Buffer.byteLength(JSON.stringify(version)) + 12));
    // Without a version given, the user's version is read just before the save.
    this.versionDue = version === undefined && this.#definition.userVersion !== undefined;
  }

  /** Replaces the tie with what this request saw of the user's device (same user). */
  refreshUser(user: SessionUser): void {
    this.setMeta({ ...this.meta, user });
  }

  get flash(): FlashBox {
    return (this.#flashBox ??= new FlashBox(this));
  }

  get(key: string): any {
    return isInternalKey(key) ? undefined : this.readValue(key);
  }

  /** A value under one of the library's own keys (see `INTERNAL_KEY_PREFIX`), hidden from `get()`. */
  getInternal(key: string): unknown {
    return this.readValue(key);
  }

  set(key: string, value: unknown): void {
    refuseInternal(key, 'set');
    this.#host.refuseChange?.(this, 'change');
    if (value === undefined) return this.delete(key);
    this.write(key, value);
  }

  /** Sets one of the library's own keys (see `INTERNAL_KEY_PREFIX`); `undefined` deletes it. */
  setInternal(key: string, value: unknown): void {
    if (value === undefined) this.removeValue(key);
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
    if (this.#definition.clientSide) {
      // At most what the key and value add to the sealed text: exact checks only near the limit. A
      // value that does not fit leaves the session as it was.
      const growth = Buffer.byteLength(JSON.stringify(key)) + Buffer.byteLength(JSON.stringify(text)) + 2;
      this.putValue(key, value, () => this.#host.checkSize(this, growth));
    } else {
      this.putValue(key, value);
    }
    if (schema !== undefined && !isInternalKey(key)) this.schemaIssues = issues;
  }

  has(key: string): boolean {
    return !isInternalKey(key) && this.hasValue(key);
  }

  delete(key: string): void {
    refuseInternal(key, 'delete');
    this.#host.refuseChange?.(this, 'change');
    const schema = this.#definition.schema;
    if (schema !== undefined && this.has(key)) {
      this.schemaIssues = schema.checkChange(key, this.userData(key), () => this.currentIssues(), `session.delete('${key}')`);
    }
    this.removeValue(key);
  }

  /** Deletes every key of the user's; the library's own keys stay. */
  clear(): void {
    this.#host.refuseChange?.(this, 'change');
    this.schemaIssues = undefined;
    this.clearUserValues();
  }

  setMaxAge(ms: number | undefined): void {
    if (ms !== undefined && (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > MAX_LIFETIME)) {
      throw reported(new SessionValidationError(
        `session.setMaxAge(): expected a whole number of milliseconds from 1 to ${MAX_LIFETIME} (400 days, the longest a browser keeps a cookie), or undefined; got ${String(ms)}`,
        'maxAge',
      ));
    }
    if (ms === this.meta.maxAge) return;
    this.#host.refuseChange?.(this, 'change');
    const { maxAge: _old, ...rest } = this.meta;
    this.changeMeta(ms === undefined ? rest : { ...rest, maxAge: ms }, 24);
  }

  /** Replaces the meta; a cookie-stored session that would outgrow its cookie by `growth` bytes keeps the old one, and the error is thrown. */
  private changeMeta(meta: SessionMeta, growth: number): void {
    const previous = this.meta;
    this.setMeta(meta);
    if (growth <= 0 || !this.#definition.clientSide) return;
    try {
      this.#host.checkSize(this, growth);
    } catch (error) {
      this.setMeta(previous);
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
    const renew = () => {
      this.#generation++;
      this.#sessionId = generateSessionId();
      // A new CSRF secret for the new id, made when a token is next asked for: tokens given before the sign-in stop working.
      this.removeValue(CSRF_SECRET_KEY);
      this.stored = false;
      this.#cookieValue = undefined;
      // Everything is written anew under the new id.
      this.forgetStored(this.#definition, true);
    };
    const id = this.#sessionId;
    if (this.mayBeStored() && id !== undefined) await this.#host.destroyStored(this, id, true, renew);
    else renew();
  }

  private async destroyNow(): Promise<void> {
    const forget = () => {
      this.#generation++;
      this.#sessionId = undefined;
      this.stored = false;
      this.#cookieValue = undefined;
      this.forgetStored(this.#definition, false);
      this.schemaIssues = undefined;
      this.destroyed = true;
      this.versionDue = false;
    };
    const id = this.#sessionId;
    if (this.mayBeStored() && id !== undefined) await this.#host.destroyStored(this, id, false, forget);
    else forget();
  }

  /** Stored, or a write of it is running or queued (it may land as stored). */
  private mayBeStored(): boolean {
    return this.stored || this.writing > 0 || this.lastWrite !== undefined;
  }

  save(): Promise<void> {
    return unhandledIsFine(this.#host.saveNow(this));
  }

  // FlashHolder
  storedFlash(): Readonly<Record<string, readonly unknown[]>> | undefined {
    return this.meta.flash;
  }

  replaceFlash(flash: Record<string, unknown[]> | undefined, growth: number): void {
    this.#host.refuseChange?.(this, 'change');
    const { flash: _old, ...rest } = this.meta;
    this.changeMeta(flash === undefined ? rest : { ...rest, flash }, growth);
  }

  /** The issues the data has now, found when not known. */
  private currentIssues(): IssueSet | undefined {
    return (this.schemaIssues ??= this.#definition.schema?.issuesOf(this.userData()));
  }

  /** Describes a write about to start, so that `confirm` can apply exactly it. */
  pending(expiresAt: number, changes: SessionPatch | undefined, data?: Record<string, string>): PendingWrite {
    return { generation: this.#generation, expiresAt, changes, data, meta: this.meta };
  }

  /** The store confirmed `write`: it is the stored state now (unless the session was regenerated or destroyed meanwhile). */
  confirm(write: PendingWrite): void {
    if (write.generation !== this.#generation) return;
    this.confirmStored(write);
    this.stored = true;
    this.storedExpiresAt = write.expiresAt;
    this.touchRequested = false;
    this.destroyed = false;
    this.signedWithOldKey = false;
  }

  /** The expiry a write made now would give: sliding lifetime, capped by the absolute timeout. */
  nextExpiry(now: number): number {
    const def = this.#definition;
    const sliding = now + (this.meta.maxAge ?? def.idleTimeout);
    return def.absoluteTimeout === undefined ? sliding : Math.min(sliding, this.meta.createdAt + def.absoluteTimeout);
  }
}

