/** Handler or controller metadata: `@SkipCsrf()`. */
export const SKIP_CSRF_METADATA = 'nest-sessions:skip-csrf';

/** Methods that must not change state (RFC 9110): `CsrfGuard` lets them through unchecked. */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

export const DEFAULT_CSRF_HEADER = 'x-csrf-token';
export const DEFAULT_CSRF_FIELD = '_csrf';
export const DEFAULT_CSRF_COOKIE = 'XSRF-TOKEN';
export const DEFAULT_CSRF_COOKIE_HEADER = 'x-xsrf-token';
