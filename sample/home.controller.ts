import { Controller, Get, Header } from '@nestjs/common';
import { CsrfToken, Flash, Session } from 'nest-sessions';
import type { Prefs } from './session-types.js';
import { homeBody, how, page } from './views.js';

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
      how: user === undefined ? HOW_VISITOR : HOW_SIGNED_IN,
    });
  }
}

const HOW_VISITOR = how(
  `// home.controller.ts: the counter
const visits = (session.get('visits') ?? 0) + 1;
session.set('visits', visits); // saved as the response leaves`,
  'sessions.md',
  'Sessions and flash messages',
);

const HOW_SIGNED_IN = how(
  `// auth.controller.ts: the sign-in that led here
await session.regenerate(); // a new id: one planted before is worthless
session.setUser('demo');    // listed on the account page
flash.add('info', 'Welcome back, demo');
// home.controller.ts: after the redirect
messages: flash.all(),      // shown once`,
  'authentication.md',
  'Authentication',
);
