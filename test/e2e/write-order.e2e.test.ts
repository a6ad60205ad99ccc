import { Controller, Get, Logger, Module } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, Session, SessionModule } from '../../src/index.js';
import type { SessionPatch, SessionRecord } from '../../src/store.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// Every write of a session goes through one queue: whoever starts it (an explicit save(), the
// response leaving, a change after the response, a destroy), a later write never reaches the store
// before an earlier one has landed, on a store that would reorder them (a pool of connections).

/** A memory store that records the value of `step` each write carries, in the order writes land. */
class RecordingStore extends MemoryStore {
  readonly landed: (string | null)[] = [];
  override set(id: string, record: SessionRecord) {
    this.landed.push(record.data.step ?? null);
    return super.set(id, record);
  }
  override patch(id: string, patch: SessionPatch) {
    this.landed.push(patch.set.step ?? (patch.unset.includes('step') ? null : '(no step)'));
    return super.patch(id, patch);
  }
}

@Controller()
class StepsController {
  @Get('start')
  start(@Session() session: Session) {
    session.set('step', 0);
    return { ok: true };
  }

  /** Two explicit saves, the first not awaited, then the response's own save. */
  @Get('two-saves')
  async twoSaves(@Session() session: Session) {
    session.set('step', 1);
    void session.save();
    session.set('step', 2);
    await session.save();
    return { ok: true };
  }

  /** Saves, answers, and changes the session again while the first write is still in flight. */
  @Get('save-then-late-change')
  async saveThenLateChange(@Session() session: Session) {
    session.set('step', 1);
    void session.save();
    setTimeout(() => session.set('step', 2), 30);
    return { ok: true };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { step: session.get('step') ?? null };
  }
}

function steps() {
  const store = new ControlledStore(new RecordingStore({ sweepInterval: 0 }));
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [StepsController] })
  class StepsModule {}
  return { store, StepsModule };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(platforms)("a session's writes over HTTP, on $name", (platform) => {
  afterEach(() => vi.restoreAllMocks());

  it('two explicit saves land in the order they were made, though the first reaches the store late', async () => {
    const { store, StepsModule } = steps();
    const t = await platform.create(StepsModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      store.inner.landed.length = 0;
      const release = store.holdNextCall('patch'); // the first save's write reaches the store late
      const answer = t.http().get('/two-saves').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100)); // the second save was asked for meanwhile
      release();
      expect((await answer).status).toBe(200);
      expect(store.inner.landed).toEqual(['1', '2']);
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ step: 2 });
    } finally {
      await t.close();
    }
  });

  it("a change after the response waits for the explicit save still in flight", async () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { store, StepsModule } = steps();
    const t = await platform.create(StepsModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      store.inner.landed.length = 0;
      const release = store.holdNextCall('patch'); // the explicit save's write reaches the store late
      const answer = t.http().get('/save-then-late-change').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 150)); // the response waited; the late change was made
      release();
      expect((await answer).status).toBe(200);
      await until(() => store.inner.landed.length >= 2, 'the late change to be saved');
      expect(store.inner.landed).toEqual(['1', '2']);
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ step: 2 });
    } finally {
      await t.close();
    }
  });
});
