import {
  Catch,
  Injectable,
  UnauthorizedException,
  type ArgumentsHost,
  type CanActivate,
  type ExceptionFilter,
  type ExecutionContext,
} from '@nestjs/common';
import type { Response } from 'express';
import { SessionService } from 'nest-sessions';

export class SignInRequired extends UnauthorizedException {}

/**
 * Lets signed-in visitors through. Others get a flash message and a `SignInRequired` error; the
 * session it loads is the one the handler gets, and whatever it changed (flash included)
 * is saved all the same.
 */
@Injectable()
export class SignedInGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context); // the handler gets this same object
    if (session.has('user')) return true;
    session.flash.add('error', 'Please sign in to see your account.');
    throw new SignInRequired();
  }
}

/** Sends a visitor the guard turned away to the sign-in form. */
@Catch(SignInRequired)
export class SignInRedirectFilter implements ExceptionFilter {
  catch(_error: SignInRequired, host: ArgumentsHost): void {
    host.switchToHttp().getResponse<Response>().redirect(303, '/');
  }
}
