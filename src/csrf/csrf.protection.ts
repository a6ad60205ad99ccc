import { Inject, Injectable, Logger, type ExecutionContext } from '@nestjs/common';
import { serialize } from 'cookie';
import { CSRF_SECRET_KEY, DEFAULT_SESSION, SESSION_MODULE_OPTIONS } from '../session/session.constants.js';
import { SessionConfigError } from '../session/session.errors.js';
import type { SessionState } from '../session/session.js';
import { SessionEngine } from '../lifecycle/session-engine.js';
import { RequestSessions, type CompanionCookie, type ResponseCookieSource } from '../lifecycle/request-sessions.js';
import type { SessionModuleOptions } from '../nest/session.options.js';
import { requestOf, sessionsOf } from '../transports/request-context.js';
import {
  DEFAULT_CSRF_COOKIE,
  DEFAULT_CSRF_COOKIE_HEADER,
  DEFAULT_CSRF_FIELD,
  DEFAULT_CSRF_HEADER,
  SAFE_METHODS,
  SKIP_CSRF_METADATA,
} from './csrf.constants.js';
import { CsrfError } from './csrf.error.js';
import type { CsrfOptions } from './csrf.options.js';
import { formToken, maskToken, newCsrfSecret, normalPath, sameToken, secretBytes, sessionToken, unmaskedTokenMatches, unmaskToken } from './csrf-token.js';
import { PerRoute } from '../nest/route-info.js';

/** A form a per-form token is for: `@CsrfToken({ method: 'POST', path: '/account/delete' })`. */
export interface CsrfFormTarget {
  /** Default `'POST'`. */
  method?: string;
  /** The path the form is sent to. Default: the path of the request that renders it. */
  path?: string;
}

interface CsrfCookie {
  readonly name: string;
  readonly header: string;
  /** `; Path=/; SameSite=Lax; Secure` and so on: never `HttpOnly`, since scripts must read it. */
  readonly attributes: string;
  readonly attributesInsecure: string;
}

/** The request passed the check (a second guard, or the next mutation of one GraphQL request, need not check again). */
const kVerified = Symbol('nest-sessions:csrf-verified');
/** A token was handed out on this request: the readable cookie goes out with it. */
const kIssued = Symbol('nest-sessions:csrf-issued');

/** The `Max-Age` attribute of a `Set-Cookie` value the engine wrote. */
const MAX_AGE = /; Max-Age=\d+/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The protection of each app, for the `@CsrfToken()` parameter, which has no injector. */
const byEngine = new WeakMap<SessionEngine, CsrfProtection>();

/**
 * CSRF synchronizer tokens bound to the default session: what `CsrfGuard` checks and what
 * `@CsrfToken()` hands out. The secret is made when a token is first asked for, so routes that
 * never render a form create no session.
 */
@Injectable()
export class CsrfProtection implements ResponseCookieSource, CompanionCookie {
  private readonly header: string;
  private readonly field: string;
  private readonly cookie: CsrfCookie | undefined;
  /** Controller → handler → `@SkipCsrf()`: an inherited handler serves controllers that may differ. */
  /** Routes exempted by `@SkipCsrf()`, on the handler or its controller. */
  private readonly exempt = new PerRoute<boolean>(
    (handler, controller) => Reflect.getMetadata(SKIP_CSRF_METADATA, handler) === true || Reflect.getMetadata(SKIP_CSRF_METADATA, controller) === true,
  );
  private readonly logger = new Logger('SessionModule');

  constructor(
    @Inject(SESSION_MODULE_OPTIONS) options: SessionModuleOptions | undefined,
    readonly engine: SessionEngine,
  ) {
    const csrf = options?.csrf ?? {};
    if (csrf === null || typeof csrf !== 'object') throw new SessionConfigError(`csrf must be an object of CSRF options, e.g. csrf: { cookie: true }`);
    this.header = headerName(csrf.headerName, 'csrf.headerName', DEFAULT_CSRF_HEADER);
    const field = csrf.fieldName ?? DEFAULT_CSRF_FIELD;
    if (typeof field !== 'string' || field === '' || field === '__proto__') {
      throw new SessionConfigError(`csrf.fieldName must be a non-empty string (the form or JSON field that carries the token), got ${describe(field)}`);
    }
    this.field = field;
    this.cookie = readableCookie(csrf, options ?? {}, engine);
    if (this.cookie !== undefined && this.cookie.header === this.header) {
      throw new SessionConfigError(`csrf.cookie.headerName and csrf.headerName are both '${this.header}'; leave one at its default`);
    }
    byEngine.set(engine, this);
    // The readable cookie lives as long as the session's: set again whenever that one is.
    if (this.cookie !== undefined) engine.companion = this;
  }

  /** The name of the readable cookie (cookie mode). */
  get name(): string {
    return this.cookie!.name;
  }

  /** The protection of the app `engine` belongs to. */
  static of(engine: SessionEngine): CsrfProtection | undefined {
    return byEngine.get(engine);
  }

  /**
   * `CsrfGuard`: lets safe methods and GraphQL queries through; anything else needs a token valid
   * for the request's session, or throws `CsrfError` (a 403).
   */
  check(context: ExecutionContext): boolean | Promise<boolean> {
    const type = context.getType<string>();
    let req: any;
    if (type === 'http') {
      req = context.switchToHttp().getRequest();
      if (SAFE_METHODS.has(req.method as string)) return true;
    } else if (type === 'graphql') {
      // A query may come by POST and a mutation by any method: the operation decides.
      const info = context.getArgByIndex<{ operation?: { operation?: unknown } } | undefined>(3);
      if (info?.operation?.operation !== 'mutation') return true;
      req = requestOf(context);
      // A mutation with no HTTP request behind it (over a socket) cannot show a token: refused.
      if (req === undefined || req === null) return this.refuse('missing');
    } else {
      // Gateway messages (`ws`) and microservices (`rpc`): no request a cross-site form can send, and
      // nowhere for a token to ride; a socket's defence is its handshake's Origin check.
      return true;
    }
    if (req[kVerified] === true || this.skipped(context)) return true;
    let value: unknown;
    let inBody = false;
    try {
      value = this.carriedHeader(req);
      const body = req.body as Record<string, unknown> | null | undefined;
      inBody = body !== null && typeof body === 'object' && Object.hasOwn(body, this.field);
      if (value === undefined && inBody) value = body![this.field];
    } catch {
      return this.refuse('malformed'); // a body whose getters throw
    }
    if (value === undefined) return this.refuse('missing');
    const token = unmaskToken(value);
    if (token === undefined) return this.refuse('malformed');
    const sessions = sessionsOf(this.engine, context);
    // A GraphQL context without its response, or an operation over a GraphQL WebSocket (read-only): no session to check against.
    if (!(sessions instanceof RequestSessions)) return this.refuse('no-secret');
    const loaded = sessions.load(DEFAULT_SESSION);
    const verify = (session: SessionState): boolean => {
      const secret = secretBytes(session.getInternal(CSRF_SECRET_KEY));
      if (secret === undefined) return this.refuse('no-secret');
      if (!unmaskedTokenMatches(token, secret, String(req.method), pathOf(req))) return this.refuse('mismatch');
      req[kVerified] = true;
      // Out of the way of DTO validation (`forbidNonWhitelisted`): the handler has no use for it,
      // whether the token came from it or from the header.
      if (inBody) {
        try {
          delete (req.body as Record<string, unknown>)[this.field];
        } catch {
          // a frozen body keeps it: harmless
        }
      }
      if (this.cookie !== undefined) sessions.cookieSource = this;
      return true;
    };
    return loaded instanceof Promise ? loaded.then(verify) : verify(loaded);
  }

  /**
   * A masked token for `session` (the default session of `sessions`' request): for the whole
   * session, or for one form. Makes the session's secret when it has none.
   */
  token(session: SessionState, sessions: RequestSessions, form?: CsrfFormTarget): string {
    const secret = this.secretOf(session);
    const token = form === undefined ? sessionToken(secret) : formToken(secret, form.method ?? 'POST', form.path ?? pathOf(sessions.req));
    if (this.cookie !== undefined) {
      sessions.req[kIssued] = true;
      sessions.cookieSource = this;
    }
    return maskToken(token);
  }

  /**
   * As the response leaves (cookie mode, on requests the guard passed or that handed out a
   * token): the readable cookie, when the request's one is missing or stale (the secret changed with
   * `regenerate()` or `destroy()`), or always where `@CsrfToken()` was asked. A secret dropped by
   * `regenerate()` or `destroy()` is made anew here, so the client's next request has a valid token.
   */
  cookieForResponse(sessions: RequestSessions): string | undefined {
    const cookie = this.cookie!;
    const session = sessions.loaded(DEFAULT_SESSION);
    if (session === undefined) return undefined;
    const token = sessionToken(this.secretOf(session));
    if (sessions.req[kIssued] !== true) {
      const incoming = unmaskToken(sessions.cookie(cookie.name));
      if (incoming !== undefined && sameToken(incoming, token)) return undefined;
    }
    return this.readableCookie(sessions, session, token, maxAgeOf(session));
  }

  /**
   * As the response leaves (cookie mode): the session's cookie is set (created, or sent again with a
   * sliding `Max-Age`), so the readable cookie is set again with the same lifetime, and never
   * outlives it nor expires before it. Nothing for a session that has no secret (no token handed out).
   * A session cookie being cleared (the session destroyed) clears the readable one the request
   * carried: its secret is gone, so the token would only be refused.
   */
  withSessionCookie(sessions: RequestSessions, session: SessionState, sessionCookie: string): string | undefined {
    if (sessionCookie.startsWith(`${session.definition.cookieName}=;`)) {
      return sessions.cookie(this.cookie!.name) === undefined ? undefined : this.readableCookie(sessions, session, undefined, CLEARED);
    }
    const secret = secretBytes(session.getInternal(CSRF_SECRET_KEY));
    if (secret === undefined) return undefined;
    return this.readableCookie(sessions, session, sessionToken(secret), MAX_AGE.exec(sessionCookie)?.[0] ?? '');
  }

  /** The readable cookie carrying `token`, or clearing it (no token). */
  private readableCookie(sessions: RequestSessions, session: SessionState, token: Buffer | undefined, maxAge: string): string {
    const cookie = this.cookie!;
    const attributes = session.definition.secureAuto && !sessions.isSecure() ? cookie.attributesInsecure : cookie.attributes;
    return `${cookie.name}=${token === undefined ? '' : maskToken(token)}${maxAge}${attributes}`;
  }

  private secretOf(session: SessionState): Buffer {
    const secret = secretBytes(session.getInternal(CSRF_SECRET_KEY));
    if (secret !== undefined) return secret;
    const text = newCsrfSecret();
    session.setInternal(CSRF_SECRET_KEY, text);
    return Buffer.from(text, 'base64url');
  }

  private carriedHeader(req: any): unknown {
    const headers = req.headers as Record<string, unknown> | undefined;
    if (headers === undefined || headers === null) return undefined;
    const value = headers[this.header];
    if (value !== undefined || this.cookie === undefined) return value;
    return headers[this.cookie.header];
  }

  private skipped(context: ExecutionContext): boolean {
    return this.exempt.get(context.getHandler(), context.getClass());
  }

  private refuse(reason: CsrfError['reason']): never {
    // Refusals are what an attack looks like: not worth an error line each, but there for debugging.
    this.logger.debug?.(`CSRF check failed: ${reason}`);
    throw new CsrfError(reason);
  }
}

/** What clears the readable cookie, as the session cookie is cleared. */
const CLEARED = '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT';

/**
 * The `Max-Age` attribute the session's cookie has (or gets, for a new session): its lifetime, capped
 * by when the session expires (an absolute timeout), as the engine writes it; none for a
 * browser-session cookie.
 */
function maxAgeOf(session: SessionState): string {
  const maxAge = session.meta.maxAge ?? session.definition.cookieMaxAge;
  if (maxAge === undefined) return '';
  return `; Max-Age=${Math.max(0, Math.ceil(Math.min(maxAge, session.expiresAt.getTime() - Date.now()) / 1000))}`;
}

/** The path of a request as per-form tokens are bound to it. */
function pathOf(req: any): string {
  const url = (req?.originalUrl ?? req?.url) as unknown;
  return normalPath(typeof url === 'string' ? url : '/');
}

function headerName(value: unknown, option: string, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !HEADER_NAME.test(value.toLowerCase())) {
    throw new SessionConfigError(`${option} must be an HTTP header name (letters, digits and !#$%&'*+-.^_\`|~), got ${describe(value)}`);
  }
  return value.toLowerCase();
}

function readableCookie(csrf: CsrfOptions, options: SessionModuleOptions, engine: SessionEngine): CsrfCookie | undefined {
  const given = csrf.cookie;
  if (given === undefined || given === false) return undefined;
  if (given !== true && (given === null || typeof given !== 'object')) {
    throw new SessionConfigError(`csrf.cookie must be true, false or an object ({ name, headerName, path, domain }), got ${describe(given)}`);
  }
  const own = given === true ? {} : given;
  const name = own.name ?? DEFAULT_CSRF_COOKIE;
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) {
    throw new SessionConfigError(`csrf.cookie.name ${describe(name)} is not a valid cookie name (letters, digits and !#$%&'*+-.^_\`|~ only)`);
  }
  for (const def of engine.definitions.values()) {
    if (def.cookieName === name) throw new SessionConfigError(`csrf.cookie.name '${name}' is the cookie of session '${def.name}'; choose another name`);
  }
  const session = options.cookie ?? {};
  // A __Host- or __Secure- name makes this cookie Secure on every request, as it does a session cookie's.
  const prefixed = name.startsWith('__Host-') || name.startsWith('__Secure-');
  // Otherwise Secure as the session cookie is, default included.
  const secure = session.secure === undefined && prefixed ? true : engine.definition(DEFAULT_SESSION).secure;
  const path = own.path ?? session.path ?? '/';
  const domain = own.domain ?? session.domain;
  if (name.startsWith('__Host-') && (secure !== true || path !== '/' || domain !== undefined)) {
    throw new SessionConfigError(`csrf.cookie.name '${name}': a __Host- cookie needs the session cookie's secure: true, path '/' and no domain`);
  }
  if (name.startsWith('__Secure-') && secure === false) {
    throw new SessionConfigError(`csrf.cookie.name '${name}': a __Secure- cookie cannot go with the session cookie's secure: false`);
  }
  const attributes = (withSecure: boolean): string => {
    try {
      return serialize(name, 'x', { path, domain, sameSite: session.sameSite ?? 'lax', secure: withSecure, partitioned: session.partitioned }).slice(name.length + 2);
    } catch (error) {
      throw new SessionConfigError(`csrf.cookie: ${(error as Error).message}`);
    }
  };
  return {
    name,
    header: headerName(own.headerName, 'csrf.cookie.headerName', DEFAULT_CSRF_COOKIE_HEADER),
    attributes: attributes(secure !== false),
    attributesInsecure: attributes(prefixed),
  };
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (value === null || value === undefined) return String(value);
  return typeof value === 'object' ? 'an object' : `${value as string}`;
}
