import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { Observable, type Subscription } from 'rxjs';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import type { RouteInfo } from '../nest/route-info.js';
import { loadEach } from '../lifecycle/session-source.js';
import { GatewayConnection } from './gateway-connection.js';
import { forGatewayClient } from './gateway-errors.js';

/**
 * One message of a gateway handler that asks for sessions: loads them (fresh from the store, for
 * this message alone), runs the handler where its parameters find them (and `SessionService`, in
 * the engine's context, on a handler marked `@UseSession()`), and saves what changed before the
 * handler's answer goes out (before its first value, and again when it completes or fails), so the
 * client's next HTTP request sees the change. A client that leaves while the handler runs gets
 * nothing more, and a stream the handler returned is dropped, but what the handler changes is
 * saved all the same: a handler that had not answered yet is heard out and saved once more. A store failure reaches the client as an error it can recognise (see `forGatewayClient`).
 */
export function interceptMessage(engine: SessionEngine, context: ExecutionContext, next: CallHandler, route: RouteInfo): Observable<unknown> {
  const connection = GatewayConnection.of(engine, context.switchToWs().getClient());
  if (connection === undefined) return next.handle();
  // The message its guards began, if they asked already.
  const message = connection.message(context.getArgs());
  // Intercepted already (`interceptor: 'global'` and the binder's interceptor on one handler): one load, one save.
  if (message.intercepted) return next.handle();
  message.intercepted = true;
  return new Observable<unknown>((subscriber) => {
    let inner: Subscription | undefined;
    /** Nothing more goes to the client: it has its answer, or it left. */
    let done = false;
    /** The handler's result came (or failed): its sessions are saved, the message is over. */
    let over = false;
    let queue: Promise<void> = Promise.resolve();
    let savedBeforeValue = false;
    /** While the handler of a client that left is heard out: when it is dropped all the same. */
    let heardOut: ReturnType<typeof setTimeout> | undefined;
    const finish = () => {
      if (over) return;
      over = true;
      if (heardOut !== undefined) clearTimeout(heardOut);
      inner?.unsubscribe();
      connection.end(message);
    };
    const stop = (error?: unknown) => {
      finish();
      if (done) return;
      done = true;
      if (error === undefined) subscriber.complete();
      else subscriber.error(forGatewayClient(error));
    };
    /** The client left before the handler answered: its answer (or error) is awaited for one last save. */
    let left = false;
    const later = (work: () => Promise<void>) => {
      queue = queue
        .then(() => (over ? undefined : work()))
        .catch((error: unknown) => stop(error))
        .then(() => {
          if (left) finish();
        });
    };

    let loading: Promise<unknown> | undefined;
    try {
      loading = loadEach(route.names, (name) => message.load(name));
    } catch (error) {
      stop(error);
      return;
    }

    const start = () => {
      if (done) return finish();
      const run = () =>
        next.handle().subscribe({
          next: (value) =>
            later(async () => {
              if (!savedBeforeValue) {
                savedBeforeValue = true;
                await message.save();
              }
              if (!done) subscriber.next(value);
            }),
          error: (error: unknown) =>
            later(async () => {
              await message.save().catch(() => undefined); // logged; the handler's error is the one to tell
              stop(error);
            }),
          complete: () =>
            later(async () => {
              await message.save();
              stop();
            }),
        });
      const scoped = connection.begin(message, context.getArgs(), route.context);
      try {
        inner = scoped ? engine.context.run(message, run) : run();
      } catch (error) {
        // An interceptor after this one threw rather than erred: as for a handler's error.
        later(async () => {
          await message.save().catch(() => undefined); // logged; the thrown error is the one to tell
          stop(error);
        });
        return;
      }
      if (over) inner.unsubscribe();
    };
    if (loading === undefined) start();
    else loading.then(start, (error: unknown) => stop(error));
    return () => {
      if (over) return;
      // The client left (Nest stops listening at its disconnect): what changed is saved now. A
      // handler that has answered before is a stream: it is dropped, so that one that never ends (a
      // filter on an app-wide Subject) holds neither the socket nor its sessions. One that has not
      // answered yet (a Promise still running) is heard out for up to HEARD_OUT_MS: its answer
      // saves once more, which finds what it changed in place meanwhile, and ends the message; a
      // stream that never answered is dropped then.
      done = true;
      message.save().catch(() => undefined); // logged; nobody is left to tell
      if (savedBeforeValue || inner === undefined) return finish();
      left = true;
      heardOut = setTimeout(finish, HEARD_OUT_MS);
      heardOut.unref();
    };
  });
}

/** How long the handler of a client that left is heard out for the changes it makes in place. */
export const HEARD_OUT_MS = 30_000;

/**
 * What `GatewaySessionBinder` binds to gateway handlers with a `@Session()` or `@Flash()` parameter:
 * one object for every app of the process, so it finds the app's engine through the socket's
 * connection, which the parameter's guard (`SessionLoader`, run before any interceptor) created.
 */
export const gatewayMessageInterceptor: NestInterceptor = {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'ws') return next.handle();
    const connection = GatewayConnection.find(context.switchToWs().getClient());
    if (connection === undefined) return next.handle();
    const engine = connection.engine;
    return interceptMessage(engine, context, next, engine.route(context.getHandler(), context.getClass()));
  },
};
