import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { CsrfError } from 'nest-sessions';
import { escape, how, page } from './views.js';

/**
 * A form without a valid CSRF token: sent from another site, or kept open across a sign-in or past
 * the session's end. The visitor gets a page that says so, with the 403.
 */
@Catch(CsrfError)
export class CsrfRefusedFilter implements ExceptionFilter {
  catch(error: CsrfError, host: ArgumentsHost): void {
    const body = `<p>This form was not sent from a page of this site, or it has expired. Go back, reload the page and try again.</p>
<p><a href="/">Home</a></p>
<!-- reason: ${escape(error.reason)} -->`;
    const html = page({
      title: 'Form refused',
      theme: 'light',
      user: undefined,
      messages: {},
      body,
      csrf: undefined,
      how: how(
        `// app.module.ts: every form needs the token of the page it came from
{ provide: APP_GUARD, useClass: CsrfGuard }
// views.ts: each form carries it
<input type="hidden" name="_csrf" value="\${csrf}">  // from @CsrfToken()`,
        'csrf.md',
        'CSRF protection',
      ),
    });
    host.switchToHttp().getResponse<Response>().status(403).type('html').send(html);
  }
}
