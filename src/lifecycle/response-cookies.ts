import { DEFAULT_SESSION } from '../session/session.constants.js';
import type { SessionState } from '../session/session.js';
import type { RequestSessions } from './request-sessions.js';

/** Gives one more cookie for the response as it leaves, before the sessions are saved (the readable CSRF cookie). */
export interface ResponseCookieSource {
  cookieForResponse(sessions: RequestSessions): string | undefined;
}

/** A cookie that goes out again whenever the default session's own cookie does, with its lifetime (the readable CSRF cookie). */
export interface CompanionCookie {
  readonly name: string;
  /** The companion of `session`, whose cookie `sessionCookie` (a whole `Set-Cookie` value) this response sets or clears; undefined for none. */
  withSessionCookie(sessions: RequestSessions, session: SessionState, sessionCookie: string): string | undefined;
}

/**
 * The cookies a response's head carries besides those of its own save: those of explicit saves
 * made before it (by cookie name: a later one of the same name replaces an earlier), the one its
 * cookie source gives, and the companion of the default session's cookie.
 */
export class ResponseCookies {
  /** Asked as the response leaves, before the sessions are planned: it may change them and add a cookie. */
  source: ResponseCookieSource | undefined;
  private fromSource: string | undefined;
  private saved: Map<string, string> | undefined;

  constructor(private readonly sessions: RequestSessions) {}

  /** Sends `setCookie` (a whole `Set-Cookie` value) with the head, unless a session's own cookie of that name replaces it. */
  keep(name: string, setCookie: string): void {
    (this.saved ??= new Map()).set(name, setCookie);
  }

  /** The response's save begins: its cookie source is asked now, before its sessions are planned. */
  askSource(): void {
    if (this.source !== undefined) this.fromSource = this.source.cookieForResponse(this.sessions);
  }

  /** The head's cookies: the save's own (`cookies`), then the source's, then those kept that none of them replaces. */
  take(cookies: string[] | undefined): string[] | undefined {
    const own = this.fromSource;
    if (own !== undefined) {
      this.fromSource = undefined;
      cookies = cookies === undefined ? [own] : [...cookies, own];
    }
    const saved = this.saved;
    if (saved === undefined) return withCompanion(this.sessions, cookies);
    this.saved = undefined;
    const result = cookies ?? [];
    for (const [name, cookie] of saved) {
      if (!result.some((each) => each.startsWith(`${name}=`))) result.push(cookie);
    }
    return result.length === 0 ? undefined : withCompanion(this.sessions, result);
  }
}

/**
 * `cookies` with the companion of the default session's cookie when that one is among them (set or
 * cleared): it follows the session cookie, so it replaces one the cookie source already gave.
 */
export function withCompanion(sessions: RequestSessions, cookies: string[] | undefined): string[] | undefined {
  const companion = sessions.engine.companion;
  if (companion === undefined || cookies === undefined) return cookies;
  const session = sessions.loaded(DEFAULT_SESSION);
  if (session === undefined) return cookies;
  const prefix = `${session.definition.cookieName}=`;
  const sessionCookie = cookies.find((each) => each.startsWith(prefix));
  if (sessionCookie === undefined) return cookies;
  const extra = companion.withSessionCookie(sessions, session, sessionCookie);
  return extra === undefined ? cookies : [...cookies.filter((each) => !each.startsWith(`${companion.name}=`)), extra];
}
