import { Injectable, Optional, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { map, Observable } from 'rxjs';
import type { SessionSource } from '../lifecycle/session-source.js';
import { sessionsOf } from '../transports/request-context.js';
import { SessionEngine } from '../lifecycle/session-engine.js';
import { requireSessionModule } from '../session/session.errors.js';
import { interceptMessage } from '../gateways/gateway-message.js';

/**
 * Attaches the request's sessions to the execution context that `SessionService.current()`
 * reads: loads the sessions the route asks for and runs the handler where `current()` finds them.
 * Bound by `@UseSession()`, by `interceptor: 'global'` on every route, or by a user's
 * `@UseInterceptors(SessionInterceptor)`. A GraphQL subscription's async iterator runs there too,
 * event after event. Saving is the response's: it saves as it leaves. On a
 * gateway's message handler (bound there by `GatewaySessionBinder`), it also saves after the
 * handler, since no response does.
 */
@Injectable()
export class SessionInterceptor implements NestInterceptor {
  private readonly engine: SessionEngine;

  /** @internal Nest's injector creates it. */
  constructor(@Optional() engine: SessionEngine) {
    this.engine = requireSessionModule(engine, 'SessionInterceptor (@UseSession()) needs');
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() === 'ws') {
      // `interceptor: 'global'` reaches gateways too: only handlers that ask for a session get one.
      const route = this.engine.route(context.getHandler(), context.getClass());
      return route.asked ? interceptMessage(this.engine, context, next, route) : next.handle();
    }
    const request = sessionsOf(this.engine, context);
    if (request === undefined) return next.handle();
    const route = this.engine.route(context.getHandler(), context.getClass());
    const engine = this.engine;
    let loading: Promise<unknown> | undefined;
    try {
      loading = request.loadAll(route.names);
    } catch (error) {
      return new Observable((subscriber) => subscriber.error(error));
    }
    if (loading === undefined && !route.context) return next.handle();
    return new Observable<unknown>((subscriber) => {
      let closed = false;
      let unsubscribe: (() => void) | undefined;
      const start = () => {
        if (closed) return;
        const handle = route.context && isSubscription(context)
          ? () => next.handle().pipe(map((value) => inScope(engine, request, value))).subscribe(subscriber)
          : () => next.handle().subscribe(subscriber);
        const inner = route.context ? engine.context.run(request, handle) : handle();
        unsubscribe = () => inner.unsubscribe();
      };
      if (loading === undefined) start();
      else loading.then(start, (error: unknown) => subscriber.error(error));
      return () => {
        closed = true;
        unsubscribe?.();
      };
    });
  }
}

/** Whether `context` is a GraphQL subscription's resolver call (its `info` names the operation). */
function isSubscription(context: ExecutionContext): boolean {
  if (context.getType<string>() !== 'graphql') return false;
  const info = context.getArgByIndex<{ operation?: { operation?: unknown } } | undefined>(3);
  return info?.operation?.operation === 'subscription';
}

/**
 * A subscription's result as the resolver returned it, but whose events are made where
 * `current()` finds the sessions: an async iterator (an `async *` resolver's body runs only when
 * asked for its next event, after the resolver call) runs its `next`, `return` and `throw` there.
 * Anything else is returned as it is.
 */
function inScope(engine: SessionEngine, sessions: SessionSource, value: unknown): unknown {
  const iterator = value as (Partial<AsyncIterator<unknown>> & Partial<AsyncIterable<unknown>>) | null | undefined;
  if (iterator == null || typeof iterator !== 'object' || typeof iterator.next !== 'function' || typeof iterator[Symbol.asyncIterator] !== 'function') return value;
  return new ScopedIterator(engine.context, sessions, iterator as AsyncIterator<unknown>);
}

type Scope = SessionEngine['context'];

/** One object per subscription, whose methods are shared: no closure per event. */
class ScopedIterator implements AsyncIterableIterator<unknown> {
  constructor(
    private readonly scope: Scope,
    private readonly sessions: SessionSource,
    private readonly iterator: AsyncIterator<unknown>,
  ) {}

  next(value?: unknown): Promise<IteratorResult<unknown>> {
    return this.scope.run(this.sessions, nextOf, this.iterator, value);
  }

  return(value?: unknown): Promise<IteratorResult<unknown>> {
    return typeof this.iterator.return === 'function' ? this.scope.run(this.sessions, returnOf, this.iterator, value) : Promise.resolve({ done: true, value });
  }

  throw(error?: unknown): Promise<IteratorResult<unknown>> {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- an iterator rejects with what was thrown into it
    return typeof this.iterator.throw === 'function' ? this.scope.run(this.sessions, throwOf, this.iterator, error) : Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

function nextOf(iterator: AsyncIterator<unknown>, value: unknown): Promise<IteratorResult<unknown>> {
  return iterator.next(value);
}

function returnOf(iterator: AsyncIterator<unknown>, value: unknown): Promise<IteratorResult<unknown>> {
  return iterator.return!(value);
}

function throwOf(iterator: AsyncIterator<unknown>, error: unknown): Promise<IteratorResult<unknown>> {
  return iterator.throw!(error);
}
