import {
  BadRequestException,
  Body,
  Catch,
  Controller,
  Get,
  HttpCode,
  Injectable,
  Logger,
  Module,
  Param,
  Post,
  Redirect,
  Render,
  Req,
  Res,
  Sse,
  StreamableFile,
  UseFilters,
  UseGuards,
  UseInterceptors,
  type ArgumentsHost,
  type CallHandler,
  type CanActivate,
  type ExceptionFilter,
  type ExecutionContext,
  type MessageEvent,
  type MiddlewareConsumer,
  type NestMiddleware,
  type NestModule,
  type NestInterceptor,
} from '@nestjs/common';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { ExpressAdapter } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { Observable, of, switchMap } from 'rxjs';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CookieStore, Flash, Session, SessionModule, SessionService } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

type RawResponse = { setHeader(n: string, v: string): void; writeHead(s: number, h: unknown): void; end(b: string): void };

/** One headers object for every response, as an app may keep in a constant. */
const SHARED_HEAD = { 'content-type': 'text/plain' };
/** Set when a write callback of a replaced response was called. */
const callbacks = { ended: false };
/** What a handler did once its response had gone out. */
const afterSend: string[] = [];

/** Requests parked in a handler until the test lets them go on. */
const parked = new Map<string, { arrived: () => void; release: Promise<void> }>();

function park(key: string): { arrived: Promise<void>; release: () => void } {
  let arrived!: () => void;
  let release!: () => void;
  const arrival = new Promise<void>((resolve) => (arrived = resolve));
  parked.set(key, { arrived: () => arrived(), release: new Promise<void>((resolve) => (release = resolve)) });
  return { arrived: arrival, release };
}

@Catch(BadRequestException)
class FlashingFilter implements ExceptionFilter {
  constructor(private readonly sessions: SessionService) {}
  async catch(exception: BadRequestException, host: ArgumentsHost) {
    const session = await this.sessions.load(host);
    session.flash.add('error', 'from the filter');
    const res = host.switchToHttp().getResponse<{ status?: (code: number) => { send(b: unknown): void }; code?: (code: number) => { send(b: unknown): void } }>();
    const reply = typeof res.code === 'function' ? res.code(400) : res.status!(400);
    reply.send({ filtered: true });
  }
}

@Injectable()
class ChangeAfterHandler implements NestInterceptor {
  constructor(private readonly sessions: SessionService) {}
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      switchMap(async (value: unknown) => {
        const session = await this.sessions.load(context);
        session.set('after', 'outer interceptor');
        return value;
      }),
    );
  }
}

/** Lets every request through, also when the store cannot be read: the handler's own session decides. */
@Injectable()
class LenientGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    try {
      await this.sessions.load(context);
    } catch {
      // The handler's @Session() answers for it.
    }
    return true;
  }
}

/** A controller's guard runs before the loader of its handler's @Session(). */
@Controller('lenient')
@UseGuards(LenientGuard)
class LenientController {
  @Get()
  lenient(@Session() session: Session) {
    return { visits: session.get('visits') ?? 0 };
  }
}

@Controller()
class LifecycleController {
  constructor(private readonly sessions: SessionService) {}

  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('all')
  all(@Session() session: Session, @Flash() flash: Flash) {
    return { data: session.toJSON(), flash: flash.peek('info'), maxAge: (session as unknown as { meta: { maxAge?: number } }).meta.maxAge ?? null };
  }

  @Get('park/:name/:key')
  async parkThenSet(@Session() session: Session, @Param('name') name: string, @Param('key') key: string) {
    const spot = parked.get(name)!;
    spot.arrived();
    await spot.release;
    session.set(key, true);
    return {};
  }

  @Get('flash/:text')
  addFlash(@Flash() flash: Flash, @Param('text') text: string) {
    flash.add('info', text);
    return {};
  }

  @Get('remember')
  remember(@Session() session: Session) {
    session.setMaxAge(7 * 24 * 3600 * 1000);
    return {};
  }

  @Get('filtered')
  @UseFilters(FlashingFilter)
  filtered(@Session() session: Session) {
    session.set('before', 'the throw');
    throw new BadRequestException('nope');
  }

  @Get('outer')
  @UseInterceptors(ChangeAfterHandler)
  outer(@Session() session: Session) {
    session.set('handler', true);
    return { ok: true };
  }

  @Get('save-caught')
  async saveCaught(@Session() session: Session) {
    session.set('kept', 'after a failed save');
    try {
      await session.save();
      return { saved: true };
    } catch {
      return { saved: false };
    }
  }

  @Get('save-unawaited')
  saveUnawaited(@Session() session: Session) {
    session.set('unawaited', true);
    void session.save();
    return {};
  }

  @Get('redirect')
  @Redirect('/count', 302)
  redirect(@Session() session: Session) {
    session.set('kind', 'redirect');
  }

  @Get('res')
  res(@Session() session: Session, @Res() res: { send?: (body: string) => void; header(n: string, v: string): unknown }) {
    session.set('kind', 'res');
    res.header('content-type', 'text/plain');
    res.send!('raw');
  }

  @Get('after-send')
  async changeAfterSend(@Session() session: Session, @Res() res: { send?: (body: string) => void; raw?: ServerResponse } & ServerResponse) {
    const raw = res.raw ?? res;
    const sent = new Promise((resolve) => raw.once('finish', resolve));
    res.send!('sent');
    await sent;
    session.set('after', 'the response');
    afterSend.push(await session.regenerate().then(() => 'regenerated', (error: Error) => `${error.name}: ${error.message}`));
  }

  @Get('logout-after-redirect')
  async logoutAfterRedirect(@Session() session: Session, @Res() res: any) {
    const raw: ServerResponse = res.raw ?? res;
    const sent = new Promise((resolve) => raw.once('finish', resolve));
    if (typeof res.code === 'function') res.code(302).header('location', '/bye').send();
    else res.redirect('/bye');
    await sent;
    afterSend.push(await session.destroy().then(() => 'destroyed', (error: Error) => `${error.name}: ${error.message}`));
  }

  /** Express: the session is first asked for (SessionService.load(req)) once the response has gone out. */
  @Get('first-load-after-send/:what')
  async firstLoadAfterSend(@Req() req: any, @Res() res: any, @Param('what') what: string) {
    const sent = new Promise((resolve) => (res as ServerResponse).once('finish', resolve));
    res.send('sent');
    await sent;
    const session = await this.sessions.load(req);
    if (what === 'set') {
      session.set('late', true);
      afterSend.push('set');
    } else {
      afterSend.push(await session.regenerate().then(() => 'regenerated', (error: Error) => `${error.name}: ${error.message}`));
    }
  }

  @Get('change-send-change')
  async changeSendChange(@Session() session: Session, @Res() res: any) {
    const raw: ServerResponse = res.raw ?? res;
    const sent = new Promise((resolve) => raw.once('finish', resolve));
    session.set('before', 'the response');
    res.send('sent');
    await sent;
    session.set('after', 'the response');
    afterSend.push('changed after');
  }

  @Get('head-then-end')
  headThenEnd(@Session() session: Session, @Res() res: any) {
    const raw: ServerResponse = res.raw ?? res;
    raw.writeHead(200, { 'content-type': 'text/plain' });
    session.set('between', 'head and end');
    setTimeout(() => {
      raw.end('x');
      afterSend.push('ended');
    }, 10);
  }

  @Get('sign-out-after-send')
  async signOutAfterSend(@Session() session: Session, @Res() res: any) {
    const raw: ServerResponse = res.raw ?? res;
    const sent = new Promise((resolve) => raw.once('finish', resolve));
    res.send('sent');
    await sent;
    session.setUser(undefined);
    afterSend.push('signed out');
  }

  @Get('sign-in-after-send')
  async signInAfterSend(@Session() session: Session, @Res() res: any) {
    const raw: ServerResponse = res.raw ?? res;
    const sent = new Promise((resolve) => raw.once('finish', resolve));
    res.send('sent');
    await sent;
    const regenerated = session.regenerate();
    try {
      session.setUser('intruder-target');
      afterSend.push('signed in');
    } catch (error) {
      afterSend.push(`${(error as Error).name}: ${(error as Error).message}`);
    }
    await regenerated.catch(() => undefined);
  }

  @Get('sign-in')
  signIn(@Session() session: Session) {
    session.setUser('u1');
    return {};
  }

  @Get('user')
  user(@Session() session: Session) {
    return { user: session.user ?? null };
  }

  @Get('late-twice')
  async changeTwiceAfterSend(@Session() session: Session, @Res() res: { send?: (body: string) => void; raw?: ServerResponse } & ServerResponse) {
    const raw = res.raw ?? res;
    const sent = new Promise((resolve) => raw.once('finish', resolve));
    res.send!('sent');
    await sent;
    session.set('first', 1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    session.set('second', 2);
    afterSend.push('changed twice');
  }

  @Get('res-later')
  resLater(@Session() session: Session, @Res() res: { send?: (body: string) => void }) {
    setTimeout(() => {
      session.set('kind', 'res-later');
      res.send!('later');
    }, 20);
  }

  @Get('passthrough')
  passthrough(@Session() session: Session, @Res({ passthrough: true }) res: { header(n: string, v: string): unknown }) {
    session.set('kind', 'passthrough');
    res.header('x-handler', 'yes');
    res.header('set-cookie', 'theirs=1; Path=/');
    return { passthrough: true };
  }

  @Get('forget')
  forget(@Session() session: Session) {
    session.setMaxAge(undefined);
    return {};
  }

  @Get('public')
  publicPage(@Session() session: Session, @Res({ passthrough: true }) res: { header(n: string, v: string): unknown }) {
    session.set('kind', 'public');
    res.header('cache-control', 'public, s-maxage=600, max-age=3600');
    return {};
  }

  @Get('array-head')
  arrayHead(@Session() session: Session, @Res() res: { raw?: RawResponse } & RawResponse) {
    session.set('kind', 'array-head');
    const raw = res.raw ?? res;
    raw.setHeader('set-cookie', 'app=1; Path=/');
    raw.writeHead(200, ['content-type', 'text/plain']);
    raw.end('array');
  }

  @Get('bad-head')
  badHead(@Session() session: Session, @Res() res: { raw?: RawResponse } & RawResponse) {
    session.set('kind', 'bad-head');
    const raw = res.raw ?? res;
    raw.writeHead(200, { 'x-name': '日本' }); // an invalid header value: Node refuses it
    raw.end('never');
  }

  @Get('shared-head/:write')
  sharedHead(@Session() session: Session, @Param('write') write: string, @Res() res: { raw?: RawResponse } & RawResponse) {
    if (write === '1') session.set('kind', 'shared-head');
    const raw = res.raw ?? res;
    raw.writeHead(200, SHARED_HEAD);
    raw.end('shared');
  }

  @Get('end-callback')
  endCallback(@Session() session: Session, @Res() res: { raw?: RawResponse } & RawResponse) {
    session.set('kind', 'end-callback');
    const raw = (res.raw ?? res) as RawResponse & { end(b: string, cb: () => void): void };
    raw.end('body', () => (callbacks.ended = true));
  }

  @Get('head-twice')
  headTwice(@Session() session: Session, @Res() res: { raw?: RawResponse } & RawResponse) {
    session.set('kind', 'head-twice');
    const raw = res.raw ?? res;
    raw.writeHead(200, { 'x-first': '1' });
    raw.writeHead(201, { 'x-second': '1' });
    raw.end('twice');
  }

  @Get('public-quoted')
  publicQuoted(@Session() session: Session, @Res({ passthrough: true }) res: { header(n: string, v: string): unknown }) {
    session.set('kind', 'public-quoted');
    res.header('cache-control', 'public, max-age=60, x-ext="a, private, b"');
    return {};
  }

  @Get('destroy-unawaited')
  destroyUnawaited(@Session() session: Session) {
    void session.destroy();
    return {};
  }

  @Get('big-file')
  bigFile(@Session() session: Session) {
    session.set('kind', 'big-file');
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 120);
    return new StreamableFile(
      new Readable({
        read() {
          sent += chunk.length;
          this.push(sent > 4 * 1024 * 1024 ? null : chunk);
        },
      }),
    );
  }

  @Get('flash-object')
  flashObject(@Flash() flash: Flash) {
    const message = { text: 'as added' };
    flash.add('info', message);
    setTimeout(() => (message.text = 'changed after the response'), 15);
    return {};
  }

  @Get('file')
  file(@Session() session: Session) {
    session.set('kind', 'file');
    return new StreamableFile(Buffer.from('file body'));
  }

  @Sse('events')
  events(@Session() session: Session): Observable<MessageEvent> {
    session.set('kind', 'sse');
    return of({ data: 'one' }, { data: 'two' });
  }

  @Get('page')
  @Render('page')
  page(@Session() session: Session) {
    session.set('kind', 'render');
    return { name: 'world' };
  }

  @Get('not-modified')
  @HttpCode(304)
  notModified(@Session() session: Session) {
    session.set('kind', '304');
  }
}

describe.each(platforms)('the request owns its sessions, on $name', (platform) => {
  let t: TestApp;
  const store = new ControlledStore();

  beforeAll(async () => {
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [LifecycleController, LenientController], providers: [ChangeAfterHandler, FlashingFilter] })
    class LifecycleModule {}
    t = await platform.create(LifecycleModule);
    if (platform.kind === 'express') {
      // @Render() on Express with a tiny view engine (Fastify needs @fastify/view, not a dependency here).
      const express = t.app.getHttpAdapter().getInstance() as { engine(ext: string, fn: unknown): void; set(k: string, v: unknown): void };
      express.engine('txt', (_path: string, options: { name: string }, done: (e: null, html: string) => void) => done(null, `hello ${options.name}`));
      express.set('views', tmpdir());
      express.set('view engine', 'txt');
      await writeFile(join(tmpdir(), 'page.txt'), '');
    }
  });
  afterAll(() => t.close());
  afterEach(() => {
    vi.restoreAllMocks();
    store.delay = 0;
    store.thenables = false;
  });

  const get = (path: string, jar?: CookieJar) => {
    const req = t.http().get(path);
    const header = jar?.header();
    return header ? req.set('Cookie', header) : req;
  };
  const signedIn = async () => {
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    return jar;
  };
  const data = async (jar: CookieJar) => (await get('/all', jar)).body as { data: Record<string, unknown>; flash: string[]; maxAge: number | null };
  const quiet = () => vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);

  it('a flash added by one request survives a concurrent request that sets a data key and lands after it', async () => {
    const jar = await signedIn();
    const spot = park(`flash-${platform.kind}${platform.name.length}`);
    const slow = get(`/park/flash-${platform.kind}${platform.name.length}/late`, jar).then((res) => res);
    await spot.arrived; // the slow request has loaded the session, before the flash exists
    expect((await get('/flash/hello', jar)).status).toBe(200);
    spot.release();
    expect((await slow).status).toBe(200);
    expect(await data(jar)).toMatchObject({ data: { visits: 1, late: true }, flash: ['hello'] });
  });

  it('setMaxAge() by one request survives a concurrent request that sets a data key and lands after it', async () => {
    const jar = await signedIn();
    const spot = park(`max-${platform.kind}${platform.name.length}`);
    const slow = get(`/park/max-${platform.kind}${platform.name.length}/late`, jar).then((res) => res);
    await spot.arrived;
    const remembered = await get('/remember', jar);
    expect(setCookies(remembered.headers)[0].attributes['max-age']).toBe(String(7 * 24 * 3600));
    spot.release();
    expect((await slow).status).toBe(200);
    expect(await data(jar)).toMatchObject({ data: { visits: 1, late: true }, maxAge: 7 * 24 * 3600 * 1000 });
  });

  it('a change an exception filter makes is saved with the response it sends', async () => {
    const jar = await signedIn();
    const res = await get('/filtered', jar);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ filtered: true });
    expect((await data(jar)).data).toMatchObject({ before: 'the throw' });
    expect(store.inner.get(jar.get('sid')!.split('.')[0])?.meta.flash).toEqual({ error: ['from the filter'] });
  });

  it('a change an outer interceptor makes after the handler is saved', async () => {
    const jar = await signedIn();
    expect((await get('/outer', jar)).body).toEqual({ ok: true });
    expect((await data(jar)).data).toMatchObject({ handler: true, after: 'outer interceptor' });
  });

  it('after a save() that failed and was caught, the response saves the session for real', async () => {
    quiet();
    store.failNext('set');
    const jar = new CookieJar();
    const res = await get('/save-caught', jar);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ saved: false });
    jar.take(res);
    expect(jar.get('sid')).toBeDefined();
    expect((await data(jar)).data).toEqual({ kept: 'after a failed save' });
  });

  it('an unawaited save() neither crashes the process nor loses the cookie, even when the store is slow', async () => {
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      store.delay = 30;
      const jar = new CookieJar();
      const res = await get('/save-unawaited', jar);
      expect(res.status).toBe(200);
      jar.take(res);
      store.delay = 0;
      expect((await data(jar)).data).toEqual({ unawaited: true });
      // An unawaited save that fails: logged, retried by the response, never an unhandled rejection.
      quiet();
      store.failNext('set', 2);
      const failed = await get('/save-unawaited', new CookieJar());
      expect(failed.status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });

  it('a store answering with thenables that are not promises is awaited for reads and writes', async () => {
    store.thenables = true;
    store.delay = 5;
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    expect((await get('/count', jar)).body).toEqual({ visits: 2 });
    expect((await get('/count', jar)).body).toEqual({ visits: 3 });
  });

  const kinds: [string, string, number][] = [
    ['a returned value', '/count', 200],
    ['@Redirect()', '/redirect', 302],
    ['@Res()', '/res', 200],
    ['@Res() answering later', '/res-later', 200],
    ['@Res({ passthrough: true })', '/passthrough', 200],
    ['a StreamableFile', '/file', 200],
    ['@Sse()', '/events', 200],
    ['a 304', '/not-modified', 304],
  ];

  if (platform.kind === 'express') kinds.push(['@Render()', '/page', 200]);

  it.each(kinds)('saves the session and sends the cookie with %s', async (_kind, path, status) => {
    const jar = new CookieJar();
    const res = await get(path, jar);
    expect(res.status).toBe(status);
    expect(jar.take(res).map((c) => c.name)).toContain('sid');
    // A response carrying a session cookie is never stored by a shared cache.
    expect(res.headers['cache-control']).toMatch(/\b(private|no-store)\b/);
    const saved = (await data(jar)).data;
    expect(Object.keys(saved).length).toBeGreaterThan(0);
  });

  it.each(kinds)('answers 503, with no cookie, when the store write fails for %s', async (_kind, path) => {
    quiet();
    store.failNext('set');
    store.delay = 5;
    const res = await get(path, new CookieJar());
    expect(res.status).toBe(503);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(JSON.parse(res.text)).toEqual({ statusCode: 503, message: 'Service Unavailable', code: 'SESSION_STORE_UNAVAILABLE' });
  });

  it('a load that failed in a guard is not tried again by the handler: one store read, one log line, 503', async () => {
    const jar = await signedIn();
    const errors = quiet();
    store.reset();
    store.failNext('get', 2);
    const res = await get('/lenient', jar);
    store.failures.get = 0;
    expect(res.status).toBe(503);
    expect(store.calls).toEqual(['get']);
    expect(errors).toHaveBeenCalledTimes(1);
    expect((await get('/lenient', jar)).body).toEqual({ visits: 1 });
  });

  it('changes made apart after the response was sent are each saved, the later one after the earlier', async () => {
    const jar = await signedIn();
    afterSend.length = 0;
    store.reset();
    await get('/late-twice', jar);
    await vi.waitFor(() => expect(store.calls).toEqual(['get', 'patch', 'patch']));
    expect((await data(jar)).data).toEqual({ visits: 1, first: 1, second: 2 });
  });

  it('destroy() after the response was sent still removes the stored session (a logout never fails open), with a warning', async () => {
    const jar = await signedIn();
    const warnings = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    afterSend.length = 0;
    store.reset();
    const res = await get('/logout-after-redirect', jar);
    expect(res.status).toBe(302);
    expect(res.headers['set-cookie']).toBeUndefined();
    await vi.waitFor(() => expect(afterSend).toEqual(['destroyed']));
    expect(store.calls).toEqual(['get', 'destroy']);
    expect(warnings.mock.calls.map(String)).toEqual([expect.stringMatching(/^Session 'default' destroyed after the response was sent: it is gone from its store, but its cookie could no longer be cleared/)]);
    expect((await data(jar)).data).toEqual({});
  });

  it('a response that became a 503 (its save failed) saves nothing of its request, not even a change made after it', async () => {
    const jar = await signedIn();
    quiet();
    afterSend.length = 0;
    store.reset();
    store.failNext('patch');
    const res = await get('/change-send-change', jar);
    expect(res.status).toBe(503);
    await vi.waitFor(() => expect(afterSend).toEqual(['changed after']));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(store.calls).toEqual(['get', 'patch']);
    expect((await data(jar)).data).toEqual({ visits: 1 });
  });

  it('a change between the head and the end of a response is saved as it ends', async () => {
    const jar = await signedIn();
    afterSend.length = 0;
    store.reset();
    const res = await get('/head-then-end', jar);
    expect(res.text).toBe('x');
    await vi.waitFor(() => expect(afterSend).toEqual(['ended']));
    await vi.waitFor(() => expect(store.calls).toEqual(['get', 'patch']));
    expect((await data(jar)).data).toEqual({ visits: 1, between: 'head and end' });
  });

  it('setUser() after a regenerate() refused after the response is refused too: no user is tied to the old id', async () => {
    const jar = await signedIn();
    const errors = quiet();
    afterSend.length = 0;
    await get('/sign-in-after-send', jar);
    await vi.waitFor(() => expect(afterSend).toHaveLength(1));
    expect(afterSend[0]).toMatch(/^SessionError: Session 'default': setUser\(\) after a refused regenerate\(\) is refused/);
    expect(errors).toHaveBeenCalledWith(expect.stringMatching(/regenerate\(\) after the response was sent/));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect((await get('/user', jar)).body).toEqual({ user: null });
  });

  it('setUser(undefined) after the response was sent is saved: the user is signed out', async () => {
    const jar = new CookieJar();
    jar.take(await get('/sign-in', jar));
    afterSend.length = 0;
    store.reset();
    await get('/sign-out-after-send', jar);
    await vi.waitFor(() => expect(afterSend).toEqual(['signed out']));
    await vi.waitFor(() => expect(store.calls).toEqual(['get', 'patch']));
    expect((await get('/user', jar)).body).toEqual({ user: null });
  });

  if (platform.kind === 'express') {
    it('a session first asked for after the response was sent: a change is saved without a cookie, regenerate() is refused', async () => {
      const jar = await signedIn();
      const errors = quiet();
      afterSend.length = 0;
      store.reset();
      await get('/first-load-after-send/set', jar);
      await vi.waitFor(() => expect(afterSend).toEqual(['set']));
      await vi.waitFor(() => expect(store.calls).toEqual(['get', 'patch']));
      await get('/first-load-after-send/regenerate', jar);
      await vi.waitFor(() => expect(afterSend).toHaveLength(2));
      expect(afterSend[1]).toMatch(/^SessionError: Session 'default': regenerate\(\) after the response was sent is refused/);
      expect(errors).toHaveBeenCalledWith(expect.stringMatching(/regenerate\(\) after the response was sent/));
      expect((await data(jar)).data).toEqual({ visits: 1, late: true });
    });
  }

  it('a change after the response was sent is saved without a cookie; regenerate() then is refused and the session kept', async () => {
    const jar = await signedIn();
    const errors = quiet();
    afterSend.length = 0;
    const res = await get('/after-send', jar);
    expect(res.text).toBe('sent');
    expect(res.headers['set-cookie']).toBeUndefined();
    await vi.waitFor(() => expect(afterSend).toHaveLength(1));
    expect(afterSend[0]).toMatch(/^SessionError: Session 'default': regenerate\(\) after the response was sent is refused/);
    expect(errors).toHaveBeenCalledWith(expect.stringMatching(/regenerate\(\) after the response was sent/));
    await vi.waitFor(async () => expect((await data(jar)).data).toEqual({ visits: 1, after: 'the response' }));
  });

  it('answers 503 when the write fails after an exception filter changed the session', async () => {
    const jar = await signedIn();
    quiet();
    store.failNext('patch');
    const res = await get('/filtered', jar);
    expect(res.status).toBe(503);
  });

  it('setMaxAge(undefined) after remember-me sends a browser-session cookie in place of the persistent one', async () => {
    const jar = await signedIn();
    expect(setCookies((await get('/remember', jar)).headers)[0].attributes['max-age']).toBeDefined();
    const forgot = await get('/forget', jar);
    const [cookie] = setCookies(forgot.headers);
    expect(cookie?.name).toBe('sid');
    expect(cookie.attributes['max-age']).toBeUndefined();
    expect((await data(jar)).maxAge).toBeNull();
  });

  it('a response with a session cookie is never left public to shared caches', async () => {
    const res = await get('/public', new CookieJar());
    expect(setCookies(res.headers)[0]?.name).toBe('sid');
    expect(res.headers['cache-control']).toBe('private, max-age=3600');
  });

  it('keeps the cookies the app set when it writes the head with a list of headers', async () => {
    store.delay = 5;
    const res = await get('/array-head', new CookieJar());
    expect(res.status).toBe(200);
    expect(setCookies(res.headers).map((c) => c.name).sort()).toEqual(['app', 'sid']);
  });

  it('a held response whose own head is invalid ends as a 500, never hangs', async () => {
    quiet();
    store.delay = 5;
    const res = await get('/bad-head', new CookieJar()).timeout(5000);
    expect(res.status).toBe(500);
  });

  it('a flash message object changed after the response is kept as it was added', async () => {
    const jar = new CookieJar();
    jar.take(await get('/flash-object', jar));
    await new Promise((resolve) => setTimeout(resolve, 40));
    const record = store.inner.get(jar.get('sid')!.split('.')[0]);
    expect(JSON.stringify(record?.meta.flash)).toBe(JSON.stringify({ info: [{ text: 'as added' }] }));
  });

  it('the 503 that replaces a response carries none of the cookies or the redirect it was to carry', async () => {
    quiet();
    store.failNext('set');
    const failed = await get('/passthrough', new CookieJar());
    expect(failed.status).toBe(503);
    expect(failed.headers['set-cookie']).toBeUndefined();
    store.failNext('set');
    const redirect = await get('/redirect', new CookieJar());
    expect(redirect.status).toBe(503);
    expect(redirect.headers.location).toBeUndefined();
  });

  it("never leaves a visitor's cookie in a headers object the app passes to every response", async () => {
    store.delay = 0;
    const first = await get('/shared-head/1', new CookieJar());
    expect(setCookies(first.headers).map((c) => c.name)).toEqual(['sid']);
    const second = await get('/shared-head/0', new CookieJar());
    expect(second.headers['set-cookie']).toBeUndefined();
    expect(SHARED_HEAD).toEqual({ 'content-type': 'text/plain' });
  });

  it('calls the callbacks of a response it replaced with a 503', async () => {
    quiet();
    callbacks.ended = false;
    store.failNext('set');
    store.delay = 5;
    expect((await get('/end-callback', new CookieJar())).status).toBe(503);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(callbacks.ended).toBe(true);
  });

  it('a response that writes its head twice while held sends the first one', async () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    store.delay = 5;
    const res = await get('/head-twice', new CookieJar());
    expect(res.status).toBe(200);
    expect(res.headers['x-first']).toBe('1');
  });

  it('keeps a quoted "private" inside another directive from counting as private', async () => {
    const res = await get('/public-quoted', new CookieJar());
    expect(res.headers['cache-control']).toBe('private, max-age=60, x-ext="a, private, b"');
  });

  it('an unawaited destroy() that fails never becomes an unhandled rejection', async () => {
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      quiet();
      const jar = await signedIn();
      store.failNext('destroy');
      await get('/destroy-unawaited', jar);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });

  it('streams a 4 MiB body through a response held while a slow store writes, without losing a byte', async () => {
    store.delay = 100;
    const res = await get('/big-file', new CookieJar()).buffer(true).parse((stream, done) => {
      let length = 0;
      stream.on('data', (chunk: Buffer) => (length += chunk.length));
      stream.on('end', () => done(null, length));
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe(4 * 1024 * 1024);
  });

  it('saves on a HEAD request', async () => {
    const jar = new CookieJar();
    const res = await t.http().head('/count');
    expect(res.status).toBe(200);
    const [cookie] = jar.take(res);
    expect(cookie?.name).toBe('sid');
    expect((await data(jar)).data).toEqual({ visits: 1 });
  });
});

describe.each(platforms)('changes after the response to a session kept in its cookie, on $name', (platform) => {
  it('are not saved (no cookie can carry them), with one warning for the request', async () => {
    @Module({
      imports: [SessionModule.forRoot({ secret: SECRET, store: new CookieStore({ secret: 'a-cookie-store-key-that-is-long-enough-0123456789' }) })],
      controllers: [LifecycleController],
      providers: [ChangeAfterHandler, FlashingFilter],
    })
    class CookieModule {}
    const t = await platform.create(CookieModule);
    try {
      const warnings = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      const jar = new CookieJar();
      jar.take(await t.http().get('/count'));
      afterSend.length = 0;
      const res = await t.http().get('/late-twice').set('Cookie', jar.header());
      expect(res.headers['set-cookie']).toBeUndefined();
      await vi.waitFor(() => expect(afterSend).toEqual(['changed twice']));
      expect(warnings.mock.calls.map(String)).toEqual([expect.stringMatching(/^Session 'default' changed after the response was sent; it lives in its cookie/)]);
      expect((await t.http().get('/all').set('Cookie', jar.header())).body.data).toEqual({ visits: 1 });
    } finally {
      vi.restoreAllMocks();
      await t.close();
    }
  });
});

describe('Express middleware that wraps the response methods first (as on-headers and compression do)', () => {
  it('still saves before the head, holds it for a slow store, and keeps what the middleware adds', async () => {
    const store = new ControlledStore();
    store.delay = 10;
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [LifecycleController], providers: [ChangeAfterHandler, FlashingFilter] })
    class WrappedModule {}
    const ref = await Test.createTestingModule({ imports: [WrappedModule] }).compile();
    const app = ref.createNestApplication(new ExpressAdapter(), { logger: false });
    app.use((_req: unknown, res: { writeHead: (...a: unknown[]) => unknown; setHeader(n: string, v: string): void }, next: () => void) => {
      const writeHead = res.writeHead;
      res.writeHead = function (this: typeof res, ...args: unknown[]) {
        this.setHeader('x-on-headers', 'yes');
        return writeHead.apply(this, args);
      };
      next();
    });
    await app.init();
    try {
      const server = app.getHttpServer() as Server;
      const res = await request(server).get('/count');
      expect(res.status).toBe(200);
      expect(res.headers['x-on-headers']).toBe('yes');
      expect(setCookies(res.headers).map((c) => c.name)).toEqual(['sid']);
      store.failNext('set');
      vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      expect((await request(server).get('/count')).status).toBe(503);
    } finally {
      vi.restoreAllMocks();
      await app.close();
    }
  });
});

describe('a REST request whose session middleware loaded with SessionService.load(req), on Express', () => {
  const store = new ControlledStore();

  @Injectable()
  class LoadingMiddleware implements NestMiddleware {
    constructor(private readonly sessions: SessionService) {}
    async use(req: object, _res: unknown, next: () => void) {
      (await this.sessions.load(req)).set('seen', true);
      next();
    }
  }

  @Controller()
  class SearchController {
    @Post('search')
    search(@Body() body: unknown) {
      return { searched: body };
    }

    @Get('items')
    items() {
      return { items: [] };
    }
  }

  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [SearchController], providers: [LoadingMiddleware] })
  class MiddlewareModule implements NestModule {
    configure(consumer: MiddlewareConsumer) {
      consumer.apply(LoadingMiddleware).forRoutes('*');
    }
  }

  let t: TestApp;
  beforeAll(async () => {
    t = await platforms.find((each) => each.name === 'express')!.create(MiddlewareModule);
  });
  afterAll(() => t.close());

  const rest = { statusCode: 503, message: 'Service Unavailable', code: 'SESSION_STORE_UNAVAILABLE' };
  const requests: [string, () => request.Test][] = [
    ['a body with a query field', () => t.http().post('/search').send({ query: 'shoes' })],
    ['a list of bodies with query fields', () => t.http().post('/search').send([{ query: 'a' }, { query: 'b' }])],
    ['a query parameter named query', () => t.http().get('/items?query=shoes')],
    ['no route (404)', () => t.http().post('/nowhere').send({ query: 'shoes' })],
  ];

  it.each(requests)('answers a failed save of %s with the HTTP 503 body, never a GraphQL one', async (_kind, send) => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    try {
      store.failNext('set');
      const res = await send();
      expect(res.status).toBe(503);
      expect(JSON.parse(res.text)).toEqual(rest);
    } finally {
      vi.restoreAllMocks();
    }
  });
});
