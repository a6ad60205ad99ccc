import { FlashBox, type FlashHolder } from './flash.js';
import { SessionError } from './session.errors.js';
import type { Session } from './session.interface.js';
import type { SessionDefinition } from './session-definition.js';
import { generateSessionId } from './session-id.js';
import { putData, type SessionMeta, type SessionRecord } from './session-store.interface.js';

/** What a session asks of the request that holds it, for the operations that cannot wait. */
export interface SessionHost {
  destroyStored(session: SessionState): Promise<void>;
  saveNow(session: SessionState): Promise<void>;
  checkSize(session: SessionState, growth?: number): void;
}

/** The changed keys of a session, as JSON text, and the deleted ones. */
export interface SessionDiff {
  set: Record<string, string>;
  unset: string[];
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});
const hasOwn = Object.hasOwn;

/**
 * One session of one request. Values are parsed from the store's JSON text on first read and
 * compared as JSON text at save time, so a value changed in place is saved too and a value only
 * read is not written.
 */
export class SessionState implements Session<any>, FlashHolder {
  /** The stored JSON text of each key as it was loaded (or last saved). Never mutated. */
  private raw: Readonly<Record<string, string>>;
  /** Values read or set during this request. */
  private values: Map<string, unknown> | undefined;
  /** Stored keys deleted during this request. */
  private removed: Set<string> | undefined;
  private metaValue: SessionMeta;
  private flashBox: FlashBox | undefined;
  private sessionId: string | undefined;

  /** The session exists in its store under `sessionId`. */
  stored: boolean;
  /** Stored expiry (epoch ms); 0 for a session not stored yet. */
  storedExpiresAt: number;
  metaChanged = false;
  touchRequested = false;
  /** `destroy()` ran: the cookie must be cleared unless the session gets new content. */
  destroyed = false;
  /** The verified cookie value the request came with, when it can be sent back as it is. */
  cookieValue: string | undefined;
  /** The cookie was signed with an old key: send a fresh one on the next write. */
  resign = false;
  /** Cookie-stored sessions: bytes known to be left under the cookie limit at the last exact check. */
  sizeHeadroom: number | undefined;

  constructor(
    readonly definition: SessionDefinition,
    private readonly host: SessionHost,
    id?: string,
    record?: SessionRecord,
  ) {
    this.sessionId = id;
    this.stored = record !== undefined;
    this.raw = record?.data ?? EMPTY;
    this.metaValue = record?.meta ?? { createdAt: Date.now() };
    this.storedExpiresAt = record?.expiresAt ?? 0;
  }

  get id(): string {
    return (this.sessionId ??= generateSessionId());
  }

  get isNew(): boolean {
    return !this.stored;
  }

  get expiresAt(): Date {
    return new Date(this.stored && !this.metaChanged ? this.storedExpiresAt : this.nextExpiry(Date.now()));
  }

  get meta(): Readonly<SessionMeta> {
    return this.metaValue;
  }

  get flash(): FlashBox {
    return (this.flashBox ??= new FlashBox(this));
  }

  get(key: string): any {
    const values = this.values;
    if (values !== undefined && values.has(key)) return values.get(key);
    if (!hasOwn(this.raw, key) || this.removed?.has(key) === true) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(this.raw[key]);
    } catch {
      return undefined; // a value the store mangled reads as absent
    }
    // Only objects can change in place: they are kept so that the save compares them.
    if (value !== null && typeof value === 'object') (this.values ??= new Map()).set(key, value);
    return value;
  }

  set(key: string, value: unknown): void {
    if (value === undefined) return this.delete(key);
    const type = typeof value;
    if (type === 'function' || type === 'symbol' || type === 'bigint') {
      throw new SessionError(`session.set('${key}'): a ${type} cannot be stored; session values must be JSON-serialisable`);
    }
    const values = (this.values ??= new Map());
    const had = values.has(key);
    const previous = values.get(key);
    const wasRemoved = this.removed?.delete(key) === true;
    values.set(key, value);
    if (!this.definition.clientSide) return;
    try {
      // At most what the key and value add to the sealed text: exact checks only near the limit.
      const growth = Buffer.byteLength(JSON.stringify(key)) + Buffer.byteLength(JSON.stringify(JSON.stringify(value))) + 2;
      this.host.checkSize(this, growth);
    } catch (error) {
      // A value that does not fit leaves the session as it was.
      if (had) values.set(key, previous);
      else values.delete(key);
      if (wasRemoved) this.removed!.add(key);
      throw error;
    }
  }

  has(key: string): boolean {
    if (this.values?.has(key) === true) return true;
    return hasOwn(this.raw, key) && this.removed?.has(key) !== true;
  }

  delete(key: string): void {
    this.values?.delete(key);
    if (hasOwn(this.raw, key)) (this.removed ??= new Set()).add(key);
  }

  clear(): void {
    this.values = undefined;
    const keys = Object.keys(this.raw);
    if (keys.length > 0) this.removed = new Set(keys);
  }

  toJSON(): Record<string, any> {
    const result = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(this.raw)) {
      const value = this.get(key);
      if (value !== undefined) result[key] = value;
    }
    if (this.values !== undefined) for (const [key, value] of this.values) result[key] = value;
    return result;
  }

  setMaxAge(ms: number | undefined): void {
    if (ms !== undefined && (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0)) {
      throw new SessionError(`session.setMaxAge(): expected a positive number of milliseconds or undefined, got ${String(ms)}`);
    }
    const maxAge = ms === undefined ? undefined : Math.floor(ms);
    if (maxAge === this.metaValue.maxAge) return;
    const { maxAge: _old, ...rest } = this.metaValue;
    this.replaceMeta(maxAge === undefined ? rest : { ...rest, maxAge });
  }

  touch(): void {
    this.touchRequested = true;
  }

  async regenerate(): Promise<void> {
    if (this.stored) await this.host.destroyStored(this);
    this.sessionId = generateSessionId();
    this.stored = false;
    this.cookieValue = undefined;
    this.replaceMeta({ ...this.metaValue, createdAt: Date.now() });
  }

  async destroy(): Promise<void> {
    if (this.stored) await this.host.destroyStored(this);
    this.sessionId = undefined;
    this.stored = false;
    this.cookieValue = undefined;
    this.raw = EMPTY;
    this.values = undefined;
    this.removed = undefined;
    this.metaValue = { createdAt: Date.now() };
    this.metaChanged = false;
    this.destroyed = true;
  }

  save(): Promise<void> {
    return this.host.saveNow(this);
  }

  // FlashHolder
  storedFlash(): Readonly<Record<string, readonly unknown[]>> | undefined {
    return this.metaValue.flash;
  }

  replaceFlash(flash: Record<string, unknown[]> | undefined): void {
    const { flash: _old, ...rest } = this.metaValue;
    this.replaceMeta(flash === undefined ? rest : { ...rest, flash });
  }

  /** Something to store: data or flash messages. */
  hasContent(): boolean {
    if (this.metaValue.flash !== undefined) return true;
    if (this.values !== undefined && this.values.size > 0) return true;
    for (const key in this.raw) if (hasOwn(this.raw, key) && this.removed?.has(key) !== true) return true;
    return false;
  }

  /** The keys whose JSON text differs from the stored one, or undefined when nothing changed. */
  diff(): SessionDiff | undefined {
    let set: Record<string, string> | undefined;
    if (this.values !== undefined) {
      for (const [key, value] of this.values) {
        const text = JSON.stringify(value);
        if (!hasOwn(this.raw, key) || this.raw[key] !== text || this.removed?.has(key) === true) {
          putData((set ??= {}), key, text);
        }
      }
    }
    let unset: string[] | undefined;
    if (this.removed !== undefined) for (const key of this.removed) (unset ??= []).push(key);
    if (set === undefined && unset === undefined) return undefined;
    return { set: set ?? {}, unset: unset ?? [] };
  }

  /** The whole session as it should be stored now. */
  record(expiresAt: number, diff = this.diff()): SessionRecord {
    return { data: applyDiff(this.raw, diff), meta: this.metaValue, expiresAt };
  }

  /** Marks what was written as the new stored state (`data`: the whole data written, when known). */
  committed(expiresAt: number, diff: SessionDiff | undefined, data?: Record<string, string>): void {
    if (data !== undefined) this.raw = data;
    else if (diff !== undefined) this.raw = applyDiff(this.raw, diff);
    this.removed = undefined;
    this.stored = true;
    this.storedExpiresAt = expiresAt;
    this.metaChanged = false;
    this.touchRequested = false;
    this.destroyed = false;
    this.resign = false;
  }

  /** The expiry a write made now would give: sliding lifetime, capped by the absolute timeout. */
  nextExpiry(now: number): number {
    const def = this.definition;
    const sliding = now + (this.metaValue.maxAge ?? def.idleTimeout);
    return def.absoluteTimeout === undefined ? sliding : Math.min(sliding, this.metaValue.createdAt + def.absoluteTimeout);
  }

  private replaceMeta(meta: SessionMeta): void {
    this.metaValue = meta;
    this.metaChanged = true;
  }
}

function applyDiff(raw: Readonly<Record<string, string>>, diff: SessionDiff | undefined): Record<string, string> {
  // A plain copy stays a fast object for V8; keys such as `__proto__` go through putData.
  const data: Record<string, string> = { ...raw };
  if (diff !== undefined) {
    for (const key of diff.unset) delete data[key];
    for (const key of Object.keys(diff.set)) putData(data, key, diff.set[key]);
  }
  return data;
}
