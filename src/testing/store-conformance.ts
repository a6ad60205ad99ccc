import assert from 'node:assert/strict';
import type { ClientSessionStore, SessionRecord, SessionStore } from '../session-store.interface.js';
import { lifecycleCases, type CaseContext, type ConformanceCase } from './store-cases.js';
import { inputCases } from './store-input-cases.js';

const sessionStoreCases: readonly ConformanceCase[] = [...lifecycleCases, ...inputCases];

/** Makes a fresh store; the suite calls it once per case and closes what it returns. */
export type SessionStoreFactory<S extends SessionStore = SessionStore> = () => S | Promise<S>;

export interface SessionStoreTestOptions<S extends SessionStore = SessionStore> {
  /** Names of cases this store legitimately cannot honour (as listed in `sessionStoreCaseNames`). */
  skip?: readonly string[];
  /** The largest session data the store can hold, in bytes of JSON text; sizes the large-value and many-keys cases. Default 102400. */
  maxValueBytes?: number;
  /** The short lifetime, in ms, given to sessions that the expiry cases wait out. Default 150. */
  ttl?: number;
  /** How many sessions `store` physically holds, expired ones included; lets the reclaim case see that expired sessions are gone (each store from the factory must start empty). */
  countSessions?: (store: S) => number | Promise<number>;
  /** Title of the `describe` block registered by `defineSessionStoreTests`. Default 'SessionStore conformance'. */
  title?: string;
  /** `checkSessionStore` only: a case that runs longer than this many ms fails. Default 10000. */
  timeout?: number;
}

/** The outcome of one case; a skipped case counts as ok. */
export interface SessionStoreCaseResult {
  name: string;
  ok: boolean;
  skipped?: boolean;
  error?: unknown;
}

type TestBody = (...args: unknown[]) => Promise<void>;
type TestFn = (name: string, body: TestBody) => unknown;

/** The two functions of a test runner the suite needs: vitest, jest, mocha and node:test all fit. */
export interface SessionStoreTestRunner {
  describe: (name: string, body: () => void) => unknown;
  it: TestFn & { skip?: TestFn };
}

/** Names of every case, in the order they run. */
export const sessionStoreCaseNames: readonly string[] = sessionStoreCases.map((c) => c.name);

/** Runs every case against fresh stores from `factory`, one after the other, and reports each by name. */
export async function checkSessionStore<S extends SessionStore>(
  factory: SessionStoreFactory<S>,
  options: SessionStoreTestOptions<S> = {},
): Promise<SessionStoreCaseResult[]> {
  const skip = skipList(options);
  const timeout = options.timeout ?? 10_000;
  const results: SessionStoreCaseResult[] = [];
  for (const c of sessionStoreCases) {
    if (skip.has(c.name)) {
      results.push({ name: c.name, ok: true, skipped: true });
      continue;
    }
    try {
      const ran = await withTimeout(runCase(c, factory, options), timeout, c.name);
      results.push(ran ? { name: c.name, ok: true } : { name: c.name, ok: true, skipped: true });
    } catch (error) {
      results.push({ name: c.name, ok: false, error });
    }
  }
  return results;
}

/** Registers one test per case with the given runner, inside one `describe` block. */
export function defineSessionStoreTests<S extends SessionStore>(
  runner: SessionStoreTestRunner,
  factory: SessionStoreFactory<S>,
  options: SessionStoreTestOptions<S> = {},
): void {
  const skip = skipList(options);
  const { describe, it } = runner;
  describe(options.title ?? 'SessionStore conformance', () => {
    for (const c of sessionStoreCases) {
      if (skip.has(c.name)) {
        it.skip?.(c.name, async () => {});
        continue;
      }
      // Rest parameters keep the body's length at 0, so mocha does not wait for a `done` callback.
      it(c.name, async function (this: unknown, ...args: unknown[]) {
        if (!(await runCase(c, factory, options))) skipFromInside(this, args[0], c);
      });
    }
  });
}

/** Runs one case on a fresh store; false when the store lacks what the case needs. */
async function runCase<S extends SessionStore>(
  c: ConformanceCase,
  factory: SessionStoreFactory<S>,
  options: SessionStoreTestOptions<S>,
): Promise<boolean> {
  const store = await factory();
  let failure: { error: unknown } | undefined;
  let ran = false;
  try {
    if (c.needs === undefined || hasFeature(store, c.needs)) {
      const count = options.countSessions;
      const ctx: CaseContext = {
        ttl: options.ttl ?? 150,
        maxValueBytes: options.maxValueBytes ?? 100 * 1024,
        countSessions: count && (async () => count(store)),
      };
      await c.run(store, ctx);
      ran = true;
    }
  } catch (error) {
    failure = { error };
  }
  try {
    await store.close?.();
  } catch (error) {
    failure ??= { error: new Error(`close() threw after the case "${c.name}"`, { cause: error }) };
  }
  if (failure) throw failure.error;
  return ran;
}

function hasFeature(store: SessionStore, need: NonNullable<ConformanceCase['needs']>): boolean {
  if (need === 'patch') return typeof store.patch === 'function';
  if (need === 'reclaim') return typeof store.reclaim === 'function';
  return (store as { jar?: unknown }).jar instanceof Map;
}

/** Marks a test skipped from inside its body, in whichever way the runner offers (vitest and node:test pass a context, mocha binds `this`). */
function skipFromInside(self: unknown, context: unknown, c: ConformanceCase): void {
  const note = `the store has no ${c.needs}`;
  const ctx = context as { skip?: (note?: string) => void } | undefined;
  if (typeof ctx?.skip === 'function') return ctx.skip(note);
  const mocha = self as { skip?: () => void } | undefined;
  if (typeof mocha?.skip === 'function') mocha.skip();
}

function skipList(options: SessionStoreTestOptions<never>): Set<string> {
  const skip = new Set(options.skip ?? []);
  const unknown = [...skip].filter((name) => !sessionStoreCaseNames.includes(name));
  assert.equal(
    unknown.length,
    0,
    `options.skip names no case: ${JSON.stringify(unknown)}; use names from sessionStoreCaseNames`,
  );
  return skip;
}

async function withTimeout<T>(work: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`case "${name}" did not finish within ${ms} ms (options.timeout)`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A server-side view of a client-side store, as `clientStoreAsSessionStore` makes it. */
export interface ClientStoreJar extends SessionStore {
  /** The sealed cookie values by session id, as a browser would keep them. */
  readonly jar: Map<string, string>;
}

/**
 * Wraps a client-side store (whose data lives in the cookie) so the suite can check it: sealed values
 * sit in a Map like a browser's cookie jar, and every read opens what was sealed.
 */
export function clientStoreAsSessionStore(store: ClientSessionStore): ClientStoreJar {
  const jar = new Map<string, string>();
  const open = (id: string): SessionRecord | undefined => {
    const value = jar.get(id);
    if (value === undefined) return undefined;
    const opened = store.open(value);
    if (opened === undefined) return undefined;
    // A sealed value names its own session: opening it under another id is a sealing bug.
    assert.equal(opened.id, id, `open() returned the id ${JSON.stringify(opened.id)} for a value sealed for ${JSON.stringify(id)}`);
    return opened.record;
  };
  const reseal = (id: string, record: SessionRecord): void => {
    jar.set(id, store.seal(id, record));
  };
  return {
    jar,
    get: (id) => open(id),
    set: (id, record) => reseal(id, record),
    patch(id, patch) {
      const current = open(id);
      if (current === undefined) return;
      const data = { ...current.data };
      for (const key of patch.unset) delete data[key];
      // defineProperty, not assignment: a key named __proto__ must stay plain data.
      for (const [key, value] of Object.entries(patch.set)) {
        Object.defineProperty(data, key, { value, enumerable: true, writable: true, configurable: true });
      }
      reseal(id, { data, meta: patch.meta, expiresAt: patch.expiresAt });
    },
    touch(id, expiresAt) {
      const current = open(id);
      if (current !== undefined) reseal(id, { ...current, expiresAt });
    },
    destroy: (id) => void jar.delete(id),
    close: () => store.close?.(),
  };
}
