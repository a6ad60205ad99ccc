import type { ServerResponse } from 'node:http';
import { parseCookieHeader } from '../transports/cookie-header.js';
import { adapterFor, type PlatformAdapter } from '../transports/platform.adapter.js';
import { gateResponse, headGone, responseReplaced, saveAgainAtEnd, type ResponseSaver } from './response-gate.js';
import type { SessionDefinition } from '../session/session-definition.js';
import type { SavePlan, SessionEngine } from './session-engine.js';
import { DEFAULT_SESSION } from '../session/session.constants.js';
import { SessionState, type SessionHost } from '../session/session.js';
import { reported, SessionError } from '../session/session.errors.js';

const kSessions = Symbol('nest-sessions:request');

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
const noop = (): void => undefined;

/**
 * The sessions of one request, kept on the request object itself (never in a map keyed by
 * request), so they live and die with it. Created by whoever asks for a session first; from then
 * on the response saves them as it leaves.
 */
export class RequestSessions implements SessionHost, ResponseSaver {
  private first: SessionState | undefined;
  private others: Map<string, SessionState> | undefined;
  private loading: Map<string, Promise<SessionState>> | undefined;
  private cookies: Record<string, string | undefined> | undefined;
  /** Explicit saves (`session.save()`) still running; never rejects. */
  private saving: Promise<void> | undefined;
  /** Cookies of explicit saves waiting for the head, by cookie name. */
  private savedCookies: Map<string, string> | undefined;
  private readonly adapter: PlatformAdapter;
  private readonly raw: ServerResponse;
  /** Resolvers of a GraphQL request asked for these sessions: an error response sent instead of theirs is shaped as a GraphQL response. */
  graphql = false;
  /** Asked as the response leaves, before the sessions are planned: it may change them and add a cookie. */
  cookieSource: ResponseCookieSource | undefined;
  /** The cookie `cookieSource` gave for this response. */
  private sourceCookie: string | undefined;
  /** The response's own save has run: its cookies are decided, and later changes are saved without one. */
  private responded = false;
  /** The response's own save, when it waits for a store write. */
  private responseSave: Promise<unknown> | undefined;
  /** A save of changes made after the response is scheduled. */
  private lateSaveDue = false;
  /** A change after the response that cannot be saved was warned about (once per request). */
  private lateWarned = false;
  /** `regenerate()` was refused after the response: no user is tied to the old id in this request. */
  private regenerateRefused = false;

  private constructor(
    readonly engine: SessionEngine,
    readonly req: any,
    res: any,
  ) {
    this.adapter = adapterFor(res);
    this.raw = this.adapter.rawResponse(res);
    // First asked for once the head has gone out: no cookie can join it any more.
    this.responded = this.raw.headersSent;
    gateResponse(this.raw, this);
  }

  /** The sessions of this request, created on first use. */
  static of(engine: SessionEngine, req: any, res: any): RequestSessions {
    return (req[kSessions] as RequestSessions | undefined) ?? (req[kSessions] = new RequestSessions(engine, req, res));
  }

  /** The sessions of this request if any were asked for. */
  static find(req: any): RequestSessions | undefined {
    return req?.[kSessions] as RequestSessions | undefined;
  }

  /** Marks the request as served by GraphQL resolvers (see `graphql`). */
  forGraphql(): this {
    this.graphql = true;
    return this;
  }

  /** A GraphQL batch (the parsed body is a JSON array of operations): how many; undefined for one operation. */
  graphqlBatch(): number | undefined {
    const body: unknown = this.req.body;
    return Array.isArray(body) ? Math.max(1, body.length) : undefined;
  }

  /** The session already loaded under `name`, if any. */
  loaded(name: string): SessionState | undefined {
    return this.first?.definition.name === name ? this.first : this.others?.get(name);
  }

  /**
   * Loads the session `name` once per request; synchronous when no store call is needed. A load
   * that failed stays failed for the rest of the request: whoever asks again (the next resolver,
   * a parameter after a guard) gets the same error, without another store call or log line.
   */
  load(name: string): SessionState | Promise<SessionState> {
    const known = this.loaded(name);
    if (known !== undefined) return known;
    const inFlight = this.loading?.get(name);
    if (inFlight !== undefined) return inFlight;
    const result = this.engine.read(this.engine.definition(name), this);
    if (!(result instanceof Promise)) return this.keep(result);
    // A rejected promise stays in `loading`.
    const promise = result.then((session) => {
      this.loading!.delete(name);
      return this.keep(session);
    });
    (this.loading ??= new Map()).set(name, promise);
    return promise;
  }

  /** Loads several sessions; undefined when all were available at once. */
  loadAll(names: readonly string[]): Promise<unknown> | undefined {
    return loadEach(names, (name) => this.load(name));
  }

  // ResponseSaver: the one save of the request, as the response leaves.
  saveForResponse(headersSent: boolean): string[] | undefined | Promise<string[] | undefined> {
    this.responded = true;
    const result = this.saveResponse(headersSent);
    if (result instanceof Promise) this.responseSave = result;
    return result;
  }

  private saveResponse(headersSent: boolean): string[] | undefined | Promise<string[] | undefined> {
    if (this.engine.versioned) {
      const stamping = this.stampVersions();
      if (stamping !== undefined) return stamping.then(() => this.saveResponse(headersSent));
    }
    if (this.saving !== undefined) return this.saving.then(() => this.saveAll(headersSent));
    return this.saveAll(headersSent);
  }

  /** `userVersion`: the version of each user a session was tied to in this request, read before the save. */
  private stampVersions(): Promise<unknown> | undefined {
    let pending: PromiseLike<void>[] | undefined;
    for (const session of this.others === undefined ? [this.first] : [this.first, ...this.others.values()]) {
      if (session?.versionDue !== true) continue;
      const done = this.engine.stampVersion(session);
      if (done !== undefined) (pending ??= []).push(done);
    }
    return pending === undefined ? undefined : Promise.all(pending);
  }

  // SessionHost
  async destroyStored(session: SessionState, id: string, replaced = false): Promise<void> {
    if (this.responded) return this.destroyAfterResponse(session, id);
    // A save of the old id still running must land before the destroy, never after it.
    if (this.saving !== undefined) await this.saving;
    if (!replaced) return this.engine.destroy(session.definition, id);
    // regenerate(): the sockets and subscriptions of the old id end once this response, which
    // carries the new id's cookie, has gone, so that a client reconnecting at once has that cookie.
    await this.engine.destroy(session.definition, id, false);
    endWithResponse(this.raw, this.engine, session.definition.name, id);
  }

  /**
   * A logout never fails open: after the response, the stored session still goes (the browser's
   * cookie then leads to no session), once the response's own write and any save of changes made
   * after it have landed. A session that lives in its cookie cannot be ended without that cookie.
   */
  private async destroyAfterResponse(session: SessionState, id: string): Promise<void> {
    if (session.definition.clientSide) throw this.refusedAfterResponse(session, 'destroy() after the response was sent is refused: the session lives in its cookie, which could no longer be cleared');
    await Promise.allSettled([this.responseSave, this.saving]);
    if (this.saving !== undefined) await this.saving;
    await this.engine.destroy(session.definition, id);
    this.engine.logger.warn(
      `Session '${session.definition.name}' destroyed after the response was sent: it is gone from its store, but its cookie could no longer be cleared; destroy it before the response is sent`,
    );
  }

  /** Nothing to refuse before the response's save; after it, see `changedAfterResponse`. */
  refuseChange(session: SessionState, change: 'change' | 'regenerate' | 'sign-in'): void {
    if (this.responded) this.changedAfterResponse(session, change);
  }

  saveNow(session: SessionState): Promise<void> {
    // Once the response's save has run, no cookie can join it any more.
    return this.saveSession(session, this.responded || headGone(this.raw));
  }

  private saveSession(session: SessionState, headersSent: boolean): Promise<void> {
    if (session.versionDue) {
      const stamping = this.engine.stampVersion(session);
      if (stamping !== undefined) return Promise.resolve(stamping).then(() => this.saveSession(session, headersSent));
    }
    let plan: SavePlan | undefined;
    try {
      plan = this.engine.plan(session, this, headersSent);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (plan === undefined) return Promise.resolve();
    const written = this.engine.perform(plan);
    if (written === undefined) {
      this.keepCookie(plan);
      return Promise.resolve();
    }
    const done = written.then(() => this.keepCookie(plan));
    const settled = done.then(noop, noop);
    const saving = this.saving === undefined ? settled : Promise.all([this.saving, settled]).then(noop);
    this.saving = saving;
    void saving.then(() => {
      if (this.saving === saving) this.saving = undefined;
    });
    return done;
  }

  checkSize(session: SessionState, growth?: number): void {
    this.engine.checkSize(session, growth);
  }

  isSecure(): boolean {
    return this.adapter.isSecure(this.req);
  }

  /** The client's address, as the app's proxy settings see it. */
  clientIp(): string | undefined {
    return this.adapter.clientIp(this.req);
  }

  /** The request's `User-Agent` header, if any. */
  userAgent(): string | undefined {
    const value: unknown = this.req.headers?.['user-agent'];
    return typeof value === 'string' && value !== '' ? value : undefined;
  }

  /** The value of this session's cookie in the request, if any. */
  incomingCookie(def: SessionDefinition): string | undefined {
    return this.cookie(def.cookieName);
  }

  /** The value of the request's cookie `name`, if any. */
  cookie(name: string): string | undefined {
    const header = this.req.headers?.cookie as string | undefined;
    if (header === undefined || header === '') return undefined;
    this.cookies ??= parseCookieHeader(header);
    return this.cookies[name];
  }

  /** Sends `setCookie` (a whole `Set-Cookie` value) with the response's head, unless a session's own cookie of that name replaces it. */
  addCookie(name: string, setCookie: string): void {
    (this.savedCookies ??= new Map()).set(name, setCookie);
  }

  /** The response's head has gone out: no cookie can reach the client any more. */
  headSent(): boolean {
    return headGone(this.raw);
  }

  /**
   * A change made once the response's save has run (a GraphQL resolver still running after an error
   * in a non-null field sent the response; a handler going on after `@Res()` answered): a server-side
   * session is saved again, without a cookie, once the response's own write has landed (a streamed
   * response still going saves it as it ends). What needs a cookie cannot be done: `regenerate()` is
   * refused; a `CookieStore` session, or one not stored yet, is not saved, with one warning.
   */
  private changedAfterResponse(session: SessionState, change: 'change' | 'regenerate' | 'sign-in'): void {
    if (change === 'regenerate') {
      this.regenerateRefused = true;
      throw this.refusedAfterResponse(session, 'regenerate() after the response was sent is refused: its new cookie could no longer reach the browser, and the old session would be gone (the user signed out)');
    }
    if (change === 'sign-in' && this.regenerateRefused) {
      throw this.refusedAfterResponse(session, 'setUser() after a refused regenerate() is refused: the user would be signed in on the id the session had before');
    }
    if (!this.raw.writableEnded) {
      saveAgainAtEnd(this.raw);
      return;
    }
    if (session.definition.clientSide || (!session.stored && session.writing === 0)) {
      if (this.lateWarned) return;
      this.lateWarned = true;
      this.engine.logger.warn(
        `Session '${session.definition.name}' changed after the response was sent; ${session.definition.clientSide ? 'it lives in its cookie, which' : 'it is new, and its cookie'} can no longer reach the browser, so the change is not saved: change it before the response is sent`,
      );
      return;
    }
    if (this.lateSaveDue) return;
    this.lateSaveDue = true;
    // After the response's own write and any explicit save: a later write never lands before an older one.
    void Promise.allSettled([this.responseSave, this.saving]).then(() => this.saveLate());
  }

  private saveLate(): void {
    this.lateSaveDue = false;
    // The response became a 503: nothing of this request is saved.
    if (responseReplaced(this.raw)) return;
    const sessions = this.others === undefined ? [this.first] : [this.first, ...this.others.values()];
    for (const session of sessions) {
      // Failures are logged where they happen (the store call, the plan).
      if (session !== undefined && !session.definition.clientSide && (session.stored || session.writing > 0)) this.saveSession(session, true).catch(noop);
    }
  }

  private refusedAfterResponse(session: SessionState, what: string): SessionError {
    return reported(new SessionError(
      `Session '${session.definition.name}': ${what}; call it before the response is sent (in GraphQL, an error in a non-null field sends the response while other resolvers still run)`,
    ));
  }

  /** Plans every loaded session, then writes them: one that cannot be saved stops all before any write. */
  private saveAll(headersSent: boolean): string[] | undefined | Promise<string[] | undefined> {
    if (this.cookieSource !== undefined && !headersSent) this.sourceCookie = this.cookieSource.cookieForResponse(this);
    const first = this.first;
    if (first === undefined) return this.takeSavedCookies(undefined);
    const plan = this.engine.plan(first, this, headersSent);
    if (this.others === undefined) {
      if (plan === undefined) return this.takeSavedCookies(undefined);
      const written = this.engine.perform(plan);
      const cookies = this.takeSavedCookies(plan.cookie === undefined ? undefined : [plan.cookie]);
      return written === undefined ? cookies : written.then(() => cookies);
    }
    // Planned, and written, in the order of the configuration (the default session, then `sessions`' keys).
    const plans: SavePlan[] = [];
    for (const def of this.engine.definitions.values()) {
      const other = def === first.definition ? undefined : this.others.get(def.name);
      const next = other === undefined ? (def === first.definition ? plan : undefined) : this.engine.plan(other, this, headersSent);
      if (next !== undefined) plans.push(next);
    }
    let checks: Promise<void>[] | undefined;
    for (const each of plans) if (each.check !== undefined) (checks ??= []).push(each.check);
    // Every schema has answered before any session is written: one that refuses stops them all.
    if (checks !== undefined) return Promise.all(checks).then(() => this.performAll(plans));
    return this.performAll(plans);
  }

  /**
   * Writes the sessions one after another, in the order of the configuration: a write that fails
   * stops the writes after it, and the sessions this save created before it (and the failing one,
   * if a creation) are removed again (no cookie will name them); changes written to sessions that
   * existed stay.
   */
  private performAll(plans: SavePlan[]): string[] | undefined | Promise<string[] | undefined> {
    let cookies: string[] | undefined;
    for (const each of plans) if (each.cookie !== undefined) (cookies ??= []).push(each.cookie);
    cookies = this.takeSavedCookies(cookies);
    const written = performInOrder(this.engine, plans, 0);
    return written === undefined ? cookies : written.then(() => cookies);
  }

  /** `cookies` with those of explicit saves that no later cookie of the same session replaced. */
  private takeSavedCookies(cookies: string[] | undefined): string[] | undefined {
    const own = this.sourceCookie;
    if (own !== undefined) {
      this.sourceCookie = undefined;
      cookies = cookies === undefined ? [own] : [...cookies, own];
    }
    const saved = this.savedCookies;
    if (saved === undefined) return this.withCompanion(cookies);
    this.savedCookies = undefined;
    const result = cookies ?? [];
    for (const [name, cookie] of saved) {
      if (!result.some((each) => each.startsWith(`${name}=`))) result.push(cookie);
    }
    return result.length === 0 ? undefined : this.withCompanion(result);
  }

  /**
   * `cookies` with the companion of the default session's cookie when that one is among them (set or
   * cleared): it follows the session cookie, so it replaces one the cookie source already gave.
   */
  private withCompanion(cookies: string[] | undefined): string[] | undefined {
    const companion = this.engine.companion;
    if (companion === undefined || cookies === undefined) return cookies;
    const session = this.loaded(DEFAULT_SESSION);
    if (session === undefined) return cookies;
    const prefix = `${session.definition.cookieName}=`;
    const sessionCookie = cookies.find((each) => each.startsWith(prefix));
    if (sessionCookie === undefined) return cookies;
    const extra = companion.withSessionCookie(this, session, sessionCookie);
    return extra === undefined ? cookies : [...cookies.filter((each) => !each.startsWith(`${companion.name}=`)), extra];
  }

  private keepCookie(plan: SavePlan): void {
    if (plan.cookie !== undefined) (this.savedCookies ??= new Map()).set(plan.session.definition.cookieName, plan.cookie);
  }

  private keep(session: SessionState): SessionState {
    const name = session.definition.name;
    if (this.first === undefined) this.first = session;
    else if (this.first.definition.name !== name) (this.others ??= new Map()).set(name, session);
    return session;
  }
}

/** Loads each of `names`; undefined when all were available at once, else a promise of them all. */
export function loadEach(names: readonly string[], load: (name: string) => unknown): Promise<unknown> | undefined {
  let pending: Promise<unknown>[] | undefined;
  for (const name of names) {
    const result = load(name);
    if (result instanceof Promise) (pending ??= []).push(result);
  }
  return pending === undefined ? undefined : pending.length === 1 ? pending[0] : Promise.all(pending);
}

/** Performs `plans` from `from` on, each once the one before it is written; see `performAll`. */
function performInOrder(engine: SessionEngine, plans: readonly SavePlan[], from: number): Promise<void> | undefined {
  for (let i = from; i < plans.length; i++) {
    let written: Promise<void> | undefined;
    try {
      written = engine.perform(plans[i]);
    } catch (error) {
      if (!plans.slice(0, i + 1).some((plan) => plan.kind === 'create')) throw error;
      return undoCreated(engine, plans, i, error);
    }
    if (written !== undefined) {
      return written.then(
        () => performInOrder(engine, plans, i + 1),
        (error: unknown) => undoCreated(engine, plans, i, error),
      );
    }
  }
  return undefined;
}

/** After the write of `plans[failed]` failed: removes the sessions created by the writes before it, then fails with its error. */
async function undoCreated(engine: SessionEngine, plans: readonly SavePlan[], failed: number, error: unknown): Promise<never> {
  // The failing one too: a creation that timed out may have landed.
  const created = plans.slice(0, failed + 1).filter((plan) => plan.kind === 'create');
  await Promise.allSettled(created.map(async (plan) => engine.destroy(plan.session.definition, plan.id)));
  throw error;
}

/** Ends the connections of a replaced id once `raw` has been sent (or has failed). */
function endWithResponse(raw: ServerResponse, engine: SessionEngine, name: string, id: string): void {
  if (raw.writableFinished || raw.destroyed || typeof raw.once !== 'function') {
    engine.connections.end(name, id);
    return;
  }
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    engine.connections.end(name, id);
  };
  raw.once('finish', end);
  raw.once('close', end);
}

