import type { ArgumentsHost } from '@nestjs/common';
import { RequestSessions } from '../lifecycle/request-sessions.js';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import type { SessionSource } from '../lifecycle/session-source.js';
import { SubscriptionSessions } from '../subscriptions/subscription-sessions.js';
import { subscriptionConnection } from './subscription-context.js';

/**
 * Where a request comes from: the HTTP request and response behind an `ExecutionContext` or
 * `ArgumentsHost`, for HTTP routes and for GraphQL resolvers. Nothing of `@nestjs/graphql` is
 * imported: a resolver's context has the type `'graphql'`, and the GraphQL context object is its
 * third argument. The drivers put there:
 *
 * - Apollo on Express (`@nestjs/apollo`): `{ req }`, the Express request; its response is `req.res`.
 * - Mercurius on Fastify (`@nestjs/mercurius`): `{ req, reply, app }`; `reply.request` is the
 *   Fastify request.
 * - Any driver or context function that gives `{ req, res }`, or a Fastify `reply`.
 *
 * Each way gives the same request object an HTTP guard on that request gets
 * (`switchToHttp().getRequest()`: the Express request, the Fastify request), so the request's
 * sessions are loaded once and saved once, however many resolvers ask. A GraphQL subscription
 * over a WebSocket has the request that opened its connection (see `subscription-context.ts`): its
 * sessions are read-only. Other contexts (`ws`, `rpc`) have none here: undefined.
 */

/** The sessions of the request behind `host`, created on first use; undefined where there is no request. */
export function sessionsOf(engine: SessionEngine, host: ArgumentsHost): SessionSource | undefined {
  const type = host.getType<string>();
  if (type === 'http') {
    const http = host.switchToHttp();
    return RequestSessions.of(engine, http.getRequest(), http.getResponse());
  }
  if (type === 'graphql') return graphqlSessions(engine, host.getArgByIndex(2));
  return undefined;
}

/** The HTTP request behind `host` (the Express or Fastify request), without creating its sessions; undefined where there is none. */
export function requestOf(host: ArgumentsHost): any {
  const type = host.getType<string>();
  if (type === 'http') return host.switchToHttp().getRequest();
  if (type === 'graphql') return graphqlRequest(host.getArgByIndex(2));
  return undefined;
}

/**
 * The sessions of the HTTP request a GraphQL context object belongs to, or of the subscription
 * whose context it is: created with `engine`, or, without it, with the engine of the app that
 * serves the request (see `registerEngine`). Undefined when the context carries neither.
 */
export function graphqlSessions(engine: SessionEngine | undefined, gqlContext: unknown): SessionSource | undefined {
  const req = graphqlRequest(gqlContext);
  if (req !== undefined) {
    const found = RequestSessions.find(req);
    if (found !== undefined) return found.forGraphql();
    const res = graphqlResponse(gqlContext, req);
    if (res !== undefined) {
      const owner = engine ?? engineOf(req);
      return owner === undefined ? undefined : RequestSessions.of(owner, req, res).forGraphql();
    }
  }
  // Only where there is no HTTP response: a subscription over a WebSocket.
  return SubscriptionSessions.of(engine, gqlContext, engineOf);
}

/** Whether `value` looks like a GraphQL context object rather than a request. */
export function isGraphqlContext(value: unknown): boolean {
  const context = value as { req?: unknown; reply?: unknown } | null | undefined;
  if (context == null) return false;
  return isFastifyReply(context.reply) || (typeof context.req === 'object' && context.req !== null) || subscriptionConnection(context) !== undefined;
}

function graphqlRequest(gqlContext: unknown): any {
  if (gqlContext == null || typeof gqlContext !== 'object') return undefined;
  const { reply, req } = gqlContext as { reply?: any; req?: any };
  if (isFastifyReply(reply)) return reply.request;
  return req != null && typeof req === 'object' ? req : undefined;
}

function graphqlResponse(gqlContext: unknown, req: any): any {
  const { reply, res } = gqlContext as { reply?: any; res?: any };
  if (isFastifyReply(reply)) return reply;
  // Apollo's Express context has `req` only: Express links the request to its response.
  const response = res ?? req.res;
  return response != null && typeof response === 'object' ? response : undefined;
}

function isFastifyReply(value: any): boolean {
  return value != null && typeof value === 'object' && value.raw !== undefined && value.request !== undefined;
}

const kEngine = Symbol('nest-sessions:engine');

/**
 * Makes the app's engine reachable from its requests (Express `req.app`, Fastify `request.server`,
 * the HTTP server of an upgrade request), for the one binding that runs no code of ours before it:
 * a `@Session()` parameter of a GraphQL field resolver, which Nest runs without guards unless
 * `fieldResolverEnhancers` asks for them.
 */
export function registerEngine(instance: unknown, engine: SessionEngine): void {
  if (instance != null && (typeof instance === 'object' || typeof instance === 'function')) {
    Object.defineProperty(instance, kEngine, { value: engine, configurable: true, enumerable: false, writable: true });
  }
}

/** Express: `req.app`; Fastify: `request.server`; a raw upgrade request: its socket's HTTP server. */
function engineOf(req: any): SessionEngine | undefined {
  return (req.app?.[kEngine] ?? req.server?.[kEngine] ?? req.socket?.server?.[kEngine]) as SessionEngine | undefined;
}
