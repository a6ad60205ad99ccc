import { Injectable, Optional, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { CsrfProtection } from './csrf.protection.js';
import { requireSessionModule } from '../session/session.errors.js';

/**
 * Refuses state-changing requests that carry no valid CSRF token, with a 403 `CsrfError`. GET,
 * HEAD and OPTIONS pass unchecked, and so do GraphQL queries; any other method, and every GraphQL
 * mutation whatever its method, needs a token from the `x-csrf-token` header, the `_csrf` form or
 * JSON field (or, with `csrf.cookie`, the `x-xsrf-token` header) that is valid for the request's
 * session. Bind it per route or per controller (`@UseGuards(CsrfGuard)`) or app-wide
 * (`{ provide: APP_GUARD, useClass: CsrfGuard }`); `@SkipCsrf()` exempts a route or a controller.
 * WebSocket gateway messages and microservice handlers pass (check a socket handshake's `Origin`).
 */
@Injectable()
export class CsrfGuard implements CanActivate {
  private readonly csrf: CsrfProtection;

  /** @internal Nest's injector creates it. */
  constructor(@Optional() csrf: CsrfProtection) {
    this.csrf = requireSessionModule(csrf, 'CsrfGuard needs');
  }

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    return this.csrf.check(context);
  }
}
