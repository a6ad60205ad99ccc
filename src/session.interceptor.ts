import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { Observable, type Observer, type Subscriber, type Subscription } from 'rxjs';
import { RequestSessions } from './request-sessions.js';
import { SessionEngine } from './session-engine.js';

/**
 * Loads the sessions a route asks for before its handler, runs the handler where
 * `SessionService.current()` finds them, and saves what changed after it, before the response
 * goes out (also when the handler throws). Bound by `@Session()`, `@Flash()` and `@UseSession()`
 * to their own routes only, or to every route with `interceptor: 'global'`.
 */
@Injectable()
export class SessionInterceptor implements NestInterceptor {
  constructor(private readonly engine: SessionEngine) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const request = RequestSessions.of(this.engine, http.getRequest(), http.getResponse());
    // Bound twice (globally and by a decorator): the outer one does the work.
    if (request.intercepted) return next.handle();
    request.intercepted = true;
    const route = this.engine.route(context.getHandler(), context.getClass());
    if (route.writesResponse) request.armResponse();
    const engine = this.engine;

    return new Observable<unknown>((subscriber) => {
      let inner: Subscription | undefined;
      let closed = false;
      const start = () => {
        if (closed) return;
        const observer = route.writesResponse ? subscriber : new SaveAfterHandler(subscriber, request);
        inner = route.context ? engine.context.run(request, () => next.handle().subscribe(observer)) : next.handle().subscribe(observer);
      };
      let loading: Promise<unknown> | undefined;
      try {
        loading = request.loadAll(route.names);
      } catch (error) {
        subscriber.error(error);
        return;
      }
      if (loading === undefined) start();
      else loading.then(start, (error: unknown) => subscriber.error(error));
      return () => {
        closed = true;
        inner?.unsubscribe();
      };
    });
  }
}

/** Holds the handler's result until the sessions are saved; a failed save replaces it with its 503. */
class SaveAfterHandler implements Observer<unknown> {
  private value: unknown;
  private hasValue = false;

  constructor(
    private readonly out: Subscriber<unknown>,
    private readonly request: RequestSessions,
  ) {}

  next(value: unknown): void {
    this.value = value;
    this.hasValue = true;
  }

  error(error: unknown): void {
    const saving = this.save();
    if (saving === null) return;
    if (saving === undefined) this.out.error(error);
    else saving.then(() => this.out.error(error), (saveError: unknown) => this.out.error(saveError));
  }

  complete(): void {
    const saving = this.save();
    if (saving === null) return;
    if (saving === undefined) this.emit();
    else saving.then(() => this.emit(), (saveError: unknown) => this.out.error(saveError));
  }

  /** The pending save, undefined when done already, null when it failed at once (reported). */
  private save(): Promise<void> | undefined | null {
    try {
      return this.request.commit();
    } catch (error) {
      this.out.error(error);
      return null;
    }
  }

  private emit(): void {
    if (this.hasValue) this.out.next(this.value);
    this.out.complete();
  }
}
