export { SessionModule } from './session.module.js';
export { Session, Flash, UseSession } from './session.decorators.js';
export type { SessionData, FlashMessages, SessionKey, SessionValue } from './session.interface.js';
export { SessionService } from './session.service.js';
export { SessionInterceptor } from './session.interceptor.js';
export type { SessionModuleOptions, SessionModuleAsyncOptions, SessionOptions, SessionCookieOptions } from './session.options.js';
export type {
  SessionStore,
  ClientSessionStore,
  AnySessionStore,
  SessionRecord,
  SessionPatch,
  SessionMeta,
  MaybePromise,
} from './session-store.interface.js';
export { encodeStoreKey, decodeStoreKey } from './session-store.interface.js';
export { SessionError, SessionConfigError, SessionTooLargeError, SessionStoreError, SessionValidationError } from './session.errors.js';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.store.js';
export { CookieStore, type CookieStoreOptions } from './stores/cookie.store.js';
export { FileStore, type FileStoreOptions } from './stores/file.store.js';
export { SESSION_MODULE_OPTIONS, DEFAULT_SESSION } from './session.constants.js';
