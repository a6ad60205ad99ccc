/**
 * `nest-sessions/store`: what an author of a session back-end needs. The store contracts
 * (`SessionStore` for a server-side store, `ClientSessionStore` for one that keeps the session in
 * the cookie), the records they hold, the key escaping for back-ends that cannot hold any string,
 * and the contract of a source that `forRoot({ migrateFrom })` moves old sessions from. An app needs
 * none of it: it passes a store to `SessionModule.forRoot({ store })` from `nest-sessions`.
 *
 * @module nest-sessions/store
 */
export type {
  SessionStore,
  ClientSessionStore,
  SessionRecord,
  SessionPatch,
  SessionMeta,
  SessionUser,
  UserSessionEntry,
  MaybePromise,
} from './stores/session-store.interface.js';
export { encodeStoreKey, decodeStoreKey } from './stores/session-store.interface.js';
export type { SessionMigrationSource, FoundSession, FoundRecord } from './migration/session-migration.source.js';
