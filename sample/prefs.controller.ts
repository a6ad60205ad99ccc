import { Body, Controller, Post, Redirect } from '@nestjs/common';
import { Session } from 'nest-sessions';
import type { Prefs, Theme } from './session-types.js';

const THEMES: readonly Theme[] = ['light', 'dark'];

/** Preferences live in their own session (cookie `prefs`, kept a year), untouched by sign-out. */
@Controller('prefs')
export class PrefsController {
  @Post('theme')
  @Redirect('/', 303)
  setTheme(@Session('prefs') prefs: Session<Prefs>, @Body('theme') theme: string | undefined): void {
    const choice = THEMES.find((name) => name === theme);
    if (choice !== undefined) prefs.set('theme', choice);
  }
}
