/**
 * `nest-sessions/testing`: the conformance suites any session store can run, with any test runner,
 * and what an app's own tests need (`SESSION_MODULE_OPTIONS`, to replace the module's options).
 *
 * @module nest-sessions/testing
 */
export { checkSessionStore, defineSessionStoreTests, sessionStoreCaseNames } from './store-conformance.js';
export type { SessionStoreFactory, SessionStoreTestOptions } from './store-conformance.js';
export { checkClientSessionStore, clientSessionStoreCaseNames, defineClientSessionStoreTests } from './client-store-conformance.js';
export type { ClientSessionStoreFactory, ClientSessionStoreTestOptions } from './client-store-conformance.js';
export type { SessionStoreCaseResult, SessionStoreTestRunner } from './case-runner.js';
export { SESSION_MODULE_OPTIONS } from '../session/session.constants.js';
