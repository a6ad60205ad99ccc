import { Controller, Get, Injectable, Logger, Module, type Type } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  MemoryStore,
  Session,
  SessionConfigError,
  SessionModule,
  SessionService,
  UseSession,
  type SessionModuleOptions,
} from '../../src/index.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

@Controller()
class CountController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}

@Injectable()
class Feature {
  constructor(readonly sessions: SessionService) {}
}

@Module({ providers: [Feature], exports: [Feature] })
class FeatureModule {}

function replaceMethod(): MethodDecorator {
  return (_target, _key, descriptor: PropertyDescriptor) => {
    const original = descriptor.value as (...args: unknown[]) => unknown;
    descriptor.value = function (this: unknown, ...args: unknown[]) {
      return original.apply(this, args);
    };
  };
}

@Controller()
class CurrentController {
  constructor(private readonly sessions: SessionService) {}

  @Get('plain')
  plain() {
    const session = this.sessions.current();
    session?.set('seen', ((session.get('seen') as number | undefined) ?? 0) + 1);
    return { seen: session?.get('seen') ?? null };
  }

  @Get('param-only')
  paramOnly(@Session() session: Session) {
    return { same: this.sessions.current() === session, current: this.sessions.current() === undefined ? 'none' : 'some' };
  }

  @Get('param-and-context')
  @UseSession()
  paramAndContext(@Session() session: Session) {
    return { same: this.sessions.current() === session };
  }
}

@Controller()
class WrappedController {
  @Get('wrapped')
  @replaceMethod()
  wrapped(@Session() session: Session) {
    return { isNew: session.isNew };
  }

  @Get('wrapped-fixed')
  @UseSession()
  @replaceMethod()
  wrappedFixed(@Session() session: Session) {
    return { isNew: session.isNew };
  }
}

async function compile(module: Type<unknown>) {
  return Test.createTestingModule({ imports: [module] }).compile();
}

function moduleWith(options?: SessionModuleOptions, controllers: Type<unknown>[] = [CountController]) {
  @Module({ imports: [SessionModule.forRoot(options), FeatureModule], controllers })
  class M {}
  return M;
}

describe('SessionModule', () => {
  afterEach(() => vi.restoreAllMocks());

  it('forRoot() with no options works and warns once about the random secret', async () => {
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    for (const platform of platforms) {
      warn.mockClear();
      const t = await platform.create(moduleWith());
      try {
        const messages = warn.mock.calls.map((call) => String(call[0]));
        expect(messages.filter((m) => m.includes('No secret set'))).toHaveLength(1);
        const jar = new CookieJar();
        const [cookie] = jar.take(await t.http().get('/count'));
        expect(cookie.name).toBe('sid');
        expect(cookie.attributes).toMatchObject({ httponly: true, samesite: 'Lax', path: '/' });
        expect(cookie.attributes.secure).toBeUndefined(); // over plain HTTP outside production
        expect(cookie.attributes['max-age']).toBeUndefined();
        expect((await t.http().get('/count').set('Cookie', jar.header())).body).toEqual({ visits: 2 });
      } finally {
        await t.close();
      }
    }
  });

  it('is global: a feature module injects SessionService without importing SessionModule', async () => {
    const ref = await compile(moduleWith({ secret: SECRET }));
    expect(ref.get(Feature).sessions).toBeInstanceOf(SessionService);
    await ref.close();
  });

  it('forRootAsync() takes its options from @nestjs/config', async () => {
    @Module({
      imports: [
        SessionModule.forRootAsync({
          imports: [ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => ({ SESSION_SECRET: SECRET, COOKIE: 'async_sid' })] })],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({
            secret: config.getOrThrow<string>('SESSION_SECRET'),
            cookie: { name: config.getOrThrow<string>('COOKIE') },
          }),
        }),
      ],
      controllers: [CountController],
    })
    class AsyncModule {}
    for (const platform of platforms) {
      const t = await platform.create(AsyncModule);
      try {
        const res = await t.http().get('/count');
        expect(res.body).toEqual({ visits: 1 });
        expect(setCookies(res.headers)[0].name).toBe('async_sid');
      } finally {
        await t.close();
      }
    }
  });

  it('forRootAsync() refuses an interceptor mode returned by the factory', async () => {
    @Module({ imports: [SessionModule.forRootAsync({ useFactory: () => ({ secret: SECRET, interceptor: 'global' as const }) })] })
    class Wrong {}
    await expect(compile(Wrong)).rejects.toThrow(/set interceptor beside useFactory/);
  });

  it.each<[string, SessionModuleOptions, RegExp]>([
    ['a short secret', { secret: 'short' }, /secret must be at least 32 characters \(it has 5\)/],
    ['a short secret in a list', { secret: [SECRET, 'short'] }, /secret\[1\] must be at least 32 characters/],
    ['an empty secret list', { secret: [] }, /secret must be a string or a non-empty list/],
    ['an unset environment variable', { secret: [undefined] }, /secret\[0\] is undefined, not a string/],
    ['SameSite=None without Secure', { secret: SECRET, cookie: { sameSite: 'none', secure: false } }, /sameSite 'none' requires cookie.secure: true/],
    ['a __Host- cookie with a domain', { secret: SECRET, cookie: { name: '__Host-sid', domain: 'example.com' } }, /__Host- cookie needs secure: true, path '\/' and no domain/],
    ['a __Host- cookie without Secure', { secret: SECRET, cookie: { name: '__Host-sid', secure: false } }, /__Host- cookie needs secure: true/],
    ['a __Host- cookie on a sub-path', { secret: SECRET, cookie: { name: '__Host-sid', path: '/app' } }, /__Host- cookie needs/],
    ['a __Secure- cookie without Secure', { secret: SECRET, cookie: { name: '__Secure-sid', secure: false } }, /__Secure- cookie needs secure: true/],
    ['a bad cookie name', { secret: SECRET, cookie: { name: 'my sid' } }, /cookie.name 'my sid' is not a valid cookie name/],
    ['a negative idle timeout', { secret: SECRET, idleTimeout: -1 }, /idleTimeout must be a number of milliseconds from 1 to 34560000000 \(400 days, the longest a browser keeps a cookie\), got -1/],
    ['a named session sharing the cookie name', { secret: SECRET, sessions: { other: { cookie: { name: 'sid' } } } }, /both use the cookie name 'sid'/],
    ['a store that is not a store', { secret: SECRET, store: {} as never }, /store must implement SessionStore/],
    ['a bad option in a named session', { secret: SECRET, sessions: { prefs: { absoluteTimeout: 0 } } }, /sessions.prefs.absoluteTimeout must be a number of milliseconds from 1 to/],
  ])('refuses %s at startup with a SessionConfigError naming the option', async (_, options, message) => {
    const error = await compile(moduleWith(options)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionConfigError);
    expect((error as Error).message).toMatch(message);
  });

  it('never puts a secret in an error message', async () => {
    const secret = 'this-is-a-secret-value-but-too-short';
    const error = (await compile(moduleWith({ secret: secret.slice(0, 20) })).catch((e: unknown) => e)) as Error;
    expect(error.message).not.toContain(secret.slice(0, 20));
  });

  it('accepts a __Host- cookie configured properly', async () => {
    for (const platform of platforms) {
      const t = await platform.create(moduleWith({ secret: SECRET, cookie: { name: '__Host-sid' } }));
      try {
        const [cookie] = setCookies((await t.http().get('/count')).headers);
        expect(cookie.name).toBe('__Host-sid');
        expect(cookie.attributes.domain).toBeUndefined();
      } finally {
        await t.close();
      }
    }
  });

  it('a method decorator that replaces the method drops the binding with a clear error; @UseSession() above it restores it', async () => {
    const error = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    for (const platform of platforms) {
      const t = await platform.create(moduleWith({ secret: SECRET }, [WrappedController]));
      try {
        const res = await t.http().get('/wrapped');
        expect(res.status).toBe(500);
        const logged = [...error.mock.calls.flat()].map(String).join('\n');
        expect(logged).toMatch(/no session was loaded for this parameter/);
        expect((await t.http().get('/wrapped-fixed')).body).toEqual({ isNew: true });
      } finally {
        await t.close();
      }
    }
  });

  it("current() works on every route with interceptor: 'global' (forRoot and forRootAsync), and saves what it changes", async () => {
    @Module({
      imports: [SessionModule.forRootAsync({ interceptor: 'global', useFactory: () => ({ secret: SECRET }) })],
      controllers: [CurrentController],
    })
    class AsyncGlobal {}
    for (const module of [moduleWith({ secret: SECRET, interceptor: 'global' }, [CurrentController]), AsyncGlobal]) {
      for (const platform of [platforms[0], platforms[2]]) {
        const t = await platform.create(module);
        try {
          const jar = new CookieJar();
          jar.take(await t.http().get('/plain'));
          expect((await t.http().get('/plain').set('Cookie', jar.header())).body).toEqual({ seen: 2 });
        } finally {
          await t.close();
        }
      }
    }
  });

  it('current() needs @UseSession() on a @Session() route (routes run outside the context unless asked)', async () => {
    for (const platform of [platforms[0], platforms[2]]) {
      const t = await platform.create(moduleWith({ secret: SECRET }, [CurrentController]));
      try {
        expect((await t.http().get('/param-only')).body).toEqual({ same: false, current: 'none' });
        expect((await t.http().get('/param-and-context')).body).toEqual({ same: true });
        expect((await t.http().get('/plain')).body).toEqual({ seen: null });
      } finally {
        await t.close();
      }
    }
  });

  it('app.close() stops the memory store timer', async () => {
    const store = new MemoryStore({ sweepInterval: 1000 });
    const close = vi.spyOn(store, 'close');
    const t = await platforms[0].create(moduleWith({ secret: SECRET, store }));
    await t.close();
    expect(close).toHaveBeenCalledTimes(1);
  });
});
