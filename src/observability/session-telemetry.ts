import type { Attributes, Counter, Span, Tracer } from '@opentelemetry/api';
import { SessionConfigError } from '../session/session.errors.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { requirePeer } from '../stores/optional-peer.js';
import type { MaybePromise } from '../stores/session-store.interface.js';
import { isThenable } from '../lifecycle/thenable.js';

/**
 * OpenTelemetry spans and counters for the session engine, made only when the app asks for them
 * (`forRoot({ telemetry: true })`): without it, `@opentelemetry/api` is never loaded and the engine
 * pays one check per store call. Attributes never carry a session id, a cookie or a user id.
 */

type OpenTelemetryApi = typeof import('@opentelemetry/api');

/** The tracer's and the meter's name. */
export const TELEMETRY_SCOPE = 'nest-sessions';

/** The store calls that get a span, by what the engine says it is doing: the span is `session.<operation>`. */
const OPERATIONS: Readonly<Record<string, string>> = {
  'read a session': 'read',
  'save a session': 'write',
  'touch a session': 'touch',
  'destroy a session': 'destroy',
  "list a user's sessions": 'list',
};

/** `db.system.name` of the built-in stores that talk to a database (semantic conventions' values). */
const DATABASES: Readonly<Record<string, string>> = { RedisStore: 'redis', PostgresStore: 'postgresql' };

/** What a save wrote: a store call of the save plan, or `cookie` for a cookie-stored session. */
export type SaveKind = 'create' | 'update' | 'touch' | undefined;

export class SessionTelemetry {
  private readonly api: OpenTelemetryApi;
  private readonly tracer: Tracer;
  private readonly loads: Counter;
  private readonly saves: Counter;
  private readonly saveFailures: Counter;
  private readonly replaced: Counter;
  /** Span attributes per session and operation, made once. */
  private readonly attributes = new WeakMap<SessionDefinition, Map<string, Attributes>>();

  /** The telemetry `forRoot({ telemetry })` asks for: undefined unless it is `true`. */
  static from(option: unknown): SessionTelemetry | undefined {
    if (option === undefined || option === false) return undefined;
    if (option !== true) {
      const got = typeof option === 'string' ? `'${option}'` : option === null ? 'null' : `a value of type ${typeof option}`;
      throw new SessionConfigError(`telemetry must be true or false, got ${got}: true gives OpenTelemetry spans and metrics (install @opentelemetry/api)`);
    }
    return new SessionTelemetry(requirePeer<OpenTelemetryApi>('@opentelemetry/api', 'SessionModule.forRoot({ telemetry: true })'));
  }

  private constructor(api: OpenTelemetryApi) {
    this.api = api;
    // The global providers, as every instrumentation uses them: the SDK must be started before the app.
    this.tracer = api.trace.getTracer(TELEMETRY_SCOPE);
    const meter = api.metrics.getMeter(TELEMETRY_SCOPE);
    this.loads = meter.createCounter('nest_sessions.session.loads', {
      description: 'Sessions looked up for a cookie that came in, found or not',
      unit: '{session}',
    });
    this.saves = meter.createCounter('nest_sessions.session.saves', {
      description: 'Sessions saved: store writes the store confirmed, and cookie-stored sessions sealed into their cookie',
      unit: '{session}',
    });
    this.saveFailures = meter.createCounter('nest_sessions.session.save_failures', {
      description: 'Store writes of a session that failed or timed out',
      unit: '{session}',
    });
    this.replaced = meter.createCounter('nest_sessions.response.replaced', {
      description: 'Responses replaced by an error (503 when the store failed) because their session could not be saved',
      unit: '{response}',
    });
  }

  /**
   * Runs a call of the engine (`run`, already bounded by the store timeout) in a span when it is a
   * call to the session's store; any other call (a migration source, `userVersion`) runs as it is.
   */
  call<T>(def: SessionDefinition, what: string, whose: string | undefined, run: () => MaybePromise<T>): MaybePromise<T> {
    const operation = whose === undefined ? OPERATIONS[what] : undefined;
    if (operation === undefined) return run();
    const { api } = this;
    const span = this.tracer.startSpan(`session.${operation}`, { kind: api.SpanKind.INTERNAL, attributes: this.attributesOf(def, operation) });
    let result: MaybePromise<T>;
    try {
      // The store's own client spans (ioredis, pg instrumentations) become children of this one.
      result = api.context.with(api.trace.setSpan(api.context.active(), span), run);
    } catch (error) {
      this.failed(span, error);
      throw error;
    }
    if (!isThenable(result)) {
      span.end();
      return result;
    }
    return Promise.resolve(result).then(
      (value) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        this.failed(span, error);
        throw error;
      },
    );
  }

  /** A session looked up for a cookie: `found` when a live session was adopted. */
  loaded(def: SessionDefinition, found: boolean): void {
    this.loads.add(1, { 'nest_sessions.session.name': def.name, 'nest_sessions.session.found': found });
  }

  /** A save landed: a store write (`kind`), or a cookie-stored session sealed (`kind` undefined). */
  saved(def: SessionDefinition, kind: SaveKind): void {
    this.saves.add(1, { 'nest_sessions.session.name': def.name, 'nest_sessions.save.kind': kind ?? 'cookie' });
  }

  /** A store write failed or timed out. */
  saveFailed(def: SessionDefinition, kind: SaveKind): void {
    this.saveFailures.add(1, { 'nest_sessions.session.name': def.name, 'nest_sessions.save.kind': kind ?? 'cookie' });
  }

  /** A response was replaced by an error response of `status`, since its session could not be saved. */
  responseReplaced(status: number): void {
    this.replaced.add(1, { 'http.response.status_code': status });
  }

  private attributesOf(def: SessionDefinition, operation: string): Attributes {
    let byOperation = this.attributes.get(def);
    if (byOperation === undefined) this.attributes.set(def, (byOperation = new Map()));
    let attributes = byOperation.get(operation);
    if (attributes === undefined) {
      const store = (def.store as object).constructor?.name || 'SessionStore';
      const database = DATABASES[store];
      attributes = {
        ...(database === undefined ? {} : { 'db.system.name': database }),
        'db.operation.name': operation,
        'nest_sessions.session.name': def.name,
        'nest_sessions.store': store,
      };
      byOperation.set(operation, attributes);
    }
    return attributes;
  }

  /**
   * Ends the span as failed. Its status carries what the engine logged (the store's failure, which
   * names no session id) and `error.type` `timeout`, or the code of the driver's error (`ECONNREFUSED`)
   * found down the chain of causes, else the innermost error's class.
   */
  private failed(span: Span, error: unknown): void {
    const logged = (error as Error | undefined)?.cause;
    const chain: (Error & { code?: unknown })[] = [];
    for (let cause: unknown = error; cause instanceof Error && chain.length < 8; cause = cause.cause) chain.push(cause);
    const coded = chain.findLast((each) => typeof each.code === 'string' && each.code !== '');
    const type = chain.some((each) => each.name === 'TimeoutError') ? 'timeout' : coded !== undefined ? String(coded.code) : chain.at(-1)?.name || '_OTHER';
    span.setAttribute('error.type', type);
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message: logged instanceof Error ? logged.message : error instanceof Error ? error.message : String(error) });
    span.end();
  }
}

/**
 * The hook the response gate calls when it replaces a response: counted when the app's engine has
 * telemetry. `saver` is the request's sessions (`RequestSessions`), which know their engine.
 */
export function countReplacedResponse(saver: object, status: number): void {
  (saver as { engine?: { telemetry?: SessionTelemetry } }).engine?.telemetry?.responseReplaced(status);
}
