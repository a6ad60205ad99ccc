import { Controller, Get, Inject, Module, type Type } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { SessionModule, SessionService, UseSession } from '../../src/index.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

/** One handler, inherited by controllers that ask for different sessions. */
class WhoRoutes {
  constructor(@Inject(SessionService) private readonly sessions: SessionService) {}

  /** Which sessions `SessionService.current()` finds here. */
  @Get('who')
  who() {
    return { default: this.sessions.current() !== undefined, admin: this.sessions.current('admin') !== undefined };
  }
}

@Controller('admin')
@UseSession('admin')
class AdminController extends WhoRoutes {}

@Controller('site')
@UseSession()
class SiteController extends WhoRoutes {}

function inheritedModule(): Type<unknown> {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, sessions: { admin: { cookie: { name: 'admin' } } } })],
    controllers: [AdminController, SiteController],
  })
  class InheritedModule {}
  return InheritedModule;
}

const expected: Record<string, unknown> = {
  '/admin/who': { default: false, admin: true },
  '/site/who': { default: true, admin: false },
};

describe.each(platforms)('controllers inheriting one handler, on $name', (platform) => {
  // Each order on a fresh app: what the first request reads of its controller must not carry over to the other.
  it.each([
    ['the admin controller first', ['/admin/who', '/site/who']],
    ['the site controller first', ['/site/who', '/admin/who']],
  ])('each gets the sessions its own controller asks for, %s', async (_order, paths) => {
    const app = await platform.create(inheritedModule());
    try {
      for (const path of [...paths, ...paths]) {
        const response = await app.http().get(path);
        expect({ path, status: response.status }).toEqual({ path, status: 200 });
        expect({ path, body: response.body }).toEqual({ path, body: expected[path] });
      }
    } finally {
      await app.close();
    }
  });
});
