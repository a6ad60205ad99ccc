import { Controller, Get, Logger, Module } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// A destroy() made after the response's save began (work a handler left behind) waits for that
// save's write: on a store where a late write would bring the session back, a logout never fails open.

@Controller()
class NotesController {
  @Get('note')
  note(@Session() session: Session) {
    session.set('note', 'kept');
    return { ok: true };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { note: session.get('note') ?? null };
  }

  /** Changes the session, answers, and signs out 20 ms later, while the answer's write is in flight. */
  @Get('note-then-logout')
  noteThenLogout(@Session() session: Session) {
    session.set('note', 'changed');
    setTimeout(() => void session.destroy().catch(() => undefined), 20);
    return { ok: true };
  }
}

describe.each(platforms)('a destroy() after the response began its save, on $name', (platform) => {
  afterEach(() => vi.restoreAllMocks());

  it("reaches the store only after the response's own write", async () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const store = new ControlledStore();
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [NotesController] })
    class NotesModule {}
    const t = await platform.create(NotesModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/note'));
      store.reset();
      const release = store.holdNextCall('patch'); // the answer's write reaches the store late
      const answer = t.http().get('/note-then-logout').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 120)); // the destroy() was asked for meanwhile
      release();
      expect((await answer).status).toBe(200);
      for (let i = 0; i < 100 && !store.calls.includes('destroy'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(store.calls.filter((call) => call === 'patch' || call === 'destroy')).toEqual(['patch', 'destroy']);
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ note: null });
    } finally {
      await t.close();
    }
  });
});
