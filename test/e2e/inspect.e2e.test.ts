import { inspect } from 'node:util';
import { Controller, Get, Module } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CsrfToken, Session, SessionModule, type Session as SessionType } from '../../src/index.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

@Controller()
class InspectController {
  @Get('login/:name')
  login(@Session() session: SessionType, @CsrfToken() token: string) {
    session.set('name', 'visitor');
    return { token };
  }

  /** What an app that logs its session would write. */
  @Get('dump')
  dump(@Session() session: SessionType) {
    return { text: inspect(session, { depth: 10, showHidden: true }), logged: `${inspect(session)}` };
  }
}

@Module({ imports: [SessionModule.forRoot({ secret: SECRET })], controllers: [InspectController] })
class InspectModule {}

describe.each(platforms)('a logged session shows no secret, on $name', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await platform.create(InspectModule);
  });
  afterAll(() => t?.close());

  it("shows its data, and neither its own id, cookie or CSRF secret nor another visitor's cookie", async () => {
    const alice = new CookieJar();
    const bob = new CookieJar();
    alice.take(await t.http().get('/login/alice'));
    bob.take(await t.http().get('/login/bob'));
    const aliceCookie = decodeURIComponent(alice.get('sid')!);
    const bobCookie = decodeURIComponent(bob.get('sid')!);
    expect(aliceCookie).toBeTruthy();

    // Alice's cookie is verified (and remembered by the signer) before Bob's session is dumped.
    await t.http().get('/dump').set('Cookie', alice.header());
    const dump = (await t.http().get('/dump').set('Cookie', bob.header())).body as { text: string; logged: string };
    for (const text of [dump.text, dump.logged]) {
      expect(text).toContain('visitor');
      expect(text).not.toContain(aliceCookie.split('.')[0]);
      expect(text).not.toContain(bobCookie.split('.')[0]);
      expect(text).not.toMatch(/csrf/i);
      expect(text).not.toContain('\\x00');
      expect(text).not.toContain(SECRET);
    }
  });
});
