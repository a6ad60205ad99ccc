import { Controller, Get, Header, UseFilters, UseGuards } from '@nestjs/common';
import { CsrfToken, Flash, Session } from 'nest-sessions';
import type { Prefs } from './session-types.js';
import { SignedInGuard, SignInRedirectFilter } from './signed-in.guard.js';
import { accountBody, page } from './views.js';

@Controller('account')
@UseGuards(SignedInGuard)
@UseFilters(SignInRedirectFilter)
export class AccountController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  show(@Session() session: Session, @Flash() flash: Flash, @Session('prefs') prefs: Session<Prefs>, @CsrfToken() csrf: string): string {
    const user = session.get('user')!; // the guard let a signed-in visitor through
    return page({
      title: 'Your account',
      theme: prefs.get('theme') ?? 'light',
      user,
      messages: flash.all(),
      body: accountBody(user, session.expiresAt),
      csrf,
    });
  }
}
