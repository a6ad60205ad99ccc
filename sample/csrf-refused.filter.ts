import { Catch, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { CsrfError } from 'nest-sessions';
import { escape } from './views.js';

/**
 * A form without a valid CSRF token: sent from another site, or kept open across a sign-in or past
 * the session's end. The visitor gets a page that says so, with the 403.
 */
@Catch(CsrfError)
export class CsrfRefusedFilter implements ExceptionFilter {
  catch(error: CsrfError, host: ArgumentsHost): void {
    const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Form refused · nest-sessions sample</title></head>
<body><main>
<h1>Form refused</h1>
<p>This form was not sent from a page of this site, or it has expired. Go back, reload the page and try again.</p>
<p><a href="/">Home</a></p>
<!-- reason: ${escape(error.reason)} -->
</main></body></html>
`;
    host.switchToHttp().getResponse<Response>().status(403).type('html').send(body);
  }
}
