import { Controller, Get, Logger, Module, Res } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// A response held while its save is in flight (HOLDING): a change made between its head and its end
// is saved as it ends; a head flushed with flushHeaders() waits for the save and carries its cookie.

@Controller()
class GateController {
  @Get('start')
  start(@Session() session: Session) {
    session.set('kind', 'start');
    return { ok: true };
  }

  /** Head (held: the save is in flight), a change 20 ms later, the end 40 ms later. */
  @Get('held-head-change-end')
  heldHeadChangeEnd(@Session() session: Session, @Res() res: { raw?: ServerResponse } & ServerResponse) {
    const raw = res.raw ?? res;
    session.set('kind', 'held');
    raw.writeHead(200, { 'content-type': 'text/plain' });
    setTimeout(() => session.set('between', 'head and end'), 20);
    setTimeout(() => raw.end('x'), 40);
  }

  /** The same with flushHeaders() and a body written after the change. */
  @Get('held-flush-change-write-end')
  heldFlush(@Session() session: Session, @Res() res: { raw?: ServerResponse } & ServerResponse) {
    const raw = res.raw ?? res;
    session.set('kind', 'flushed');
    raw.setHeader('content-type', 'text/plain');
    raw.flushHeaders();
    setTimeout(() => session.set('between', 'flush and end'), 20);
    setTimeout(() => {
      raw.write('a');
      raw.end('b');
    }, 40);
  }

  @Get('read')
  read(@Session() session: Session) {
    return { kind: session.get('kind') ?? null, between: session.get('between') ?? null };
  }
}

describe.each(platforms)('a change made while the response is held for its save, on $name', (platform) => {
  afterEach(() => vi.restoreAllMocks());

  it('a change between a held head and the end is saved as the response ends', async () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const store = new ControlledStore();
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [GateController] })
    class GateModule {}
    const t = await platform.create(GateModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      const release = store.holdNextAnswer('patch'); // the response's own write: in flight until released
      const answer = t.http().get('/held-head-change-end').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the change and the end were made meanwhile
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      expect(res.text).toBe('x');
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ kind: 'held', between: 'head and end' });
    } finally {
      await t.close();
    }
  });

  it("flushHeaders() on a new session: the head waits for the creation and carries its cookie; a change before the end is saved", async () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const store = new ControlledStore();
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [GateController] })
    class GateModule {}
    const t = await platform.create(GateModule);
    try {
      const release = store.holdNextAnswer('set'); // the creation: in flight until released
      const answer = t.http().get('/held-flush-change-write-end').then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100));
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      expect(res.text).toBe('ab');
      const jar = new CookieJar();
      jar.take(res);
      expect(jar.get('sid')).toBeDefined();
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ kind: 'flushed', between: 'flush and end' });
    } finally {
      await t.close();
    }
  });
});
