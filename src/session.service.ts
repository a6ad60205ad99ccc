import { Injectable, type ExecutionContext } from '@nestjs/common';
import { RequestSessions } from './request-sessions.js';
import { DEFAULT_SESSION } from './session.constants.js';
import { SessionEngine } from './session-engine.js';
import { SessionError } from './session.errors.js';
import type { Session, SessionData } from './session.interface.js';
import type { AnySessionStore } from './session-store.interface.js';

/** Sessions for guards, pipes, filters, middleware and services. */
@Injectable()
export class SessionService {
  constructor(private readonly engine: SessionEngine) {}

  /**
   * The session of a request, loaded once: a guard, the handler's `@Session()` and an exception
   * filter all get the same object, and whatever any of them changes is saved as the response
   * leaves. Pass the `ExecutionContext` or `ArgumentsHost` (on Fastify the request alone does not
   * lead to its response).
   */
  async load<T = SessionData>(contextOrRequest: ExecutionContext | object, name: string = DEFAULT_SESSION): Promise<Session<T>> {
    const [req, res] = requestAndResponse(contextOrRequest);
    this.engine.definition(name);
    return (await RequestSessions.of(this.engine, req, res).load(name)) as Session<any>;
  }

  /**
   * The session of the request being served, from anywhere in its call tree, on routes marked
   * `@UseSession()` (or every route with `interceptor: 'global'`); undefined elsewhere, and in
   * guards, which run before interceptors.
   */
  current<T = SessionData>(name: string = DEFAULT_SESSION): Session<T> | undefined {
    return this.engine.context.getStore()?.loaded(name) as Session<any> | undefined;
  }

  /** The store of a session, e.g. to destroy sessions outside a request. */
  store(name: string = DEFAULT_SESSION): AnySessionStore {
    return this.engine.definition(name).store;
  }
}

function requestAndResponse(value: ExecutionContext | object): [any, any] {
  const context = value as Partial<ExecutionContext>;
  if (typeof context.switchToHttp === 'function') {
    const http = context.switchToHttp();
    return [http.getRequest(), http.getResponse()];
  }
  const req = value as { res?: unknown };
  if (req.res === undefined) {
    throw new SessionError('SessionService.load(request): this request does not lead to its response; pass the ExecutionContext instead (a guard has it as its first argument)');
  }
  return [req, req.res];
}
