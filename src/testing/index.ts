/** `nest-sessions/testing`: the conformance suites any session store can run, with any test runner. */
export { checkSessionStore, defineSessionStoreTests, sessionStoreCaseNames } from './store-conformance.js';
export type { SessionStoreFactory, SessionStoreTestOptions } from './store-conformance.js';
export { checkClientSessionStore, clientSessionStoreCaseNames, defineClientSessionStoreTests } from './client-store-conformance.js';
export type { ClientSessionStoreFactory, ClientSessionStoreTestOptions } from './client-store-conformance.js';
export type { SessionStoreCaseResult, SessionStoreTestRunner } from './case-runner.js';
