import { Body, Controller, Get, Header, Post, Redirect, UseFilters, UseGuards } from '@nestjs/common';
import { CsrfToken, Flash, Session, SessionService, SessionSupportError, type UserSessionInfo } from 'nest-sessions';
import type { Prefs } from './session-types.js';
import { SignedInGuard, SignInRedirectFilter } from './signed-in.guard.js';
import { accountBody, how, page } from './views.js';

@Controller('account')
@UseGuards(SignedInGuard)
@UseFilters(SignInRedirectFilter)
export class AccountController {
  constructor(private readonly sessions: SessionService) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  async show(@Session() session: Session, @Flash() flash: Flash, @Session('prefs') prefs: Session<Prefs>, @CsrfToken() csrf: string): Promise<string> {
    const user = session.get('user')!; // the guard let a signed-in visitor through
    return page({
      title: 'Your account',
      theme: prefs.get('theme') ?? 'light',
      user,
      messages: flash.all(),
      body: accountBody(user, session.expiresAt, await this.devices(session), csrf),
      csrf,
      how: HOW_ACCOUNT,
    });
  }

  /** Sign out everywhere else: every other session of this user ends; this one stays. */
  @Post('sign-out-others')
  @Redirect('/account', 303)
  async signOutOthers(@Session() session: Session, @Flash() flash: Flash): Promise<void> {
    const ended = await this.sessions.endSessionsOf(session, { except: 'current' });
    flash.add('info', ended === 0 ? 'No other device was signed in.' : `Signed out ${ended} other ${ended === 1 ? 'device' : 'devices'}.`);
  }

  /** Signs out one device, named by the handle the list gave it: only one of this user's own devices. */
  @Post('sign-out-device')
  @Redirect('/account', 303)
  async signOutDevice(@Session() session: Session, @Flash() flash: Flash, @Body('handle') handle: string | undefined): Promise<void> {
    const ended = await this.sessions.endSession(handle ?? '', { user: session.user });
    flash.add('info', ended ? 'That device is signed out.' : 'That device was already signed out.');
  }

  /** The user's signed-in devices, or undefined where the store cannot list them (the cookie store). */
  private async devices(session: Session): Promise<UserSessionInfo[] | undefined> {
    try {
      return await this.sessions.sessionsOf(session);
    } catch (error) {
      if (error instanceof SessionSupportError) return undefined;
      throw error;
    }
  }
}

const HOW_ACCOUNT = how(
  `// account.controller.ts
@UseGuards(SignedInGuard)                    // only a signed-in visitor gets here
session.expiresAt                            // sliding: moved on by each visit
await sessions.sessionsOf(session)           // this user's devices
await sessions.endSessionsOf(session, { except: 'current' })
await sessions.endSession(handle, { user: session.user })`,
  'devices.md',
  "A user's devices",
);
