/** `nest-sessions/testing`: the conformance suite any SessionStore can run, with any test runner. */
export {
  checkSessionStore,
  clientStoreAsSessionStore,
  defineSessionStoreTests,
  sessionStoreCaseNames,
} from './store-conformance.js';
export type {
  ClientStoreJar,
  SessionStoreCaseResult,
  SessionStoreFactory,
  SessionStoreTestOptions,
  SessionStoreTestRunner,
} from './store-conformance.js';
