import { randomBytes } from 'node:crypto';
import type { ClientSessionStore } from '../stores/session-store.interface.js';
import { checkSuite, defineSuite, type SessionStoreCaseResult, type SessionStoreTestRunner, type Suite, type SuiteOptions } from './case-runner.js';
import { clientStoreCases, type ClientCaseContext } from './client-store-cases.js';

/**
 * Makes a fresh client-side store from a list of secrets: the first seals, all open (key rotation).
 * The suite calls it for every case, several times for the secret and rotation cases.
 */
export type ClientSessionStoreFactory<S extends ClientSessionStore = ClientSessionStore> = (secrets: readonly string[]) => S | Promise<S>;

/** The options of `defineClientSessionStoreTests()` and `checkClientSessionStore()`. */
export interface ClientSessionStoreTestOptions extends SuiteOptions {
  /** Makes a new secret the factory accepts. Default: 48 random base64url characters. */
  secret?: () => string;
  /** The largest session data the store can seal, in bytes of JSON text; sizes the large-value and many-keys case. Default 2048. */
  maxValueBytes?: number;
  /** The short lifetime, in ms, of the value the expiry case waits out. Default 150. */
  ttl?: number;
}

/** Names of every client-store case, in the order they run. */
export const clientSessionStoreCaseNames: readonly string[] = clientStoreCases.map((c) => c.name);

function suiteOf<S extends ClientSessionStore>(factory: ClientSessionStoreFactory<S>, options: ClientSessionStoreTestOptions): Suite<ClientCaseContext> {
  const secret = options.secret ?? (() => randomBytes(36).toString('base64url'));
  return {
    namesExport: 'clientSessionStoreCaseNames',
    cases: clientStoreCases,
    async setUp() {
      const made: ClientSessionStore[] = [];
      const make = async (secrets: readonly string[]): Promise<ClientSessionStore> => {
        const store = await factory([...secrets]);
        made.push(store);
        return store;
      };
      const ctx: ClientCaseContext = { store: await make([secret()]), make, secret, ttl: options.ttl ?? 150, maxValueBytes: options.maxValueBytes ?? 2048 };
      return {
        subject: ctx,
        async tearDown() {
          for (const store of made) await store.close?.();
        },
      };
    },
  };
}

/** Runs every client-store case against stores from `factory`, one after the other, and reports each by name. */
export function checkClientSessionStore<S extends ClientSessionStore>(factory: ClientSessionStoreFactory<S>, options: ClientSessionStoreTestOptions = {}): Promise<SessionStoreCaseResult[]> {
  return checkSuite(suiteOf(factory, options), options);
}

/** Registers one test per client-store case with the given runner, inside one `describe` block. */
export function defineClientSessionStoreTests<S extends ClientSessionStore>(runner: SessionStoreTestRunner, factory: ClientSessionStoreFactory<S>, options: ClientSessionStoreTestOptions = {}): void {
  defineSuite(runner, suiteOf(factory, options), options, 'ClientSessionStore conformance');
}
