import { Controller, Get, Header } from '@nestjs/common';
import { CsrfToken, Flash, Session } from 'nest-sessions';
import type { Prefs } from './session-types.js';
import { homeBody, page } from './views.js';

@Controller()
export class HomeController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  home(@Session() session: Session, @Flash() flash: Flash, @Session('prefs') prefs: Session<Prefs>, @CsrfToken() csrf: string): string {
    const visits = (session.get('visits') ?? 0) + 1;
    session.set('visits', visits); // saved as the response leaves
    const user = session.get('user');
    return page({
      title: user === undefined ? 'Welcome' : `Hello, ${user.name}`,
      theme: prefs.get('theme') ?? 'light',
      user,
      messages: flash.all(), // shown once: reading consumes them
      body: homeBody(user, visits, csrf),
      csrf,
    });
  }
}
