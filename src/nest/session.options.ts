import type { ModuleMetadata, InjectionToken, OptionalFactoryDependency } from '@nestjs/common';
import type { AnySessionStore } from '../stores/session-store.interface.js';
import type { CsrfOptions } from '../csrf/csrf.options.js';
import type { SessionMigrationSource } from '../migration/session-migration.source.js';
import type { StandardSchemaV1 } from '../schema/standard-schema.js';

/** Attributes of a session cookie. Durations are in milliseconds. */
export interface SessionCookieOptions {
  /** Cookie name. Default `'sid'` for the default session, the session's own name for the others. */
  name?: string;
  /** Default `'/'`. */
  path?: string;
  /** Default: none (the cookie goes back to the exact host that set it). */
  domain?: string;
  /** Default `true`: scripts in the page cannot read the cookie. */
  httpOnly?: boolean;
  /**
   * Default: `true` with `NODE_ENV=production` (read when the module starts), else `'auto'`; `true`
   * everywhere for `sameSite: 'none'` and `__Host-` / `__Secure-` names. `'auto'` sets `Secure` on
   * requests that came over HTTPS, as the app sees them (Express `trust proxy`, Fastify
   * `trustProxy`) or as a proxy says (`X-Forwarded-Proto: https`, trusted or not).
   */
  secure?: boolean | 'auto';
  /** Default `'lax'`. `'none'` requires `secure: true`. */
  sameSite?: 'lax' | 'strict' | 'none';
  /**
   * Lifetime of the cookie, in ms. Default: none, a browser-session cookie that is gone when the
   * browser closes. `session.setMaxAge()` overrides it for one session.
   */
  maxAge?: number;
  /** Adds `Partitioned` (CHIPS). Default `false`. */
  partitioned?: boolean;
  /** Adds `Priority`. Default: none. */
  priority?: 'low' | 'medium' | 'high';
}

/** What every session (the default one and each named one) can set for itself. */
export interface SessionOptions {
  /** Where sessions live. Default: a new `MemoryStore`. */
  store?: AnySessionStore;
  /** Attributes of the session's cookie: its name, `Path`, `Domain`, `Secure`, `SameSite`, lifetime. */
  cookie?: SessionCookieOptions;
  /**
   * Signs the id cookie with HMAC-SHA256: a string of at least 32 characters, or a list whose
   * first entry signs and all entries verify (key rotation); older entries that are `undefined`
   * (an unset `process.env.OLD_SECRET`) are left out. Default: a random secret per process, with a
   * warning (sessions do not survive a restart and cannot be shared); with `NODE_ENV=production`,
   * required wherever it signs an id (a server-side store), or the app does not start.
   */
  secret?: string | readonly (string | undefined)[];
  /** Sliding expiry, in ms: a session unused for this long is gone. Default: `cookie.maxAge`, else 24 hours. */
  idleTimeout?: number;
  /** Hard limit, in ms, since the session was created (or last regenerated), whatever its activity. Default: none. */
  absoluteTimeout?: number;
  /**
   * What a session tied to a user (`session.setUser()`) records about the device it is used from,
   * refreshed whenever the session is written, for `SessionService.sessionsOf()` to show. Default:
   * both. `userAgent`: the `User-Agent` header (up to 512 characters). `ip`: the client's address
   * as the app sees it (Express `req.ip`, Fastify `request.ip`: behind a proxy, only what the app's
   * `trust proxy` / `trustProxy` setting trusts). `false`: neither.
   */
  device?:
    | {
        /** Records the `User-Agent` header. Default `true`. */
        userAgent?: boolean;
        /** Records the client's IP address. Default `true`. */
        ip?: boolean;
      }
    | false;
  /**
   * Ends a user's sessions on every store, the cookie store included: the app keeps a version per
   * user (a number or string it changes to sign the user out everywhere, e.g. after a password
   * change); a session tied with `setUser()` records the version of that moment (or the one given
   * as `setUser(id, { version })`, read with the password hash), and a later request whose
   * session's version differs from the one this function returns gets a fresh session. Called once
   * per request that loads a tied session, and once when a session is tied without a version.
   * `undefined` (a user unknown to the app) ends the session too. A function that throws or
   * rejects gives the request a 503, like a failed store.
   */
  userVersion?: (userId: string) => string | number | undefined | PromiseLike<string | number | undefined>;
  /**
   * A Standard Schema (zod, valibot, arktype...) the session's data must match, as an object of
   * keys. A stored session that does not match reads as no session; `set()` of a value that does
   * not fit throws `SessionValidationError`. Not inherited: each named session has its own or none.
   */
  schema?: StandardSchemaV1;
}

/**
 * The options of `SessionModule.forRoot()` (or what `forRootAsync()`'s factory returns): those of the
 * default session, and the module-wide ones. Every option has a default: `forRoot()` alone works.
 */
export interface SessionModuleOptions extends SessionOptions {
  /**
   * More sessions per request, each with its own cookie and store, read with `@Session(name)`.
   * Each inherits `secret`, `idleTimeout`, `absoluteTimeout` and the cookie attributes (all but
   * the name) of the default session unless it sets its own.
   */
  sessions?: Record<string, SessionOptions>;
  /**
   * Where `SessionService.current()` works. `'route'` (default): on routes marked `@UseSession()`
   * (sessions asked for by `@Session()` / `@Flash()` are loaded by a per-route guard, the cheapest
   * hook). `'global'`: `SessionInterceptor` runs on every route and loads the default session there,
   * so `current()` works everywhere; every route then pays for Nest's interceptor.
   */
  interceptor?: 'route' | 'global';
  /** How long, in ms, a store call may take before the request gets a 503. Default 5000. */
  storeTimeout?: number;
  /**
   * CSRF tokens (`CsrfGuard`, `@CsrfToken()`): where a token is looked for, and the readable cookie
   * for single-page apps. The guard and the token work without it, with the defaults.
   */
  csrf?: CsrfOptions;
  /**
   * Sessions of the library the app comes from, moved into the default session the first time
   * their cookie comes back: `expressSessionReader({ secret, redis })` from
   * `nest-sessions/express-session`. Remove it once the old sessions' longest lifetime has passed.
   */
  migrateFrom?: SessionMigrationSource;
  /**
   * OpenTelemetry: a span for each call to a session store (`session.read`, `session.write`,
   * `session.touch`, `session.destroy`, `session.list`) and counters of loads, saves, failed saves
   * and responses replaced by an error, through the global tracer and meter providers (start the
   * SDK before the app). Needs `@opentelemetry/api` (an optional peer dependency). No attribute
   * carries a session id, a cookie or a user id. Default `false`: the package is never loaded, and
   * a store call costs one check more.
   */
  telemetry?: boolean;
}

/**
 * The options of `SessionModule.forRootAsync()`: a factory that returns the module's options, with
 * the providers it needs (`ConfigService`), as Nest's own `forRootAsync()` modules take them.
 */
export interface SessionModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Returns the module's options (or a promise of them); called with the providers named in `inject`. */
  useFactory: (...args: any[]) => SessionModuleOptions | Promise<SessionModuleOptions>;
  /** The providers given to `useFactory`, in order (from the module itself or from `imports`). */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  /** Known before the factory runs, since it decides how routes are bound: see `SessionModuleOptions.interceptor`. */
  interceptor?: 'route' | 'global';
}
