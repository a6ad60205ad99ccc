import type { SessionStore } from '../stores/session-store.interface.js';
import { checkSuite, defineSuite, type SessionStoreCaseResult, type SessionStoreTestRunner, type Suite, type SuiteOptions } from './case-runner.js';
import { lifecycleCases, type CaseContext, type ConformanceCase } from './store-cases.js';
import { inputCases } from './store-input-cases.js';
import { userIndexCases } from './user-index-cases.js';

const sessionStoreCases: readonly ConformanceCase[] = [...lifecycleCases, ...inputCases, ...userIndexCases];

/** Makes a fresh store; the suite calls it once per case and closes what it returns. */
export type SessionStoreFactory<S extends SessionStore = SessionStore> = () => S | Promise<S>;

/** The options of `defineSessionStoreTests()` and `checkSessionStore()`. */
export interface SessionStoreTestOptions<S extends SessionStore = SessionStore> extends SuiteOptions {
  /** The largest session data the store can hold, in bytes of JSON text; sizes the large-value and many-keys cases. Default 102400. */
  maxValueBytes?: number;
  /** The short lifetime, in ms, given to sessions that the expiry cases wait out (doubled and tried again when the machine is too slow to tell). Default 150. */
  ttl?: number;
  /** How many sessions `store` physically holds, expired ones included; lets the reclaim case see that expired sessions are gone (each store from the factory must start empty). */
  countSessions?: (store: S) => number | Promise<number>;
  /**
   * Stores with `listByUser()`: how many session ids the store's user index holds, over all users
   * (each store from the factory must start empty); lets the user-index cases see that ended and
   * expired sessions leave it once listed or reclaimed, and that the expired sessions of a user who
   * stays active (their live sessions written again, never listed) leave it too.
   */
  countIndexed?: (store: S) => number | Promise<number>;
  /**
   * What `store` wrote outside its own space since the factory made it: files outside its directory,
   * keys outside its prefix, rows outside its table. The hostile-id cases require it to be empty, so
   * a store that turns an id such as `../x` into a path outside its directory fails. Give each store
   * a space of its own inside a sandbox that this function lists.
   */
  writtenOutside?: (store: S) => readonly string[] | Promise<readonly string[]>;
}

/** Names of every case, in the order they run. */
export const sessionStoreCaseNames: readonly string[] = sessionStoreCases.map((c) => c.name);

function suiteOf<S extends SessionStore>(factory: SessionStoreFactory<S>, options: SessionStoreTestOptions<S>): Suite<{ store: S; ctx: CaseContext }> {
  return {
    namesExport: 'sessionStoreCaseNames',
    cases: sessionStoreCases.map((c) => ({ name: c.name, run: ({ store, ctx }) => c.run(store, ctx) })),
    async setUp() {
      const store = await factory();
      const { countSessions: count, countIndexed: indexed, writtenOutside: outside } = options;
      const ctx: CaseContext = {
        ttl: options.ttl ?? 150,
        maxValueBytes: options.maxValueBytes ?? 100 * 1024,
        countSessions: count && (async () => count(store)),
        countIndexed: indexed && (async () => indexed(store)),
        writtenOutside: outside && (async () => [...(await outside(store))]),
      };
      return { subject: { store, ctx }, tearDown: async () => void (await store.close?.()) };
    },
  };
}

/** Runs every case against fresh stores from `factory`, one after the other, and reports each by name. */
export function checkSessionStore<S extends SessionStore>(factory: SessionStoreFactory<S>, options: SessionStoreTestOptions<S> = {}): Promise<SessionStoreCaseResult[]> {
  return checkSuite(suiteOf(factory, options), options);
}

/** Registers one test per case with the given runner, inside one `describe` block. */
export function defineSessionStoreTests<S extends SessionStore>(runner: SessionStoreTestRunner, factory: SessionStoreFactory<S>, options: SessionStoreTestOptions<S> = {}): void {
  defineSuite(runner, suiteOf(factory, options), options, 'SessionStore conformance');
}
