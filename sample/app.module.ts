import { Module } from '@nestjs/common';
import { APP_GUARD, APP_FILTER } from '@nestjs/core';
import { CsrfGuard, SessionModule } from 'nest-sessions';
import { AccountController } from './account.controller.js';
import { AuthController } from './auth.controller.js';
import { CsrfRefusedFilter } from './csrf-refused.filter.js';
import { HomeController } from './home.controller.js';
import { PrefsController } from './prefs.controller.js';
import { PresenceGateway } from './presence.gateway.js';
import { createStore } from './store.js';

const YEAR = 365 * 24 * 60 * 60 * 1000;

@Module({
  imports: [
    SessionModule.forRootAsync({
      useFactory: async () => {
        const store = await createStore();
        return {
          // Unset: a random secret for this process and a warning at startup.
          secret: process.env.SESSION_SECRET,
          store,
          sessions: {
            // A second session with its own cookie, kept a year: the theme outlives sign-out.
            prefs: { store, cookie: { name: 'prefs', maxAge: YEAR } },
          },
        };
      },
    }),
  ],
  controllers: [HomeController, AuthController, AccountController, PrefsController],
  providers: [
    PresenceGateway,
    // Every POST of the app needs the CSRF token its forms carry; GET pages are never checked.
    { provide: APP_GUARD, useClass: CsrfGuard },
    { provide: APP_FILTER, useClass: CsrfRefusedFilter },
  ],
})
export class AppModule {}
