import { Controller, Get, Logger, Module } from '@nestjs/common';
import { context, metrics, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CookieStore, Session, SessionConfigError, SessionModule, SessionService, SessionStoreError, type SessionModuleOptions } from '../../src/index.js';
import type { SessionRecord } from '../../src/stores/session-store.interface.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { ControlledStore } from '../support/controlled-store.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { redisUrl } from '../support/services.js';

// forRoot({ telemetry: true }) with the OpenTelemetry SDK registered as an app registers it: spans of
// the store calls and the counters, read back from an in-memory exporter and a metric reader.

const SECRET = 'a-telemetry-test-secret-that-is-long-enough';
const USER = 'user-4242-telemetry';

class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

const spans = new InMemorySpanExporter();
let reader: TestReader;

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] }));
});
afterAll(() => {
  trace.disable();
  metrics.disable();
  context.disable();
});
beforeEach(() => {
  // A meter provider per test: the app's counters start from zero.
  metrics.disable();
  reader = new TestReader();
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  spans.reset();
});

/** The ids the store was asked to create, to look for them where they must not be. */
class IdsStore extends ControlledStore {
  readonly ids = new Set<string>();
  override set(id: string, record: SessionRecord) {
    this.ids.add(id);
    return super.set(id, record);
  }
  listByUser(userId: string) {
    return this.inner.listByUser(userId);
  }
  /** A driver's own instrumentation: a span of its own inside the store call. */
  override get(id: string) {
    trace.getTracer('a-driver').startSpan('driver GET').end();
    return super.get(id);
  }
}

@Controller()
class TelemetryController {
  constructor(private readonly sessions: SessionService) {}

  @Get('login')
  login(@Session() session: Session) {
    session.set('visits', 1);
    session.setUser(USER);
    return { ok: true };
  }

  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('touch')
  touch(@Session() session: Session) {
    session.touch();
    return { ok: true };
  }

  @Get('devices')
  async devices(@Session() session: Session) {
    return { count: (await this.sessions.sessionsOf(session)).length };
  }

  @Get('logout')
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }
}

function appModule(options: SessionModuleOptions) {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, ...options })], controllers: [TelemetryController] })
  class TelemetryAppModule {}
  return TelemetryAppModule;
}

const finished = (): ReadableSpan[] => spans.getFinishedSpans().filter((span) => span.instrumentationScope.name === 'nest-sessions');
const named = (name: string): ReadableSpan[] => finished().filter((span) => span.name === name);

/** Every data point of the counter `name`, as attributes and value. */
async function counter(name: string): Promise<{ attributes: Record<string, unknown>; value: number }[]> {
  const { resourceMetrics } = await reader.collect();
  const found = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).find((metric) => metric.descriptor.name === name);
  return (found?.dataPoints ?? []).map((point) => ({ attributes: { ...point.attributes }, value: (point as DataPoint<number>).value }));
}

function cookieOf(res: { headers: Record<string, unknown> }): string {
  const cookies = res.headers['set-cookie'] as string[];
  return cookies.map((raw) => raw.split(';')[0]).find((pair) => pair.startsWith('sid='))!;
}

describe.each([platforms[0], platforms[2]])('telemetry on $name', (platform) => {
  let app: TestApp | undefined;
  let errors: ReturnType<typeof vi.spyOn>;
  beforeEach(() => {
    errors = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    errors.mockRestore();
  });

  it('gives each store call a span named for its operation, with semantic-convention attributes and no session id, cookie or user id', async () => {
    const store = new IdsStore();
    app = await platform.create(appModule({ store, telemetry: true }));
    // A visitor's session, and a signed-in user's.
    const visitor = cookieOf(await app.http().get('/count').expect(200));
    await app.http().get('/count').set('cookie', visitor).expect(200);
    await app.http().get('/touch').set('cookie', visitor).expect(200);
    const user = cookieOf(await app.http().get('/login').expect(200));
    await app.http().get('/devices').set('cookie', user).expect(200, { count: 1 });
    await app.http().get('/logout').set('cookie', user).expect(200);

    expect(finished().map((span) => span.name)).toEqual([
      'session.write', // /count: the new session
      'session.read', // /count
      'session.write',
      'session.read', // /touch
      'session.touch',
      'session.write', // /login
      'session.read', // /devices
      'session.list',
      'session.read', // /logout
      'session.destroy',
    ]);
    for (const span of finished()) {
      expect(span.kind).toBe(SpanKind.INTERNAL);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.attributes).toEqual({
        'db.operation.name': span.name.slice('session.'.length),
        'nest_sessions.session.name': 'default',
        'nest_sessions.store': 'IdsStore',
      });
    }
    // The driver's span, made inside the store call, is a child of the store call's span.
    const read = named('session.read')[0];
    const driver = spans.getFinishedSpans().find((span) => span.name === 'driver GET')!;
    expect(driver.parentSpanContext?.spanId).toBe(read.spanContext().spanId);
    expect(driver.spanContext().traceId).toBe(read.spanContext().traceId);

    // Nowhere a session id, the cookie or the user id: not in a span, not in a counter.
    const exported = JSON.stringify({
      spans: spans.getFinishedSpans().map((span) => ({ name: span.name, attributes: span.attributes, status: span.status, events: span.events, links: span.links })),
      metrics: (await reader.collect()).resourceMetrics,
    });
    expect(exported).toContain('nest_sessions.session.loads');
    expect(exported).toContain('nest_sessions.session.name');
    expect(store.ids.size).toBe(2);
    const cookieValues = [visitor, user].map((pair) => pair.slice('sid='.length));
    for (const secret of [...store.ids, ...cookieValues, ...cookieValues.map(decodeURIComponent), USER]) {
      expect(exported).not.toContain(secret);
    }
  });

  it('counts loads, found or not, and saves by kind', async () => {
    app = await platform.create(appModule({ store: new IdsStore(), telemetry: true }));
    const cookie = cookieOf(await app.http().get('/count').expect(200));
    await app.http().get('/count').set('cookie', cookie).expect(200);
    await app.http().get('/touch').set('cookie', cookie).expect(200);
    await app.http().get('/logout').set('cookie', cookie).expect(200);
    // The destroyed session's cookie again: looked up, not found.
    await app.http().get('/count').set('cookie', cookie).expect(200);

    const session = { 'nest_sessions.session.name': 'default' };
    expect(await counter('nest_sessions.session.loads')).toEqual(
      expect.arrayContaining([
        { attributes: { ...session, 'nest_sessions.session.found': true }, value: 3 },
        { attributes: { ...session, 'nest_sessions.session.found': false }, value: 1 },
      ]),
    );
    expect(await counter('nest_sessions.session.loads')).toHaveLength(2);
    expect(await counter('nest_sessions.session.saves')).toEqual(
      expect.arrayContaining([
        { attributes: { ...session, 'nest_sessions.save.kind': 'create' }, value: 2 },
        { attributes: { ...session, 'nest_sessions.save.kind': 'update' }, value: 1 },
        { attributes: { ...session, 'nest_sessions.save.kind': 'touch' }, value: 1 },
      ]),
    );
    expect(await counter('nest_sessions.session.save_failures')).toEqual([]);
    expect(await counter('nest_sessions.response.replaced')).toEqual([]);
  });

  it('marks a failed write as an error, and counts the failed save and the 503 that replaced the response', async () => {
    const store = new IdsStore();
    app = await platform.create(appModule({ store, telemetry: true }));
    store.failNext('set');
    const res = await app.http().get('/count').expect(503);
    expect(res.headers['set-cookie']).toBeUndefined();

    const [write] = named('session.write');
    expect(write.status).toEqual({ code: SpanStatusCode.ERROR, message: expect.stringMatching(/^The store of session 'default' failed to save a session: set refused/) });
    expect(write.attributes['error.type']).toBe('Error');
    expect(await counter('nest_sessions.session.save_failures')).toEqual([{ attributes: { 'nest_sessions.session.name': 'default', 'nest_sessions.save.kind': 'create' }, value: 1 }]);
    expect(await counter('nest_sessions.response.replaced')).toEqual([{ attributes: { 'http.response.status_code': 503 }, value: 1 }]);
    expect(await counter('nest_sessions.session.saves')).toEqual([]);
  });

  it("reports the driver's error code as error.type, down the chain of causes", async () => {
    const store = new IdsStore();
    app = await platform.create(appModule({ store, telemetry: true }));
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    store.set = () => Promise.reject(new SessionStoreError('IdsStore: set failed: connect ECONNREFUSED', { cause: refused }));
    await app.http().get('/count').expect(503);
    const [write] = named('session.write');
    expect(write.attributes['error.type']).toBe('ECONNREFUSED');
    expect(write.status.message).toBe("The store of session 'default' failed to save a session: IdsStore: set failed: connect ECONNREFUSED");
  });

  it('reports a store that does not answer in time as error.type timeout', async () => {
    const store = new IdsStore();
    app = await platform.create(appModule({ store, telemetry: true, storeTimeout: 100 }));
    store.delay = 400;
    await app.http().get('/count').expect(503);
    const [write] = named('session.write');
    expect(write.attributes['error.type']).toBe('timeout');
    expect(write.status.message).toMatch(/no answer within 100 ms$/);
    expect(await counter('nest_sessions.response.replaced')).toEqual([{ attributes: { 'http.response.status_code': 503 }, value: 1 }]);
  });

  it('counts the loads and saves of a cookie-stored session, which makes no store call and so no span', async () => {
    app = await platform.create(appModule({ store: new CookieStore({ secret: 'a-cookie-store-key-that-is-long-enough-0123' }), telemetry: true }));
    const cookie = cookieOf(await app.http().get('/count').expect(200));
    await app.http().get('/count').set('cookie', cookie).expect(200, { visits: 2 });
    expect(finished()).toEqual([]);
    const session = { 'nest_sessions.session.name': 'default' };
    expect(await counter('nest_sessions.session.loads')).toEqual([{ attributes: { ...session, 'nest_sessions.session.found': true }, value: 1 }]);
    expect(await counter('nest_sessions.session.saves')).toEqual([{ attributes: { ...session, 'nest_sessions.save.kind': 'cookie' }, value: 2 }]);
  });

  it('records nothing without telemetry, though the SDK is registered', async () => {
    app = await platform.create(appModule({ store: new IdsStore() }));
    const cookie = cookieOf(await app.http().get('/login').expect(200));
    await app.http().get('/count').set('cookie', cookie).expect(200);
    expect(finished()).toEqual([]);
    expect(await counter('nest_sessions.session.saves')).toEqual([]);
  });
});

describe('telemetry with RedisStore', () => {
  let app: TestApp | undefined;
  let store: RedisStore | undefined;
  afterEach(async () => {
    await app?.close();
    await store?.close();
  });

  it('names the database: db.system.name redis', async () => {
    store = new RedisStore({ url: redisUrl(), prefix: `test:telemetry:${process.pid}:` });
    app = await platforms[0].create(appModule({ store, telemetry: true }));
    const cookie = cookieOf(await app.http().get('/login').expect(200));
    await app.http().get('/count').set('cookie', cookie).expect(200);
    expect(finished().map((span) => span.name)).toEqual(['session.write', 'session.read', 'session.write']);
    expect(named('session.read')[0].attributes).toEqual({
      'db.system.name': 'redis',
      'db.operation.name': 'read',
      'nest_sessions.session.name': 'default',
      'nest_sessions.store': 'RedisStore',
    });
  });
});

describe('the telemetry option', () => {
  it('must be true or false', async () => {
    await expect(platforms[0].create(appModule({ telemetry: 'yes' as unknown as boolean }))).rejects.toThrow(SessionConfigError);
    await expect(platforms[0].create(appModule({ telemetry: 'yes' as unknown as boolean }))).rejects.toThrow("telemetry must be true or false, got 'yes'");
  });
});
