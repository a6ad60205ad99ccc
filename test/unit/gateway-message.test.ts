import { AsyncLocalStorage } from 'node:async_hooks';
import type { CallHandler, ExecutionContext } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { expect, it, vi } from 'vitest';
import type { SessionEngine } from '../../src/lifecycle/session-engine.js';
import type { RouteInfo } from '../../src/nest/route-info.js';
import { GatewayConnection } from '../../src/gateways/gateway-connection.js';
import { HEARD_OUT_MS, interceptMessage } from '../../src/gateways/gateway-message.js';

const engine = { context: new AsyncLocalStorage() } as unknown as SessionEngine;
const route = { names: [], context: false } as unknown as RouteInfo;

function context(client: object, args: unknown[]): ExecutionContext {
  return { switchToWs: () => ({ getClient: () => client }), getArgs: () => args, getType: () => 'ws' } as unknown as ExecutionContext;
}

/** The messages of `client` whose handler runs now. */
function running(client: object): unknown[] {
  return [...(GatewayConnection.find(client) as unknown as { handling: Set<unknown> }).handling];
}

it("a message whose arguments equal a running message's (socket.io emit without ack) gets its own session at its guards and interceptor", () => {
  const client = { handshake: { headers: {} }, connected: true, disconnect() {}, once() {} };
  const feed = new Subject<number>();
  const subscription = interceptMessage(engine, context(client, [client, undefined, undefined, 'refresh']), { handle: () => feed } as CallHandler, route).subscribe();
  const connection = GatewayConnection.find(client)!;
  const [first] = running(client);
  expect(first).toBeDefined();
  expect(connection.message([client, undefined, undefined, 'refresh'])).not.toBe(first);
  subscription.unsubscribe();
});

it('a handler bound to two session interceptors (interceptor: \'global\' and its own) is intercepted once, outside the engine\'s context unless asked', () => {
  const client = { readyState: 1, close() {}, once() {} };
  const args = [client, 'x', 'visit'];
  let store: unknown = 'not run';
  const handler = { handle: () => new Observable<number>((subscriber) => void (store = engine.context.getStore(), subscriber.next(1))) } as CallHandler;
  const inner = { handle: () => interceptMessage(engine, context(client, args), handler, route) } as CallHandler;
  const subscription = interceptMessage(engine, context(client, args), inner, route).subscribe();
  expect(store).toBeUndefined();
  expect(running(client)).toHaveLength(1);
  subscription.unsubscribe();
});

it("a stream a handler returned is dropped when its client leaves: nothing holds the socket's message", () => {
  const client = { readyState: 1, close() {}, once() {} };
  const feed = new Subject<number>(); // an app-wide Subject that emits for this client before it leaves
  const subscription = interceptMessage(engine, context(client, [client, 'x', 'feed']), { handle: () => feed } as CallHandler, route).subscribe();
  expect(feed.observed).toBe(true);
  feed.next(1);
  return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
    subscription.unsubscribe(); // Nest stops listening at the disconnect
    expect({ observed: feed.observed, running: running(client).length }).toEqual({ observed: false, running: 0 });
  });
});

it('a handler that had not answered when its client left is heard out for HEARD_OUT_MS, then dropped: a stream that never answers holds nothing after that', () => {
  vi.useFakeTimers();
  try {
    const client = { readyState: 1, close() {}, once() {} };
    const feed = new Subject<number>(); // never emits for this client: it looks like a Promise still running
    const subscription = interceptMessage(engine, context(client, [client, 'x', 'silent']), { handle: () => feed } as CallHandler, route).subscribe();
    subscription.unsubscribe(); // the client leaves before any answer
    expect(feed.observed).toBe(true); // heard out: what it changes in place is still saved when it answers
    vi.advanceTimersByTime(HEARD_OUT_MS);
    expect({ observed: feed.observed, running: running(client).length }).toEqual({ observed: false, running: 0 });
  } finally {
    vi.useRealTimers();
  }
});

it('a handler whose next interceptor throws at once gets the error, and its message is over', async () => {
  const client = { readyState: 1, close() {}, once() {} };
  const failing = { handle: () => { throw new Error('thrown at once'); } } as CallHandler;
  let failed: unknown;
  interceptMessage(engine, context(client, [client, 'x', 'thrown']), failing, route).subscribe({ error: (error: unknown) => (failed = error) });
  await new Promise((resolve) => setImmediate(resolve));
  expect(failed).toEqual(new Error('thrown at once'));
  expect(running(client)).toHaveLength(0);
});
