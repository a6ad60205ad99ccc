import { createParamDecorator, Logger, SetMetadata, type ExecutionContext } from '@nestjs/common';
import { DEFAULT_SESSION } from '../session/session.constants.js';
import { SessionError } from '../session/session.errors.js';
import type { SessionState } from '../session/session.js';
import { RequestSessions } from '../lifecycle/request-sessions.js';
import { bindRoute } from '../nest/session.decorators.js';
import { graphqlSessions } from '../transports/request-context.js';
import { SKIP_CSRF_METADATA } from './csrf.constants.js';
import { CsrfProtection, type CsrfFormTarget } from './csrf.protection.js';

const logger = new Logger('SessionModule');
const tokenParam = createParamDecorator((form: CsrfFormTarget | undefined, context: ExecutionContext) => tokenFor(context, form));

/**
 * A masked CSRF token for the request's session, a new string on every call (each one valid), to
 * put in a form (`<input type="hidden" name="_csrf">`) or give a script for its `x-csrf-token`
 * header. Loads the session before the handler, on this route only; the session's secret is made
 * on first use. `@CsrfToken({ method, path })` gives a per-form token instead, valid only for a
 * request with that method (default `POST`) to that path (default: this request's path).
 */
export function CsrfToken(form?: CsrfFormTarget): ParameterDecorator {
  return (target, key, index) => {
    tokenParam(form)(target, key, index);
    bindRoute(target, key, DEFAULT_SESSION, '@CsrfToken()');
  };
}

/** Exempts a route or a controller from `CsrfGuard` (a webhook called by another server, with no session cookie). */
export function SkipCsrf(): MethodDecorator & ClassDecorator {
  return SetMetadata(SKIP_CSRF_METADATA, true);
}

function tokenFor(context: ExecutionContext, form: CsrfFormTarget | undefined): string | Promise<string> {
  const type = context.getType<string>();
  if (type === 'http') {
    const sessions = RequestSessions.find(context.switchToHttp().getRequest());
    const session = sessions?.loaded(DEFAULT_SESSION);
    if (sessions === undefined || session === undefined) {
      throw missing(context, 'no session was loaded for this parameter: a method decorator that replaces the method (wrapping, caching or retry decorators) drops the binding; put @UseSession() above it.');
    }
    return protectionOf(context, sessions).token(session, sessions, form);
  }
  const found = type === 'graphql' ? graphqlSessions(undefined, context.getArgByIndex(2)) : undefined;
  if (!(found instanceof RequestSessions)) {
    throw missing(context, type !== 'graphql'
      ? `CSRF tokens are supported in HTTP routes and GraphQL resolvers; a '${type}' handler has no session cookie.`
      : found === undefined
        ? 'this GraphQL context carries no HTTP request and response (req, res or reply), so there is no session to keep a CSRF secret in.'
        : 'an operation over a GraphQL WebSocket reads its session read-only, so no CSRF secret can be kept there; hand out tokens over HTTP.');
  }
  const sessions = found;
  const protection = protectionOf(context, sessions);
  const loaded = sessions.loaded(DEFAULT_SESSION) ?? sessions.load(DEFAULT_SESSION);
  return loaded instanceof Promise
    ? loaded.then((session: SessionState) => protection.token(session, sessions, form))
    : protection.token(loaded, sessions, form);
}

function protectionOf(context: ExecutionContext, sessions: RequestSessions): CsrfProtection {
  const protection = CsrfProtection.of(sessions.engine);
  if (protection === undefined) throw missing(context, 'SessionModule.forRoot() is not imported in this app.');
  return protection;
}

function missing(context: ExecutionContext, reason: string): SessionError {
  const error = new SessionError(`${context.getClass().name}.${context.getHandler().name}: @CsrfToken(): ${reason}`);
  logger.error(error.message);
  return error;
}
