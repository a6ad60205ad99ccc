// The shape of this app's sessions, declared once: `session.get('user')` and `flash.add('info', ...)`
// are typed from here.

export type Theme = 'light' | 'dark';

export interface SignedInUser {
  name: string;
  /** ISO date of the sign-in. */
  since: string;
  /** The visitor ticked "remember me": the session cookie outlives the browser. */
  remembered: boolean;
}

/** The second session, `prefs`: display preferences that outlive sign-in and sign-out. */
export interface Prefs {
  theme: Theme;
}

declare module 'nest-sessions' {
  interface SessionData {
    visits: number;
    user: SignedInUser;
  }
  interface FlashMessages {
    info: string;
    error: string;
  }
}
