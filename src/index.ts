/**
 * `nest-sessions`: what an app uses. The module, the decorators and the `Session` and `Flash` types,
 * `SessionService`, the built-in stores, the errors and CSRF protection. What a store author needs is
 * in `nest-sessions/store`; the conformance kit and test helpers in `nest-sessions/testing`.
 *
 * @module nest-sessions
 */
export { SessionModule } from './nest/session.module.js';
export { Session, Flash, UseSession } from './nest/session.decorators.js';
export type { SessionData, FlashMessages, SessionKey, SessionValue, SetUserOptions } from './session/session.interface.js';
export type { SessionOf, SessionDataOf } from './schema/schema.types.js';
export { SessionService } from './nest/session.service.js';
export type { UserSessionInfo, UserSessionsOptions, UserOrSession, EndSessionOptions, EndSessionsOptions } from './user-sessions/user-sessions.js';
export { SessionInterceptor } from './nest/session.interceptor.js';
export type { SessionModuleOptions, SessionModuleAsyncOptions, SessionOptions, SessionCookieOptions } from './nest/session.options.js';
export type { AnySessionStore } from './stores/session-store.interface.js';
export { SessionError, SessionConfigError, SessionTooLargeError, SessionStoreError, SessionValidationError, SessionSocketError, SessionReadOnlyError, SessionSupportError } from './session/session.errors.js';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.store.js';
export { CookieStore, type CookieStoreOptions } from './stores/cookie.store.js';
export { FileStore, type FileStoreOptions } from './stores/file.store.js';
export { CsrfGuard } from './csrf/csrf.guard.js';
export { CsrfToken, SkipCsrf } from './csrf/csrf.decorators.js';
export { CsrfError, CSRF_ERROR_CODE, type CsrfFailure } from './csrf/csrf.error.js';
export type { CsrfOptions, CsrfCookieOptions } from './csrf/csrf.options.js';
export type { CsrfFormTarget } from './csrf/csrf.protection.js';
