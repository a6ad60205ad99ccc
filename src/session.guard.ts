import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { RequestSessions } from './request-sessions.js';
import { SessionEngine } from './session-engine.js';

const granted = (): true => true;

/**
 * Loads the sessions a route's `@Session()` and `@Flash()` parameters ask for, before the handler
 * runs. Bound by those decorators to their own route only: a route that never asks runs none of
 * it. It never refuses a request; the response saves what changed as it leaves.
 */
@Injectable()
export class SessionLoader implements CanActivate {
  constructor(private readonly engine: SessionEngine) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const route = this.engine.route(context.getHandler(), context.getClass());
    const http = context.switchToHttp();
    const loading = RequestSessions.of(this.engine, http.getRequest(), http.getResponse()).loadAll(route.names);
    return loading === undefined ? true : loading.then(granted);
  }
}
