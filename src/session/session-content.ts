import { DEFAULT_SESSION, isInternalKey } from './session.constants.js';
import type { SessionDefinition } from './session-definition.js';
import { putData, type SessionMeta, type SessionPatch, type SessionRecord } from '../stores/session-store.interface.js';
import { putValue } from '../schema/session-schema.js';
import { jsonOf } from './session-values.js';

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
 * What a session holds, as its store last confirmed it and as it is now. Values are parsed from the
 * store's JSON text on first read and compared as JSON text at save time, so a value changed in
 * place is saved too and a value only read is not written. The stored state (`#raw`,
 * `#storedMeta`) changes only when the store has confirmed a write (`confirmStored`).
 *
 * The state is in private (#) fields, so that what enumerates an object's own properties (spread,
 * Object.keys, Object.entries, structuredClone, a logger's serializer) never reaches the data or
 * its internal keys (the CSRF secret).
 */
export class SessionContent {
  /** The stored JSON text of each key as the store last confirmed it. Never mutated. */
  #raw: Readonly<Record<string, string>>;
  /** Values read or set since. */
  #values: Map<string, unknown> | undefined;
  /** Stored keys deleted since. */
  #removed: Set<string> | undefined;
  /** The meta as the store last confirmed it; replaced, never mutated. */
  #storedMeta: SessionMeta;
  /** The meta as it is now; replaced (copy on write), never mutated. */
  #metaValue: SessionMeta;

  constructor(definition: SessionDefinition, record: SessionRecord | undefined) {
    this.#raw = record?.data ?? EMPTY;
    this.#metaValue = this.#storedMeta = record?.meta ?? freshMeta(definition);
  }

  get meta(): Readonly<SessionMeta> {
    return this.#metaValue;
  }

  /** The meta as the store last confirmed it. */
  protected get storedMeta(): Readonly<SessionMeta> {
    return this.#storedMeta;
  }

  protected setMeta(meta: SessionMeta): void {
    this.#metaValue = meta;
  }

  /** The value of `key` (internal keys too), parsed on first read; a value the store mangled reads as absent. */
  protected readValue(key: string): any {
    const values = this.#values;
    if (values !== undefined && values.has(key)) return values.get(key);
    if (!hasOwn(this.#raw, key) || this.#removed?.has(key) === true) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(this.#raw[key]);
    } catch {
      return undefined;
    }
    // Only objects can change in place: they are kept so that the save compares them.
    if (value !== null && typeof value === 'object') (this.#values ??= new Map()).set(key, value);
    return value;
  }

  protected hasValue(key: string): boolean {
    if (this.#values?.has(key) === true) return true;
    return hasOwn(this.#raw, key) && this.#removed?.has(key) !== true;
  }

  /** Sets `key`; when `check` (then called) throws, the key is put back as it was and the error thrown. */
  protected putValue(key: string, value: unknown, check?: () => void): void {
    const values = (this.#values ??= new Map());
    const had = values.has(key);
    const previous = values.get(key);
    const wasRemoved = this.#removed?.delete(key) === true;
    values.set(key, value);
    if (check === undefined) return;
    try {
      check();
    } catch (error) {
      if (had) values.set(key, previous);
      else values.delete(key);
      if (wasRemoved) this.#removed!.add(key);
      throw error;
    }
  }

  /**
   * Deletes `key`. A key set earlier (its write may still be in flight, and land as stored) is
   * marked removed as well as a stored one, so that it stays deleted once that write confirms.
   */
  protected removeValue(key: string): void {
    const wasSet = this.#values?.delete(key) === true;
    if (wasSet || hasOwn(this.#raw, key)) (this.#removed ??= new Set()).add(key);
  }

  /** Deletes every key of the user's; the library's own keys stay. */
  protected clearUserValues(): void {
    if (this.#values !== undefined) {
      for (const key of this.#values.keys()) if (!isInternalKey(key)) this.removeValue(key);
    }
    for (const key of Object.keys(this.#raw)) if (!isInternalKey(key)) (this.#removed ??= new Set()).add(key);
  }

  /** The user's values (the library's own keys left out), parsed. */
  toJSON(): Record<string, any> {
    const result = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(this.#raw)) {
      if (isInternalKey(key)) continue;
      const value = this.readValue(key);
      if (value !== undefined) result[key] = value;
    }
    if (this.#values !== undefined) for (const [key, value] of this.#values) if (!isInternalKey(key)) result[key] = value;
    return result;
  }

  /** Something to store: data, flash messages or a user. */
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
        if (!hasOwn(this.#raw, key) || this.#raw[key] !== text || this.#removed?.has(key) === true) putData((set ??= {}), key, text);
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
    const patch: SessionPatch = { set: set ?? {}, unset: unset ?? [], flash: { set: flashSet ?? {}, unset: flashUnset ?? [] }, expiresAt: 0 };
    if (maxAgeChanged) patch.maxAge = meta.maxAge ?? null;
    if (userChanged) patch.user = meta.user ?? null;
    return patch;
  }

  /**
   * The user's data as the schema sees it (values parsed, the library's own keys left out), with `key` set to
   * the value of JSON `text`, or removed when `text` is undefined; undefined when it is empty.
   */
  protected userData(key?: string, text?: string): Record<string, unknown> | undefined {
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

  /** The data's JSON texts as a save with `changes` would store them. */
  dataAfter(changes: SessionPatch): Record<string, string> {
    return applyChanges(this.#raw, changes);
  }

  /** The whole session as it should be stored now. */
  record(expiresAt: number, changes = this.changes()): SessionRecord {
    return { data: applyChanges(this.#raw, changes), meta: this.#metaValue, expiresAt };
  }

  /** The store confirmed `write`: what it wrote is the stored state now. */
  protected confirmStored(write: PendingWrite): void {
    const changes = write.changes;
    if (write.data !== undefined) this.#raw = write.data;
    else if (changes !== undefined) this.#raw = applyChanges(this.#raw, changes);
    if (changes !== undefined && this.#removed !== undefined) {
      for (const key of changes.unset) this.#removed.delete(key);
      if (this.#removed.size === 0) this.#removed = undefined;
    }
    this.#storedMeta = write.meta;
  }

  /**
   * Nothing of it is stored any more: after `regenerate()` (`keep`: everything is written anew under
   * the new id, with a new creation time) or `destroy()` (everything goes).
   */
  protected forgetStored(definition: SessionDefinition, keep: boolean): void {
    if (keep) {
      this.#metaValue = { ...this.#metaValue, createdAt: Date.now() };
      this.#storedMeta = freshMeta(definition);
      return;
    }
    this.#raw = EMPTY;
    this.#values = undefined;
    this.#removed = undefined;
    this.#metaValue = this.#storedMeta = freshMeta(definition);
  }
}

function freshMeta(def: SessionDefinition): SessionMeta {
  return def.name === DEFAULT_SESSION ? { createdAt: Date.now() } : { createdAt: Date.now(), session: def.name };
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
