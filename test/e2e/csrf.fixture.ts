import { inspect } from 'node:util';
import { All, Body, Controller, Get, HttpCode, Module, Options, Post, UseGuards, type Type } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { CsrfGuard, CsrfToken, Session, SessionModule, SkipCsrf, type SessionModuleOptions } from '../../src/index.js';
import { CSRF_SECRET_KEY } from '../../src/session/session.constants.js';
import type { SessionState } from '../../src/session/session.js';
import { SECRET } from './app.fixture.js';

/** The names of the ways of enumerating `session` whose result shows its CSRF secret or its id. */
function leaksOf(session: Session): string[] {
  const secret = (session as unknown as SessionState).getInternal(CSRF_SECRET_KEY);
  if (typeof secret !== 'string') throw new Error('the session holds no CSRF secret');
  const forIn: string[] = [];
  for (const key in session) forIn.push(key);
  const attempt = (make: () => unknown) => {
    try {
      return make();
    } catch (error) {
      return String(error);
    }
  };
  const views: Record<string, unknown> = {
    spread: { ...session },
    assign: Object.assign({}, session),
    keys: Object.keys(session),
    entries: Object.entries(session),
    values: Object.values(session),
    forIn,
    json: JSON.stringify(session),
    toJSON: session.toJSON(),
    toJSONSpread: { ...session.toJSON() },
    clone: attempt(() => structuredClone(session)),
    inspect: inspect(session, { depth: 6, showHidden: true }),
  };
  return Object.keys(views).filter((name) => {
    const text = inspect(views[name], { depth: 6, showHidden: true, maxStringLength: Infinity, maxArrayLength: Infinity });
    return text.includes(secret) || text.includes(session.id) || text.includes('\\x00csrf');
  });
}

/** Routes that hand out tokens (every method: a token is asked for, not checked). */
@Controller()
export class TokenController {
  @Get('form')
  form(@CsrfToken() token: string) {
    return { token };
  }

  /** Two tokens in one response: each masked with its own pad. */
  @Get('form/twice')
  twice(@CsrfToken() first: string, @CsrfToken() second: string) {
    return { tokens: [first, second] };
  }

  @Get('form/transfer')
  transferForm(@CsrfToken({ path: '/transfer' }) token: string) {
    return { token };
  }

  /** A per-form token for the path of this very request, and a PUT to another one. */
  @Get('form/self')
  selfForm(@CsrfToken({ method: 'post' }) post: string, @CsrfToken({ method: 'PUT', path: '/transfer/' }) put: string) {
    return { post, put };
  }

  @HttpCode(200)
  @Post('form/self')
  @UseGuards(CsrfGuard)
  selfPost() {
    return { ok: true };
  }

  /** The secret made in this very request: the Session API does not show it either. */
  @Get('form/view')
  formView(@CsrfToken() token: string, @Session() session: Session) {
    return { token, data: session.toJSON(), has: session.has('\u0000csrf'), get: session.get('\u0000csrf') ?? null };
  }

  /** A request that changes the session: its cookie is set again when it has a Max-Age. */
  @Get('count')
  count(@Session() session: Session) {
    const count = ((session.get('count') as number | undefined) ?? 0) + 1;
    session.set('count', count);
    return { count };
  }

  /** Every way to enumerate a session that holds a CSRF secret: which of them shows the secret or the id. */
  @Get('session/enumerate')
  enumerate(@Session() session: Session) {
    return { leaks: leaksOf(session) };
  }

  /** The same, with the secret made in this very request. */
  @Get('form/enumerate')
  formEnumerate(@CsrfToken() _token: string, @Session() session: Session) {
    return { leaks: leaksOf(session) };
  }

  @Get('plain')
  plain() {
    return { ok: true };
  }

  /** A preflight's own handler: app-wide, the guard lets it through untouched. */
  @Options('plain')
  plainOptions() {
    return { ok: true, method: 'OPTIONS' };
  }

  /** A sign-out no guard checks (a link): the session ends without the CSRF check. */
  @Get('sign-out')
  async signOut(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }

  /** What the Session API shows of a session that holds a CSRF secret. */
  @Get('session')
  view(@Session() session: Session) {
    const attempts: Record<string, string> = {};
    for (const [name, attempt] of [
      ['set', () => session.set('\u0000csrf', 'mine')],
      ['setOther', () => session.set('\u0000other', 1)],
      ['delete', () => session.delete('\u0000csrf')],
    ] as const) {
      try {
        attempt();
        attempts[name] = 'accepted';
      } catch (error) {
        attempts[name] = `${(error as Error).name}: ${(error as { path?: string }).path === undefined ? '' : 'path given'}`;
      }
    }
    return {
      data: session.toJSON(),
      has: session.has('\u0000csrf'),
      get: session.get('\u0000csrf') ?? null,
      attempts,
    };
  }
}

@Controller()
@UseGuards(CsrfGuard)
export class GuardedController {
  @HttpCode(200)
  @Post('transfer')
  transfer(@Body() body: Record<string, unknown>) {
    return { ok: true, body };
  }

  /** Every method: PUT, PATCH and DELETE are checked like POST. */
  @All('any')
  any() {
    return { ok: true };
  }

  @HttpCode(200)
  @Post('other')
  other() {
    return { ok: true };
  }

  /** Safe methods pass, and load no session. */
  @Get('guarded-get')
  guardedGet() {
    return { ok: true };
  }

  /** OPTIONS is a safe method: the guard lets it reach the handler. */
  @HttpCode(200)
  @Options('guarded-options')
  guardedOptions() {
    return { ok: true, method: 'OPTIONS' };
  }

  @HttpCode(200)
  @Post('login')
  async login(@Session() session: Session) {
    await session.regenerate();
    session.set('userId', 7);
    return { ok: true };
  }

  @HttpCode(200)
  @Post('logout')
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }

  @HttpCode(200)
  @Post('clear')
  clear(@Session() session: Session) {
    session.set('visits', 1);
    session.clear();
    return { data: session.toJSON() };
  }

  @HttpCode(200)
  @Post('hook')
  @SkipCsrf()
  hook() {
    return { ok: true };
  }
}

/** No guard: a POST pays nothing. */
@Controller()
export class OpenController {
  @HttpCode(200)
  @Post('open')
  open() {
    return { ok: true };
  }
}

/** Guarded by a skipped controller: every route of it passes. */
@Controller('webhooks')
@SkipCsrf()
export class WebhookController {
  @HttpCode(200)
  @Post('incoming')
  incoming() {
    return { ok: true };
  }
}

/** One guarded handler, inherited by a skipped controller and by a checked one. */
@UseGuards(CsrfGuard)
class InheritedRoutes {
  @HttpCode(200)
  @Post('delete')
  remove() {
    return { ok: true };
  }
}

@Controller('inherited-webhook')
@SkipCsrf()
export class InheritedWebhookController extends InheritedRoutes {}

@Controller('inherited-account')
export class InheritedAccountController extends InheritedRoutes {}

/** A base class marked `@SkipCsrf()`: every controller inheriting from it is exempt. */
@SkipCsrf()
@UseGuards(CsrfGuard)
class SkippedRoutes {
  @HttpCode(200)
  @Post('delete')
  remove() {
    return { ok: true };
  }
}

@Controller('skipped-base')
export class SkippedBaseController extends SkippedRoutes {}

/** Two controllers that share an inherited handler; only one of them is `@SkipCsrf()`. */
export function inheritedCsrfModule(): Type<unknown> {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET })],
    controllers: [TokenController, InheritedWebhookController, InheritedAccountController, SkippedBaseController],
  })
  class InheritedCsrfAppModule {}
  return InheritedCsrfAppModule;
}

/** Per route and per controller. */
export function csrfModule(options: SessionModuleOptions = {}): Type<unknown> {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, ...options })],
    controllers: [TokenController, GuardedController, OpenController],
  })
  class CsrfAppModule {}
  return CsrfAppModule;
}

/** App-wide: `APP_GUARD`. */
export function globalCsrfModule(options: SessionModuleOptions = {}): Type<unknown> {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, ...options })],
    controllers: [TokenController, OpenController, WebhookController],
    providers: [{ provide: APP_GUARD, useClass: CsrfGuard }],
  })
  class GlobalCsrfAppModule {}
  return GlobalCsrfAppModule;
}
