import { Body, Controller, Post, Redirect } from '@nestjs/common';
import { Flash, Session } from 'nest-sessions';

const DAY = 24 * 60 * 60 * 1000;

/** The one account of this demo. A real app checks a password hash from its user store. */
const DEMO_USER = { name: 'demo', password: 'demo' };

interface LoginForm {
  username?: string;
  password?: string;
  remember?: string;
}

@Controller()
export class AuthController {
  @Post('login')
  @Redirect('/', 303)
  async login(@Session() session: Session, @Flash() flash: Flash, @Body() form: LoginForm): Promise<void> {
    if (form.username !== DEMO_USER.name || form.password !== DEMO_USER.password) {
      flash.add('error', 'Wrong username or password.');
      return;
    }
    const remembered = form.remember !== undefined;
    await session.regenerate(); // a new id on sign-in: an id planted before it is worthless
    session.set('user', { name: DEMO_USER.name, since: new Date().toISOString(), remembered });
    session.setUser(DEMO_USER.name); // listed on the account page's devices, and signed out from there
    session.setMaxAge(remembered ? 30 * DAY : undefined); // remember me, or a browser-session cookie
    flash.add('info', `Welcome back, ${DEMO_USER.name}`);
  }

  @Post('logout')
  @Redirect('/', 303)
  async logout(@Session() session: Session, @Flash() flash: Flash): Promise<void> {
    await session.destroy(); // gone from the store; the cookie goes with it
    flash.add('info', 'Signed out'); // lands in a fresh session, read on the next page
  }
}
