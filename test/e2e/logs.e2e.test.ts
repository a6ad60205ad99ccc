import { Controller, Get, Logger, Module } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { SessionIdSigner } from '../../src/session/session-id.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { SECRET } from './app.fixture.js';

const OTHER_SECRET = 'an-attacker-secret-that-is-long-enough-00000';
const DATA_SECRET = 'card-4111-1111-1111-1111';

/** Lets a test act between a handler's load and its save (here: stop Redis). */
const hooks: { beforeSave?: () => Promise<void> } = {};

@Controller()
class LogsController {
  @Get('login')
  login(@Session() session: Session) {
    session.set('userId', 42);
    session.set('card', DATA_SECRET);
    return { ok: true };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { userId: session.get('userId') ?? null };
  }

  @Get('write')
  async write(@Session() session: Session) {
    await hooks.beforeSave?.();
    session.set('visits', 1);
    return { ok: true };
  }

  @Get('untouched')
  untouched() {
    return { ok: true };
  }
}

/** Everything Nest's Logger and the console were asked to print. */
function captureLogs(): () => string {
  const lines: unknown[][] = [];
  const keep = (...args: unknown[]) => void lines.push(args);
  for (const level of ['log', 'error', 'warn', 'debug', 'verbose', 'fatal'] as const) {
    vi.spyOn(Logger.prototype, level).mockImplementation(keep);
    vi.spyOn(Logger, level).mockImplementation(keep);
  }
  for (const level of ['log', 'error', 'warn', 'info', 'debug', 'trace'] as const) vi.spyOn(console, level).mockImplementation(keep);
  return () => lines.map((args) => args.map(show).join(' ')).join('\n');
}

/** A logged argument as text, errors with their stack and causes. */
function show(value: unknown): string {
  if (value instanceof Error) return `${value.stack ?? value.message} ${show((value as { cause?: unknown }).cause)} ${JSON.stringify(value)}`;
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** `value` with one character changed at `index`. */
function flip(value: string, index: number): string {
  return value.slice(0, index) + (value[index] === 'A' ? 'B' : 'A') + value.slice(index + 1);
}

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

describe.each(platforms)('nothing secret in logs or error bodies, on $name (a redis-server of its own)', (platform) => {
  let t: TestApp;
  let store: RedisStore;
  beforeAll(async () => {
    store = new RedisStore({ url: `redis://127.0.0.1:${redis.port}`, prefix: `logs:${platform.name}:` });
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store, storeTimeout: 3000 })], controllers: [LogsController] })
    class LogsModule {}
    t = await platform.create(LogsModule);
  });
  afterAll(async () => {
    hooks.beforeSave = undefined;
    await t?.close();
    await store?.close();
  });
  afterEach(() => vi.restoreAllMocks());

  it('logs store failures and survives tampered cookies without printing the secret, a session id or session data', async () => {
    const logged = captureLogs();
    const bodies: string[] = [];
    const get = async (path: string, cookie?: string) => {
      const req = t.http().get(path);
      const res = await (cookie === undefined ? req : req.set('Cookie', cookie));
      bodies.push(res.text, JSON.stringify(res.headers['www-authenticate'] ?? ''));
      return res;
    };

    // A signed-in session.
    const jar = new CookieJar();
    const login = await get('/login');
    expect(login.status).toBe(200);
    jar.take(login);
    const value = jar.get('sid')!;
    const id = value.split('.')[0];
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await get('/read', jar.header())).body).toEqual({ userId: 42 });

    // Tampered cookies: each one is no session, a 200, and no error anywhere.
    const signatureAt = id.length + 1;
    const other = new CookieJar();
    other.take(await get('/login'));
    const tampered = [
      flip(value, 0),
      flip(value, 20),
      flip(value, signatureAt),
      flip(value, value.length - 1),
      value.slice(0, -1),
      `${value}A`,
      `${id}.${other.get('sid')!.split('.')[1]}`,
      `${id}.${'A'.repeat(43)}`,
      `${id}`,
      encodeURIComponent(`${value}é`),
    ];
    for (const bad of tampered) {
      const res = await get('/read', `sid=${bad}`);
      expect(res.status, bad).toBe(200);
      expect(res.body, bad).toEqual({ userId: null });
    }
    // Signed with a key this app does not have, and a duplicated cookie name.
    const forged = new SessionIdSigner([OTHER_SECRET]).sign(id);
    tampered.push(forged);
    expect((await get('/read', `sid=${forged}`)).body).toEqual({ userId: null });
    const duplicated = await get('/read', `sid=${value.slice(0, 10)}; sid=${value}`);
    expect(duplicated.status).toBe(200);
    expect(duplicated.body).toEqual({ userId: null }); // the first sid is the one read

    // Redis goes away: a read fails, a fresh write fails, and a save after a good read fails.
    await redis.stop();
    const readDown = await get('/read', jar.header());
    expect(readDown.status).toBe(503);
    expect((await get('/login')).status).toBe(503);
    expect((await get('/untouched', jar.header())).status).toBe(200);
    await redis.restart();
    // Redis comes back empty: sign in again, then lose Redis between the load and the save.
    let again = 0;
    for (let i = 0; i < 50 && again !== 200; i++) {
      const res = await get('/login');
      again = res.status;
      if (again === 200) jar.take(res);
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(again).toBe(200);
    const value2 = jar.get('sid')!;
    hooks.beforeSave = () => redis.stop();
    const saveDown = await get('/write', jar.header());
    hooks.beforeSave = undefined;
    expect(saveDown.status).toBe(503);
    await redis.restart();

    const logs = logged();
    // The failures were logged (so this test sees what the library prints).
    expect(logs).toMatch(/failed to read a session/);
    expect(logs).toMatch(/failed to save a session/);

    const secrets = [
      ['the secret', SECRET],
      ['the session id', id],
      ['the signed cookie', value],
      ['the second session id', value2.split('.')[0]],
      ['the second signed cookie', value2],
      ['the other session id', other.get('sid')!.split('.')[0]],
      ['session data', DATA_SECRET],
    ] as const;
    const everything = `${logs}\n${bodies.join('\n')}`;
    for (const [what, secret] of secrets) {
      expect(everything.includes(secret), `${what} appears in logs or bodies`).toBe(false);
      // Nor a long piece of it (a truncated id is still most of an id).
      expect(everything.includes(secret.slice(0, 24)), `the start of ${what} appears in logs or bodies`).toBe(false);
    }
    for (const bad of tampered) expect(everything.includes(bad), `a tampered cookie value appears: ${bad}`).toBe(false);
    // Error bodies are generic.
    expect(readDown.body).toEqual({ statusCode: 503, message: 'Service Unavailable', code: 'SESSION_STORE_UNAVAILABLE' });
    expect(saveDown.body).toEqual({ statusCode: 503, message: 'Service Unavailable', code: 'SESSION_STORE_UNAVAILABLE' });
    expect(setCookies(readDown.headers)).toEqual([]);
  });
});
