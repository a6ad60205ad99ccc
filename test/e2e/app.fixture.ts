import {
  BadRequestException,
  Body,
  CanActivate,
  Controller,
  ExecutionContext,
  ForbiddenException,
  Get,
  Injectable,
  Module,
  Param,
  Post,
  Res,
  Sse,
  StreamableFile,
  UseGuards,
  type MessageEvent,
} from '@nestjs/common';
import { Observable, of } from 'rxjs';
import {
  Flash,
  Session,
  SessionModule,
  SessionService,
  UseSession,
  type SessionModuleOptions,
} from '../../src/index.js';

export const DAY = 24 * 60 * 60 * 1000;
export const SECRET = 'a-test-secret-that-is-long-enough-0123456789';

@Injectable()
export class SignedInGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    return session.get('userId') !== undefined;
  }
}

@Injectable()
export class MarkingGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    session.set('guarded', (session.get('guarded') ?? 0) + 1);
    session.flash.add('info', 'from the guard');
    return true;
  }
}

@Injectable()
export class RejectingGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    session.flash.add('error', 'denied');
    throw new ForbiddenException();
  }
}

@Injectable()
export class AuditService {
  constructor(private readonly sessions: SessionService) {}
  whoAmI(): unknown {
    return this.sessions.current()?.get('userId') ?? null;
  }
}

@Controller()
export class AppController {
  constructor(private readonly audit: AuditService) {}

  @Get('untouched')
  untouched() {
    return { ok: true };
  }

  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { visits: session.get('visits') ?? null, isNew: session.isNew };
  }

  @Get('peek-id')
  peekId(@Session() session: Session) {
    return { id: session.isNew ? null : session.id };
  }

  @Get('all')
  all(@Session() session: Session) {
    return { data: session.toJSON() };
  }

  @Post('login')
  async login(@Session() session: Session, @Flash() flash: Flash, @Body() body: { remember?: boolean }) {
    await session.regenerate();
    session.set('userId', 42);
    session.setMaxAge(body?.remember === true ? 30 * DAY : undefined);
    flash.add('info', 'Welcome back');
    return { ok: true };
  }

  @Post('logout')
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }

  @Get('flash')
  flash(@Flash() flash: Flash) {
    return { messages: flash.all() };
  }

  @Get('flash/add/:text')
  addFlash(@Flash() flash: Flash, @Param('text') text: string) {
    flash.add('info', text);
    flash.now('info', `now:${text}`);
    return { seenNow: flash.peek('info') };
  }

  @Get('throws')
  throws(@Flash() flash: Flash) {
    flash.add('error', 'Something went wrong');
    throw new BadRequestException('nope');
  }

  @Get('set/:key/:value')
  setKey(@Session() session: Session, @Param('key') key: string, @Param('value') value: string) {
    session.set(key, value);
    return { ok: true };
  }

  @Get('delete/:key')
  deleteKey(@Session() session: Session, @Param('key') key: string) {
    session.delete(key);
    return { ok: true };
  }

  @Get('nested')
  nested(@Session() session: Session) {
    const cart = (session.get('cart') as { items: string[] } | undefined) ?? { items: [] };
    if (!session.has('cart')) session.set('cart', cart);
    cart.items.push(`item${cart.items.length + 1}`); // mutated in place, no set()
    return { items: cart.items.length };
  }

  @Get('raw')
  raw(@Session() session: Session, @Res() res: { header(n: string, v: string): unknown; send(body: unknown): unknown }) {
    session.set('raw', true);
    res.header('content-type', 'application/json');
    res.send(JSON.stringify({ raw: true }));
  }

  @Get('raw-own-cookie')
  rawOwnCookie(@Session() session: Session, @Res() res: { header(n: string, v: string): unknown; send(body: unknown): unknown }) {
    session.set('raw', 'own');
    res.header('set-cookie', 'theirs=1; Path=/');
    res.send('ok');
  }

  @Get('passthrough')
  passthrough(@Session() session: Session, @Res({ passthrough: true }) res: { header(n: string, v: string): unknown }) {
    session.set('passthrough', true);
    res.header('x-handler', 'yes');
    return { passthrough: true };
  }

  @Get('file')
  file(@Session() session: Session) {
    session.set('downloaded', true);
    return new StreamableFile(Buffer.from('file body'));
  }

  @Sse('events')
  events(@Session() session: Session): Observable<MessageEvent> {
    session.set('sse', true);
    return of({ data: 'one' }, { data: 'two' });
  }

  @Get('private')
  @UseGuards(SignedInGuard)
  private() {
    return { secret: 'for signed-in users' };
  }

  @Get('guard-only')
  @UseGuards(MarkingGuard)
  guardOnly() {
    return { ok: true };
  }

  @Get('guard-and-param')
  @UseGuards(MarkingGuard)
  guardAndParam(@Session() session: Session) {
    return { guarded: session.get('guarded') };
  }

  @Get('rejected')
  @UseGuards(RejectingGuard)
  rejected() {
    return { unreachable: true };
  }

  @Get('who')
  @UseSession()
  who() {
    return { userId: this.audit.whoAmI() };
  }

  @Get('who-unbound')
  whoUnbound() {
    return { userId: this.audit.whoAmI() };
  }

  @Get('cache-control')
  cacheControl(@Session() session: Session, @Res({ passthrough: true }) res: { header(n: string, v: string): unknown }) {
    session.set('x', 1);
    res.header('cache-control', 'no-store');
    return {};
  }

  @Get('touch')
  touch(@Session() session: Session) {
    session.touch();
    return {};
  }

  @Get('save-now')
  async saveNow(@Session() session: Session) {
    session.set('early', 1);
    await session.save();
    session.set('late', 2);
    return {};
  }

  @Get('prefs/:theme')
  setTheme(@Session('prefs') prefs: Session, @Param('theme') theme: string) {
    prefs.set('theme', theme);
    return {};
  }

  @Get('both')
  both(@Session() session: Session, @Session('prefs') prefs: Session) {
    return { visits: session.get('visits') ?? null, theme: prefs.get('theme') ?? null };
  }
}

export function appModule(options?: SessionModuleOptions) {
  @Module({ imports: [SessionModule.forRoot(options)], controllers: [AppController], providers: [AuditService, SignedInGuard, MarkingGuard, RejectingGuard] })
  class AppModule {}
  return AppModule;
}
