/** `SessionModule.forRoot({ csrf: { ... } })`: how `CsrfGuard` finds a token and `@CsrfToken()` hands one out. */
export interface CsrfOptions {
  /** The request header that carries a token (fetch, XHR, GraphQL clients). Default `'x-csrf-token'`. */
  headerName?: string;
  /** The form field (urlencoded bodies) or JSON body field that carries a token. Default `'_csrf'`. */
  fieldName?: string;
  /**
   * A readable cookie holding a token, for single-page apps whose HTTP client copies it into a
   * header (Angular's `HttpClient` and axios do by default). Default: off. `true` gives the
   * cookie `XSRF-TOKEN` and the header `x-xsrf-token`.
   */
  cookie?: boolean | CsrfCookieOptions;
}

/**
 * The readable CSRF cookie for single-page apps (`csrf.cookie`): the app's script reads the token
 * from it and sends it back in a header.
 */
export interface CsrfCookieOptions {
  /** Default `'XSRF-TOKEN'` (what Angular and axios read). */
  name?: string;
  /** The header the client sends the cookie's value back in. Default `'x-xsrf-token'`. */
  headerName?: string;
  /** Default: the session cookie's path. */
  path?: string;
  /** Default: the session cookie's domain. */
  domain?: string;
}
