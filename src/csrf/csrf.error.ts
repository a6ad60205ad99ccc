import { HttpStatus } from '@nestjs/common';
import { SessionError } from '../session/session.errors.js';

/** Why a request was refused; for logs and filters, never told to the client. */
export type CsrfFailure = 'missing' | 'malformed' | 'no-secret' | 'mismatch';

/** The code a client (an SPA, a GraphQL client) can recognise a CSRF refusal by. */
export const CSRF_ERROR_CODE = 'CSRF_TOKEN_INVALID';

const CLIENT_MESSAGE = 'Invalid or missing CSRF token';

/**
 * A state-changing request without a valid CSRF token: a 403 whose body is
 * `{ statusCode: 403, error: 'Forbidden', message: 'Invalid or missing CSRF token', code: 'CSRF_TOKEN_INVALID' }`
 * on every platform; `reason` says why, for logs and exception filters.
 */
export class CsrfError extends SessionError {
  /**
   * @param reason Why the token was refused: none was sent, it was malformed, the session has no
   * CSRF secret yet, or it does not match the session's.
   */
  constructor(readonly reason: CsrfFailure) {
    super(CLIENT_MESSAGE, HttpStatus.FORBIDDEN, {
      body: { statusCode: HttpStatus.FORBIDDEN, error: 'Forbidden', message: CLIENT_MESSAGE, code: CSRF_ERROR_CODE },
    });
  }

  /** For GraphQL clients, which get an error's `message` and `extensions`. A new object each time. */
  get extensions(): {
    /** `'CSRF_TOKEN_INVALID'` (`CSRF_ERROR_CODE`). */
    code: string;
    /** What Apollo Server answers with: status 403. */
    http: {
      /** 403. */
      status: number;
    };
  } {
    return { code: CSRF_ERROR_CODE, http: { status: HttpStatus.FORBIDDEN } };
  }
}
