/**
 * Where a GraphQL subscription comes from: the WebSocket connection behind its GraphQL context.
 * Nothing of `@nestjs/graphql`, `graphql-ws` or Mercurius is imported; the shapes the drivers give:
 *
 * - Apollo (`@nestjs/apollo`, `subscriptions: { 'graphql-ws': ... }`): Nest's context function
 *   gets graphql-ws' context of the connection and returns `{ req: thatContext }` (a context
 *   function of the app's own gets `req` added the same way); graphql-ws' context holds
 *   `extra: { socket, request }`, the `ws` socket and the upgrade request.
 * - Mercurius (`@nestjs/mercurius`, `subscription: true`): `{ request, reply: { request }, pubsub, id }`,
 *   `request` the Fastify request of the upgrade, `pubsub` that subscription's own. A query or a
 *   mutation sent over the socket (`fullWsTransport: true`) gets a copy of the connection's context:
 *   `request`, and the app-wide `pubsub`, which has no `close`: one operation, answered at once.
 */

/** A subscription's connection, as far as sessions are concerned. */
export interface SubscriptionConnection {
  /** The upgrade request: its Cookie header carries the session cookie. */
  readonly request: { headers: Record<string, string | string[] | undefined> };
  /** An object that lives exactly as long as the connection: what ends with it is kept on it. */
  readonly holder: object;
  /** Whether the connection is still open. */
  isOpen(): boolean;
  /** Calls `listener` once, when the connection closes. */
  onClose(listener: () => void): void;
  /**
   * Ends what hangs on the session here, its session having ended: the whole connection (graphql-ws),
   * or this one subscription (Mercurius). The same function for every subscription it ends at once.
   * Absent for an operation answered at once (a query or mutation over Mercurius' socket): nothing
   * of it lasts, so nothing hangs on its session.
   */
  readonly end?: () => void;
  /**
   * Calls `listener` once, when this one subscription ends on its own, where a connection carries
   * subscriptions of their own ends (Mercurius); absent where `end` is the connection's (graphql-ws).
   */
  onEnd?(listener: () => void): void;
}

/** The WebSocket close code and reason a connection gets when its session ends (graphql-ws' Forbidden: its client reconnects). */
export const SESSION_ENDED_CLOSE_CODE = 4403;
export const SESSION_ENDED_CLOSE_REASON = 'Session ended';

/** The connection behind a GraphQL subscription's context object; undefined for any other context. */
export function subscriptionConnection(gqlContext: unknown): SubscriptionConnection | undefined {
  if (gqlContext == null || typeof gqlContext !== 'object') return undefined;
  const context = gqlContext as { req?: any; extra?: any; request?: any; pubsub?: any };
  const extra = extraOf(context.req) ?? extraOf(context);
  if (extra !== undefined) return graphqlWsConnection(extra.socket, extra.request);
  // Mercurius' contexts over its socket hold a pubsub (what a Fastify reply, which has a `request`, does not).
  if (!hasHeaders(context.request) || typeof context.pubsub?.subscribe !== 'function') return undefined;
  return typeof context.pubsub.close === 'function' ? mercuriusConnection(context.request, context.pubsub) : mercuriusOperation(context.request);
}

/** graphql-ws' `extra` of a connection served by `ws` (its `useServer`): `{ socket, request }`. */
function extraOf(value: any): { socket: any; request: any } | undefined {
  const extra = value?.extra;
  return extra != null && typeof extra === 'object' && hasHeaders(extra.request) && isWsSocket(extra.socket) ? extra : undefined;
}

const kConnection = Symbol('nest-sessions:connection');

function graphqlWsConnection(socket: any, request: any): SubscriptionConnection {
  return (socket[kConnection] ??= {
    request,
    holder: socket,
    isOpen: () => socket.readyState === OPEN,
    onClose: (listener) => socket.once('close', listener),
    // The whole connection: it stands on the upgrade request's cookie, which now names no session.
    // The client reconnects with the cookie the browser holds now.
    end: () => socket.close(SESSION_ENDED_CLOSE_CODE, SESSION_ENDED_CLOSE_REASON),
  } satisfies SubscriptionConnection) as SubscriptionConnection;
}

/**
 * Mercurius keeps its socket out of the context: the connection is known by the upgrade's raw
 * request and its TCP socket, and ending it ends this subscription's own `pubsub` (its events
 * stop and Mercurius sends the client `complete`).
 */
function mercuriusConnection(request: any, pubsub: { close(): unknown }): SubscriptionConnection | undefined {
  const operation = mercuriusOperation(request);
  if (operation === undefined) return undefined;
  return { ...operation, end: () => void pubsub.close(), onEnd: (listener) => onPubSubClose(pubsub, listener) };
}

/** A query or a mutation over Mercurius' socket (`fullWsTransport`): read by the upgrade's cookie, nothing to end. */
function mercuriusOperation(request: any): SubscriptionConnection | undefined {
  const raw = request.raw;
  const tcp = raw?.socket;
  if (raw == null || typeof tcp?.once !== 'function') return undefined;
  return {
    request,
    holder: raw,
    isOpen: () => tcp.destroyed !== true,
    onClose: (listener) => tcp.once('close', listener),
  };
}

const kClosing = Symbol('nest-sessions:closing');

/**
 * Calls `listener` once when Mercurius closes this subscription's `pubsub` (its SubscriptionContext):
 * it does on every end of the subscription (the client's stop, its completion, the connection's
 * close, `end` above). The pubsub's `close` is wrapped once; the listeners go with the pubsub.
 */
function onPubSubClose(pubsub: { close: (...args: unknown[]) => unknown; [kClosing]?: (() => void)[] }, listener: () => void): void {
  let listeners = pubsub[kClosing];
  if (listeners === undefined) {
    const all: (() => void)[] = (listeners = []);
    Object.defineProperty(pubsub, kClosing, { value: all, configurable: true });
    const close = pubsub.close;
    pubsub.close = function (this: unknown, ...args: unknown[]) {
      for (const each of all.splice(0)) {
        try {
          each();
        } catch {
          // the subscription closes all the same
        }
      }
      return close.apply(this, args);
    };
  }
  listeners.push(listener);
}

const OPEN = 1;

function hasHeaders(value: any): boolean {
  return value != null && typeof value === 'object' && value.headers != null && typeof value.headers === 'object';
}

function isWsSocket(value: any): boolean {
  return value != null && typeof value === 'object' && typeof value.close === 'function' && typeof value.once === 'function' && typeof value.readyState === 'number';
}
