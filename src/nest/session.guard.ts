import { Injectable, Optional, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { sessionsOf } from '../transports/request-context.js';
import { SessionEngine } from '../lifecycle/session-engine.js';
import { requireSessionModule } from '../session/session.errors.js';
import { GatewayConnection } from '../gateways/gateway-connection.js';

const granted = (): true => true;

/**
 * Loads the sessions a route's `@Session()` and `@Flash()` parameters ask for, before the handler
 * runs: an HTTP route, or a GraphQL query or mutation (a field resolver too where
 * `fieldResolverEnhancers` includes guards). Bound by those decorators to their own route only: a
 * route that never asks runs none of it. It never refuses a request; the response saves what
 * changed as it leaves. Where there is no HTTP request (`ws`, `rpc`), it lets the request through.
 * On a gateway's message handler, it marks the socket for the interceptor that loads and saves.
 */
@Injectable()
export class SessionLoader implements CanActivate {
  private readonly engine: SessionEngine;

  constructor(@Optional() engine: SessionEngine) {
    this.engine = requireSessionModule(engine, '@Session() and @Flash() need');
  }

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const sessions = sessionsOf(this.engine, context);
    if (sessions === undefined) {
      // A gateway's message: the socket's sessions are loaded by the interceptor bound to the
      // handler, which finds them (and this app's engine) on the client from here on.
      if (context.getType() === 'ws') GatewayConnection.of(this.engine, context.switchToWs().getClient());
      return true;
    }
    const route = this.engine.route(context.getHandler(), context.getClass());
    const loading = sessions.loadAll(route.names);
    return loading === undefined ? true : loading.then(granted);
  }
}
