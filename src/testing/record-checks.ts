import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { SessionMeta, SessionPatch, SessionRecord } from '../stores/session-store.interface.js';

/** Ten minutes from now: a session that outlives any case. */
export const LATER = 10 * 60_000;

/** An id like the engine's: 32 random bytes in base64url, so stores that share a back-end never collide. */
export const newId = (): string => randomBytes(32).toString('base64url');

/** Sets `key` as an own property, also `__proto__` (which a plain assignment would treat as the prototype). */
export function define<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** An object of own properties from entries (an array, so keys like __proto__ stay own keys). */
export function entriesToObject<T>(entries: readonly (readonly [string, T])[]): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [key, value] of entries) define(out, key, value);
  return out;
}

/** Data whose values are the JSON text of `entries`' values. */
export function dataOf(entries: readonly (readonly [string, unknown])[]): Record<string, string> {
  return entriesToObject(entries.map(([key, value]): [string, string] => [key, JSON.stringify(value)]));
}

/** A record whose data values are the JSON text of `entries`' values. */
export function record(entries: readonly (readonly [string, unknown])[], meta: Partial<SessionMeta> = {}, expiresAt = Date.now() + LATER): SessionRecord {
  return { data: dataOf(entries), meta: { createdAt: Date.now() - 1000, ...meta }, expiresAt };
}

/** A patch that sets and unsets data keys only, with the record's expiry. */
export function patchOf(rec: SessionRecord, set: readonly (readonly [string, unknown])[], unset: string[] = [], more: Partial<SessionPatch> = {}): SessionPatch {
  return { set: dataOf(set), unset, flash: { set: {}, unset: [] }, expiresAt: rec.expiresAt, ...more };
}

/** Data as sorted [key, parsed value] pairs: equal JSON meaning, whatever the spacing a store keeps. */
function view(data: Record<string, string>): [string, unknown][] {
  return Object.keys(data)
    .sort()
    .map((key) => {
      const text = data[key];
      assert.equal(typeof text, 'string', `the value of key ${JSON.stringify(key)} came back as ${typeof text}; values are JSON text, kept as strings`);
      return [key, JSON.parse(text) as unknown];
    });
}

/** Meta as plain JSON data; a flash with no keys counts as no flash (a store may keep either). */
function metaView(meta: SessionMeta): unknown {
  const plain = JSON.parse(JSON.stringify(meta)) as Record<string, unknown>;
  const flash = plain.flash as Record<string, unknown> | undefined;
  if (flash !== undefined && flash !== null && typeof flash === 'object' && Object.keys(flash).length === 0) delete plain.flash;
  return plain;
}

function same(actual: unknown, expected: unknown, what: string): void {
  try {
    assert.deepStrictEqual(actual, expected);
  } catch (error) {
    if (error instanceof Error) error.message = `${what}\n${error.message}`;
    throw error;
  }
}

/** Asserts that `actual` is `expected`: same data meaning, same meta, same expiry, and only plain objects. */
export function expectRecord(actual: SessionRecord | undefined, expected: SessionRecord, what: string): void {
  assert.ok(actual, `${what}: got undefined for a live session`);
  assertPlain(actual, `${what}: the record`);
  same(view(actual.data), view(expected.data), `${what}: the data differs`);
  same(metaView(actual.meta), metaView(expected.meta), `${what}: the meta differs`);
  assert.equal(actual.expiresAt, expected.expiresAt, `${what}: the expiry differs`);
}

/**
 * Asserts that `value` and everything in it are plain data: objects whose prototype is
 * Object.prototype or null, arrays, and nothing inherited named `polluted`. A store that assigns a
 * key named `__proto__` instead of defining it replaces the object's prototype: caught here.
 */
export function assertPlain(value: unknown, path: string): void {
  if (typeof value !== 'object' || value === null) return;
  const proto: unknown = Object.getPrototypeOf(value);
  if (Array.isArray(value)) {
    assert.ok(proto === Array.prototype, `${path} is an array with a foreign prototype`);
    value.forEach((item, i) => assertPlain(item, `${path}[${i}]`));
    return;
  }
  assert.ok(
    proto === Object.prototype || proto === null,
    `${path} has the prototype ${describeValue(proto)} instead of Object.prototype or null: a key named "__proto__" was assigned instead of defined as an own key`,
  );
  assert.ok(!('polluted' in value) || Object.hasOwn(value, 'polluted'), `${path} inherits a property "polluted" from its prototype chain`);
  for (const key of Object.keys(value)) assertPlain((value as Record<string, unknown>)[key], `${path}.${key}`);
}

function describeValue(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 80) ?? String(value);
  } catch {
    return String(value);
  }
}

const SHARED_PROTOTYPES: readonly object[] = [Object.prototype, Array.prototype, Function.prototype, String.prototype];

/** The own properties of the shared prototypes, to prove later that nothing was added or replaced. */
function prototypeSnapshot(): readonly Map<string | symbol, PropertyDescriptor>[] {
  return SHARED_PROTOTYPES.map((proto) => new Map(Reflect.ownKeys(proto).map((key) => [key, Reflect.getOwnPropertyDescriptor(proto, key)!])));
}

/**
 * Asserts that no property of a shared prototype was added or replaced since `before`. What changed
 * is put back first, so one polluting store fails this case, not every case after it.
 */
function assertPrototypesUntouched(before: readonly Map<string | symbol, PropertyDescriptor>[], what: string): void {
  const changed: string[] = [];
  SHARED_PROTOTYPES.forEach((proto, i) => {
    for (const key of Reflect.ownKeys(proto)) {
      const was = before[i].get(key);
      const now = Reflect.getOwnPropertyDescriptor(proto, key)!;
      if (was !== undefined && was.value === now.value && was.get === now.get && was.set === now.set) continue;
      changed.push(`${(proto.constructor as { name: string }).name}.prototype.${String(key)}`);
      if (was === undefined) Reflect.deleteProperty(proto, key);
      else Reflect.defineProperty(proto, key, was);
    }
  });
  assert.deepEqual(changed, [], `${what}: the store polluted a shared prototype`);
}

/** Runs `body`, then fails if it added anything to a shared prototype (and removes what it added). */
export async function guardPrototypes(what: string, body: () => void | Promise<void>): Promise<void> {
  const before = prototypeSnapshot();
  try {
    await body();
  } finally {
    assertPrototypesUntouched(before, what);
  }
}

/** Asserts that `data` holds `key` as an own property. */
export function assertOwnKey(object: Record<string, unknown> | undefined, key: string, what: string): void {
  assert.ok(object !== undefined && Object.hasOwn(object, key), `${what}: ${JSON.stringify(key)} is not an own key (keys: ${JSON.stringify(object && Object.keys(object))})`);
}

export async function settle<T>(work: () => T | PromiseLike<T>): Promise<{ ok: true; value: T } | { ok: false }> {
  try {
    return { ok: true, value: await work() };
  } catch {
    return { ok: false };
  }
}
