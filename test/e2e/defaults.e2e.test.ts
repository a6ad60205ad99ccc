import { inspect } from 'node:util';
import { Controller, Get, Logger, Module, UseGuards, type Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CsrfGuard, Flash, Session, SessionConfigError, SessionModule, UseSession, type SessionModuleOptions } from '../../src/index.js';
import { requirePeer } from '../../src/stores/optional-peer.js';
import { setCookies } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// What a new app meets with the module's defaults: a developer's plain-HTTP client keeps its
// session, production gets `Secure` and refuses to start without a secret, and the errors of a
// first day say what to do.

@Controller()
class CountController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}

function appWith(options?: SessionModuleOptions) {
  @Module({ imports: [SessionModule.forRoot(options)], controllers: [CountController] })
  class AppModule {}
  return AppModule;
}

async function compile(module: Type<unknown>) {
  return Test.createTestingModule({ imports: [module] }).compile();
}

describe('the defaults a new app gets', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
  });

  for (const platform of platforms) {
    describe(platform.name, () => {
      it('outside production, a supertest agent over plain HTTP keeps the session: 1, 2, 3', async () => {
        vi.stubEnv('NODE_ENV', 'test');
        vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
        const t = await platform.create(appWith());
        try {
          const agent = request.agent(t.server);
          const first = await agent.get('/count');
          expect(first.body).toEqual({ visits: 1 });
          const [cookie] = setCookies(first.headers);
          expect(cookie.name).toBe('sid');
          expect(cookie.attributes).toMatchObject({ httponly: true, samesite: 'Lax', path: '/' });
          expect(cookie.attributes.secure).toBeUndefined();
          expect((await agent.get('/count')).body).toEqual({ visits: 2 });
          expect((await agent.get('/count')).body).toEqual({ visits: 3 });
        } finally {
          await t.close();
        }
      });

      it('outside production, a request that came over HTTPS gets a Secure cookie', async () => {
        vi.stubEnv('NODE_ENV', 'development');
        const t = await platform.create(appWith({ secret: SECRET }), { trustProxy: true });
        try {
          const [cookie] = setCookies((await t.http().get('/count').set('X-Forwarded-Proto', 'https')).headers);
          expect(cookie.attributes.secure).toBe(true);
        } finally {
          await t.close();
        }
      });

      it('outside production, a request a proxy says came over HTTPS gets a Secure cookie even where the app does not trust the proxy', async () => {
        vi.stubEnv('NODE_ENV', 'development');
        const t = await platform.create(appWith({ secret: SECRET }));
        try {
          for (const [header, value] of [['X-Forwarded-Proto', 'https'], ['X-Forwarded-Proto', 'https, http'], ['Forwarded', 'for=192.0.2.1;proto=https']]) {
            const [cookie] = setCookies((await t.http().get('/count').set(header, value)).headers);
            expect(cookie.attributes.secure).toBe(true);
          }
          for (const [header, value] of [['X-Forwarded-Proto', 'http'], ['X-Forwarded-Proto', 'http, https'], ['Forwarded', 'for=192.0.2.1;proto=http, for=198.51.100.1;proto=https']]) {
            const [plain] = setCookies((await t.http().get('/count').set(header, value)).headers);
            expect(plain.attributes.secure).toBeUndefined();
          }
        } finally {
          await t.close();
        }
      });

      it('with NODE_ENV=production (read as the app starts), the cookie is Secure over any connection', async () => {
        vi.stubEnv('NODE_ENV', 'production');
        const t = await platform.create(appWith({ secret: SECRET }));
        vi.unstubAllEnvs();
        try {
          const [cookie] = setCookies((await t.http().get('/count')).headers);
          expect(cookie.attributes).toMatchObject({ secure: true, httponly: true, samesite: 'Lax' });
          // A supertest agent drops a Secure cookie over plain HTTP, as a browser would.
          const agent = request.agent(t.server);
          await agent.get('/count');
          expect((await agent.get('/count')).body).toEqual({ visits: 1 });
        } finally {
          await t.close();
        }
      });

      it('secure: false keeps production plain-HTTP tests working when asked', async () => {
        vi.stubEnv('NODE_ENV', 'production');
        const t = await platform.create(appWith({ secret: SECRET, cookie: { secure: false } }));
        try {
          const agent = request.agent(t.server);
          await agent.get('/count');
          expect((await agent.get('/count')).body).toEqual({ visits: 2 });
        } finally {
          await t.close();
        }
      });
    });
  }

  it('where a cookie cannot work without Secure (SameSite=None, __Host-, __Secure-), the default is Secure outside production too', async () => {
    vi.stubEnv('NODE_ENV', 'development');
    const cases: SessionModuleOptions[] = [
      { secret: SECRET, cookie: { sameSite: 'none' } },
      { secret: SECRET, cookie: { name: '__Host-sid' } },
      { secret: SECRET, cookie: { name: '__Secure-sid' } },
    ];
    const [platform] = platforms;
    for (const options of cases) {
      const t = await platform.create(appWith(options));
      try {
        const [cookie] = setCookies((await t.http().get('/count')).headers);
        expect(cookie.attributes.secure).toBe(true);
      } finally {
        await t.close();
      }
    }
  });

  it('with NODE_ENV=production and no secret, the app refuses to start and says what to set', async () => {
    vi.stubEnv('NODE_ENV', 'production');
    const error = await compile(appWith()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionConfigError);
    expect((error as Error).message).toMatch(/secret is required when NODE_ENV is production/);
    expect((error as Error).message).toContain('SessionModule.forRoot({ secret: process.env.SESSION_SECRET })');
    const async = await compile(
      (() => {
        @Module({ imports: [SessionModule.forRootAsync({ useFactory: () => ({}) })] })
        class AsyncModule {}
        return AsyncModule;
      })(),
    ).catch((e: unknown) => e);
    expect(async).toBeInstanceOf(SessionConfigError);
  });

  it('an app whose sessions are all cookie-stored needs no top-level secret, in production too, and is not warned', async () => {
    const { CookieStore } = await import('../../src/index.js');
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    for (const env of ['production', 'development']) {
      vi.stubEnv('NODE_ENV', env);
      const t = await platforms[0].create(appWith({ store: new CookieStore({ secret: SECRET }) }));
      try {
        const agent = request.agent(t.server);
        const first = await agent.get('/count').set('X-Forwarded-Proto', 'https');
        expect(first.body).toEqual({ visits: 1 });
        expect(warn.mock.calls.map((call) => String(call[0])).filter((m) => m.includes('No secret set'))).toHaveLength(0);
      } finally {
        await t.close();
      }
    }
    // A server-side named session signed with the top-level secret still needs it.
    vi.stubEnv('NODE_ENV', 'production');
    await expect(compile(appWith({ store: new CookieStore({ secret: SECRET }), sessions: { prefs: {} } }))).rejects.toThrow(/secret is required when NODE_ENV is production/);
  });

  it('a secret list whose older entries are unset environment variables works (no rotation under way); the first must be set', async () => {
    const { CookieStore } = await import('../../src/index.js');
    const t = await platforms[0].create(appWith({ secret: [SECRET, undefined], sessions: { prefs: { store: new CookieStore({ secret: [SECRET, undefined] }) } } }));
    try {
      const agent = request.agent(t.server);
      await agent.get('/count');
      expect((await agent.get('/count')).body).toEqual({ visits: 2 });
    } finally {
      await t.close();
    }
    await expect(compile(appWith({ secret: [undefined, SECRET] }))).rejects.toThrow(/secret\[0\] is undefined, not a string \(is the environment variable set\?\)/);
    expect(() => new CookieStore({ secret: [undefined, SECRET] })).toThrow(SessionConfigError);
  });

  it('outside production, no secret starts with one warning', async () => {
    vi.stubEnv('NODE_ENV', 'development');
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const ref = await compile(appWith());
    try {
      expect(warn.mock.calls.map((call) => String(call[0])).filter((m) => m.includes('No secret set'))).toHaveLength(1);
    } finally {
      await ref.close();
    }
  });

  it('a configuration error prints as the error it is, not as an HTTP 500 body', async () => {
    const error = await compile(appWith({ secret: 'short' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionConfigError);
    const printed = inspect(error);
    expect(printed).toContain('SessionConfigError: secret must be at least 32 characters');
    expect(printed).not.toMatch(/statusCode|Internal Server Error|status:|response:/);
  });
});

describe('an app that uses the decorators without importing SessionModule', () => {
  @Controller()
  class ParamController {
    @Get('a')
    a(@Flash() flash: Flash) {
      return flash.peek('info');
    }
  }

  @Controller()
  @UseSession()
  class ContextController {
    @Get('b')
    b() {
      return 'b';
    }
  }

  @Controller()
  @UseGuards(CsrfGuard)
  class CsrfController {
    @Get('c')
    c() {
      return 'c';
    }
  }

  it.each<[string, Type<unknown>, string]>([
    ['@Session() / @Flash()', ParamController, '@Session() and @Flash() need'],
    ['@UseSession()', ContextController, 'SessionInterceptor (@UseSession()) needs'],
    ['CsrfGuard', CsrfController, 'CsrfGuard needs'],
  ])('%s stops the app at startup with an error naming SessionModule.forRoot()', async (_, controller, user) => {
    @Module({ controllers: [controller] })
    class AppModule {}
    const error = await compile(AppModule).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionConfigError);
    expect((error as Error).message).toContain(
      `${user} SessionModule.forRoot() (or forRootAsync()) in the imports of your root module: @Module({ imports: [SessionModule.forRoot()] }) export class AppModule {}. In a test, import it in Test.createTestingModule({ imports: [...] }), also for a guard of yours that injects SessionService.`,
    );
    expect((error as Error).message.startsWith(user)).toBe(true);
  });
});

describe('an optional peer that is not installed', () => {
  it('names the package to install', () => {
    expect(() => requirePeer('nest-sessions-no-such-package', 'RedisStore with `url`')).toThrow(
      new SessionConfigError("RedisStore with `url` needs the 'nest-sessions-no-such-package' package, which is not installed: run `npm install nest-sessions-no-such-package`"),
    );
  });

  it('a package that is installed loads', () => {
    expect(typeof requirePeer<typeof import('ioredis')>('ioredis', 'RedisStore').Redis).toBe('function');
  });
});
