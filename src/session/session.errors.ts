import { HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { StandardSchemaV1 } from '../schema/standard-schema.js';

/**
 * The base of every error nest-sessions throws. It is an `HttpException`, so Nest answers with its
 * status, but the body a client sees is generic: the detailed `message` is for logs, never for the
 * client.
 */
export class SessionError extends HttpException {
  constructor(message: string, status: number = HttpStatus.INTERNAL_SERVER_ERROR, options?: { cause?: unknown; body?: Record<string, unknown> }) {
    super(options?.body ?? { statusCode: status, message: defaultBody(status) }, status, options?.cause === undefined ? undefined : { cause: options.cause });
    this.message = message;
    this.name = new.target.name;
  }

  /** The HTTP status, under the name GraphQL servers (Mercurius) and Node frameworks read. */
  get statusCode(): number {
    return this.getStatus();
  }
}

/** Bad options, thrown at startup; the message names the option and what to do. */
export class SessionConfigError extends SessionError {
  constructor(message: string) {
    super(message);
    // Thrown as the app starts, where no client is answered: printed as the error it is, without
    // the HTTP response fields (`statusCode: 500`) that would make a log reader look for a request.
    for (const key of Object.keys(this)) Object.defineProperty(this, key, { enumerable: false });
    if (this.cause === undefined) delete (this as { cause?: unknown }).cause;
  }
}

/** A value that would push a cookie-stored session over the browser's limit, thrown by `set`. */
export class SessionTooLargeError extends SessionError {
  constructor(
    message: string,
    /** The size the cookie would have had, in bytes. */
    readonly size: number,
    /** The limit it went over, in bytes. */
    readonly limit: number,
  ) {
    super(message);
  }
}

/**
 * A value the session cannot hold: one that JSON cannot represent (a function, a BigInt, a
 * circular object, a throwing `toJSON`), one the session's schema refuses, or an option out of
 * range (`setMaxAge(0.5)`). `path` names what was refused. Thrown where the value is given, before
 * anything is written (or, for what only the whole data can tell, as the response leaves).
 */
export class SessionValidationError extends SessionError {
  /** The schema's own issues, values included (not in the message, which is logged): for the app's code. */
  readonly issues: readonly StandardSchemaV1.Issue[] | undefined;

  constructor(
    message: string,
    /** The session key (or `maxAge`) whose value was refused; for a schema, the path of its first issue (`cart.items[0].price`; '' for a rule on the whole data). */
    readonly path: string,
    options?: { cause?: unknown; issues?: readonly StandardSchemaV1.Issue[] },
  ) {
    super(message, HttpStatus.INTERNAL_SERVER_ERROR, options?.cause === undefined ? undefined : { cause: options.cause });
    this.issues = options?.issues;
  }
}

/**
 * A change a socket cannot carry, thrown where it is made: over a WebSocket there is no response to
 * set a cookie, so a `CookieStore` session cannot change, `regenerate()` is refused (the browser would
 * never learn the new id), and a socket without a stored session cannot start one.
 */
export class SessionSocketError extends SessionError {
  constructor(message: string) {
    super(message);
  }
}

/**
 * A change to a session that nothing can save: one read in a GraphQL subscription, whose
 * connection has no response to carry a cookie. `operation` names the call that was refused
 * (`set`, `regenerate`, `flash.add`...). Thrown where the change is made, before anything changes.
 */
export class SessionReadOnlyError extends SessionSocketError {
  constructor(
    message: string,
    /** The call that was refused, e.g. `set` or `flash.get`. */
    readonly operation: string,
  ) {
    super(message);
  }
}

/**
 * A store that lacks a capability the call needs: listing or ending a user's sessions
 * (`SessionService.sessionsOf()`, `endSessionsOf()`, `endSession()`) on the cookie store, or on a
 * custom store without `listByUser()`. The message names the session, the store and what to use
 * instead.
 */
export class SessionSupportError extends SessionError {
  constructor(message: string) {
    super(message);
  }
}

/** The message of every store failure: clients (GraphQL's among them) may see it; the details are logged. */
export const CLIENT_STORE_MESSAGE = 'Session store unavailable';

/** The code a client recognises a store failure by, in a 503's body and in GraphQL's `extensions.code`. */
export const STORE_UNAVAILABLE_CODE = 'SESSION_STORE_UNAVAILABLE';

/** The body of the 503 a store failure answers with (Nest's exception filter, the response gate). */
export function storeUnavailableBody(): { statusCode: number; message: string; code: string } {
  return { statusCode: HttpStatus.SERVICE_UNAVAILABLE, message: 'Service Unavailable', code: STORE_UNAVAILABLE_CODE };
}

/**
 * A store that failed or did not answer in time; the client gets a 503 whose body carries
 * `code: 'SESSION_STORE_UNAVAILABLE'`, and the cause is logged. Apollo under Nest copies that body
 * into a GraphQL error's `extensions.originalError`.
 */
export class SessionStoreError extends SessionError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, HttpStatus.SERVICE_UNAVAILABLE, { cause: options?.cause, body: storeUnavailableBody() });
  }

  /**
   * For GraphQL clients, which get an error's `message` and `extensions` (graphql-js copies them
   * from the error a resolver throws): `code` `SESSION_STORE_UNAVAILABLE`, and `http.status` 503,
   * which Apollo Server answers with where the driver lets it. A new object each time: formatters
   * may change it.
   */
  get extensions(): {
    /** `'SESSION_STORE_UNAVAILABLE'`. */
    code: string;
    /** What Apollo Server answers with: status 503. */
    http: {
      /** 503. */
      status: number;
    };
  } {
    return { code: STORE_UNAVAILABLE_CODE, http: { status: HttpStatus.SERVICE_UNAVAILABLE } };
  }
}

function defaultBody(status: number): string {
  return status === (HttpStatus.SERVICE_UNAVAILABLE as number) ? 'Service Unavailable' : 'Internal Server Error';
}

const logger = new Logger('SessionModule');

/**
 * Logs a mistake in the app's use of sessions where it is thrown: as an `HttpException`, Nest
 * would answer it with a 500 and log nothing.
 */
export function reported<E extends SessionError>(error: E): E {
  logger.error(error.message);
  return error;
}

/**
 * What a class of ours that Nest instantiates in the app's own modules (the guard `@Session()`
 * binds, the interceptor, `CsrfGuard`) gets where the app never imported `SessionModule`: instead
 * of Nest's "can't resolve dependencies" naming our internals, the app stops at startup with this.
 */
export function requireSessionModule<T>(dependency: T | undefined, user: string): T {
  if (dependency !== undefined && dependency !== null) return dependency;
  throw new SessionConfigError(
    `${user} SessionModule.forRoot() (or forRootAsync()) in the imports of your root module: @Module({ imports: [SessionModule.forRoot()] }) export class AppModule {}. ` +
      'In a test, import it in Test.createTestingModule({ imports: [...] }), also for a guard of yours that injects SessionService. Let Nest create guards and interceptors (@UseGuards(TheGuard), { provide: APP_GUARD, useClass: TheGuard }), never with `new`',
  );
}
