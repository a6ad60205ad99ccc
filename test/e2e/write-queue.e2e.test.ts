import { Controller, Get, Logger, Module } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// Writes queued behind one another on one session object: each must be planned against what the
// one before it confirmed AND what the app did to the session meanwhile.

const outcomes: string[] = [];

@Controller()
class QueueController {
  @Get('start')
  start(@Session() session: Session) {
    session.set('keep', 'k');
    return { ok: true };
  }

  /** Sets a key, saves it (not awaited), then deletes it again before that write has landed. */
  @Get('set-save-delete')
  setSaveDelete(@Session() session: Session) {
    session.set('temp', 'x');
    void session.save();
    session.delete('temp');
    return { has: session.has('temp') };
  }

  /** The same with clear(). */
  @Get('set-save-clear')
  setSaveClear(@Session() session: Session) {
    session.set('temp', 'x');
    void session.save();
    session.clear();
    return { ok: true };
  }

  /** Sets a key for the response's write, then deletes it after the response, while that write is in flight. */
  @Get('set-then-late-delete')
  setThenLateDelete(@Session() session: Session) {
    session.set('temp', 'x');
    setTimeout(() => session.delete('temp'), 30);
    return { ok: true };
  }

  /** A logout whose destroy() is not awaited: the response must still clear the cookie. */
  @Get('logout-unawaited')
  logoutUnawaited(@Session() session: Session) {
    void session.destroy().catch(() => undefined);
    return { ok: true };
  }

  /** Changes the session (its response write will fail), then, after the 503, sets a key and awaits save(). */
  @Get('change-then-save-later')
  changeThenSaveLater(@Session() session: Session) {
    session.set('keep', 'changed');
    setTimeout(() => {
      session.set('late', 'v');
      session.save().then(
        () => outcomes.push('resolved'),
        () => outcomes.push('rejected'),
      );
    }, 60);
    return { ok: true };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { keep: session.get('keep') ?? null, temp: session.get('temp') ?? null, late: session.get('late') ?? null };
  }
}

function app() {
  const store = new ControlledStore();
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [QueueController] })
  class QueueModule {}
  return { store, QueueModule };
}

describe.each(platforms)("a session's queued writes, on $name", (platform) => {
  afterEach(() => vi.restoreAllMocks());

  it('a key deleted while the explicit save() that set it is in flight stays deleted', async () => {
    const { store, QueueModule } = app();
    const t = await platform.create(QueueModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      const release = store.holdNextAnswer('patch'); // the explicit save's write lands, its answer comes late
      const answer = t.http().get('/set-save-delete').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 80));
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ has: false });
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ keep: 'k', temp: null, late: null });
    } finally {
      await t.close();
    }
  });

  it("a key deleted after the response, while the response's write of it is in flight, stays deleted", async () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { store, QueueModule } = app();
    const t = await platform.create(QueueModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      const release = store.holdNextAnswer('patch'); // the response's write lands, its answer comes late
      const answer = t.http().get('/set-then-late-delete').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the delete was made meanwhile
      release();
      expect((await answer).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the change after the response is saved
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ keep: 'k', temp: null, late: null });
    } finally {
      await t.close();
    }
  });

  it('a key cleared while the explicit save() that set it is in flight stays cleared', async () => {
    const { store, QueueModule } = app();
    const t = await platform.create(QueueModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      const release = store.holdNextAnswer('patch');
      const answer = t.http().get('/set-save-clear').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 80));
      release();
      expect((await answer).status).toBe(200);
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ keep: null, temp: null, late: null });
    } finally {
      await t.close();
    }
  });

  it('an unawaited destroy() still clears the cookie of the response it was asked for in', async () => {
    const { store, QueueModule } = app();
    const t = await platform.create(QueueModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      const release = store.holdNextAnswer('destroy'); // the destroy is still in flight as the response leaves
      const answer = t.http().get('/logout-unawaited').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 80));
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      const sid = setCookies(res.headers).find((cookie) => cookie.name === 'sid');
      expect(sid?.attributes['max-age']).toBe('0');
    } finally {
      await t.close();
    }
  });

  it('a save() after the response became a 503 that resolves has written its change', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { store, QueueModule } = app();
    const t = await platform.create(QueueModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      outcomes.length = 0;
      store.failNext('patch');
      expect((await t.http().get('/change-then-save-later').set('Cookie', jar.header())).status).toBe(503);
      await vi.waitFor(() => expect(outcomes).toHaveLength(1));
      const late = ((await t.http().get('/read').set('Cookie', jar.header())).body as { late: string | null }).late;
      // Either save() tells the app it failed, or what it resolved for is in the store.
      expect(outcomes[0] === 'rejected' || late === 'v').toBe(true);
    } finally {
      await t.close();
    }
  });
});
