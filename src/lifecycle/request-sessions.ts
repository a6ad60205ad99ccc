import type { ServerResponse } from 'node:http';
import { parseCookieHeader } from '../transports/cookie-header.js';
import { adapterFor, type PlatformAdapter } from '../transports/platform.adapter.js';
import { gateResponse, headGone, responseReplaced, saveAgainAtEnd, type ResponseSaver } from './response-gate.js';
import { ResponseCookies, withCompanion, type ResponseCookieSource } from './response-cookies.js';
import { queueSave, queueWrite, queueWriteOfAll, track, writeInOrder } from './session-writer.js';
import type { SessionDefinition } from '../session/session-definition.js';
import type { SessionEngine } from './session-engine.js';
import { checkSize, planSave, type SavePlan } from './save-plan.js';
import { readSession } from './session-reader.js';
import { SessionState, type SessionHost } from '../session/session.js';
import { reported, SessionError } from '../session/session.errors.js';
import { loadEach } from './session-source.js';

export type { CompanionCookie, ResponseCookieSource } from './response-cookies.js';

const kSessions = Symbol('nest-sessions:request');
/** Saves of changes made after the response (see `changedAfterResponse`). */
const lateSaves = new WeakSet<Promise<void>>();
const noop = (): void => undefined;

/**
 * Where a request's response is, as its sessions see it:
 * - `open`: the response's save has not run; changes go with it, and cookies can join its head;
 * - `responded`: it has run and its cookies are decided; a later change of a server-side session
 *   is saved on its own, without a cookie (see `changedAfterResponse`);
 * - `regenerate-refused`: responded, and a `regenerate()` was refused since: no user may be tied
 *   to the old id in this request.
 */
type ResponsePhase = 'open' | 'responded' | 'regenerate-refused';

/**
 * The sessions of one request, kept on the request object itself (never in a map keyed by
 * request), so they live and die with it. Created by whoever asks for a session first; from then
 * on the response saves them as it leaves. Every write goes through the session's queue
 * (`session-writer.ts`), so they land in the order they were asked for.
 */
export class RequestSessions implements SessionHost, ResponseSaver {
  private first: SessionState | undefined;
  private others: Map<string, SessionState> | undefined;
  private loading: Map<string, Promise<SessionState>> | undefined;
  private cookies: Record<string, string | undefined> | undefined;
  /** Cookies for the head besides the save's own, made at the first need. */
  private extra: ResponseCookies | undefined;
  private readonly adapter: PlatformAdapter;
  private readonly raw: ServerResponse;
  private phase: ResponsePhase;
  /** A change after the response that cannot be saved was warned about (once per request). */
  private lateWarned = false;
  /** Resolvers of a GraphQL request asked for these sessions: an error response sent instead of theirs is shaped as a GraphQL response. */
  graphql = false;

  private constructor(
    readonly engine: SessionEngine,
    readonly req: any,
    res: any,
  ) {
    this.adapter = adapterFor(res);
    this.raw = this.adapter.rawResponse(res);
    // First asked for once the head has gone out: no cookie can join it any more.
    this.phase = this.raw.headersSent ? 'responded' : 'open';
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

  /** Asked as the response leaves, before the sessions are planned: it may change them and add a cookie. */
  get cookieSource(): ResponseCookieSource | undefined {
    return this.extra?.source;
  }

  set cookieSource(source: ResponseCookieSource | undefined) {
    (this.extra ??= new ResponseCookies(this)).source = source;
  }

  /** Sends `setCookie` (a whole `Set-Cookie` value) with the response's head, unless a session's own cookie of that name replaces it. */
  addCookie(name: string, setCookie: string): void {
    (this.extra ??= new ResponseCookies(this)).keep(name, setCookie);
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
    const result = readSession(this.engine, this.engine.definition(name), this);
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

  // ResponseSaver: the one save of the request as the response leaves, after every write asked for before it.
  saveForResponse(headersSent: boolean): string[] | undefined | Promise<string[] | undefined> {
    if (this.phase === 'open') this.phase = 'responded';
    const first = this.first;
    if (first === undefined) return this.saveAll(headersSent);
    if (this.others === undefined && first.lastWrite === undefined) {
      // Nothing of it is being written: the save starts now (the common case, with no closure).
      const result = this.saveAll(headersSent);
      return result instanceof Promise ? track(first, result) : result;
    }
    const save = () => this.saveAll(headersSent);
    return this.others === undefined ? queueWrite(first, save) : queueWriteOfAll([first, ...this.others.values()], save);
  }

  // SessionHost
  async destroyStored(session: SessionState, id: string, replaced: boolean, ended: () => void): Promise<void> {
    const def = session.definition;
    if (this.phase !== 'open') return this.destroyAfterResponse(session, id, ended);
    // regenerate(): the old id's sockets and subscriptions end once this response, with the new id's cookie, has gone.
    await queueWrite(session, () => destroyThen(this.engine.destroy(def, id, !replaced), ended));
    if (replaced) this.engine.connections.endOnceSent(this.raw, def.name, id);
  }

  /**
   * A logout never fails open: after the response, the stored session still goes (the browser's
   * cookie then leads to no session), once the writes asked for before (the response's own, a save
   * of changes made after it) have landed. A session that lives in its cookie cannot be ended
   * without that cookie.
   */
  private async destroyAfterResponse(session: SessionState, id: string, ended: () => void): Promise<void> {
    const def = session.definition;
    if (def.clientSide) throw this.refusedAfterResponse(session, 'destroy() after the response was sent is refused: the session lives in its cookie, which could no longer be cleared');
    await queueWrite(session, () => destroyThen(this.engine.destroy(def, id), ended));
    this.engine.logger.warn(
      `Session '${def.name}' destroyed after the response was sent: it is gone from its store, but its cookie could no longer be cleared; destroy it before the response is sent`,
    );
  }

  /** Nothing to refuse before the response's save; after it, see `changedAfterResponse`. */
  refuseChange(session: SessionState, change: 'change' | 'regenerate' | 'sign-in'): void {
    if (this.phase !== 'open') this.changedAfterResponse(session, change);
  }

  saveNow(session: SessionState): Promise<void> {
    // Never joins a save of changes after the response, which writes nothing once the response became a 503.
    const join = session.waitingSave === undefined || !lateSaves.has(session.waitingSave);
    return queueSave(session, () => this.saveSession(session, false), false, join);
  }

  checkSize(session: SessionState, growth?: number): void {
    checkSize(session, growth);
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

  /** The response's head has gone out: no cookie can reach the client any more. */
  headSent(): boolean {
    return headGone(this.raw);
  }

  /**
   * A change made once the response's save has run (a GraphQL resolver still running after an error
   * in a non-null field sent the response; a handler going on after `@Res()` answered): a server-side
   * session is saved again, without a cookie, after the writes asked for before (a streamed response
   * still going saves it as it ends). What needs a cookie cannot be done: `regenerate()` is refused;
   * a `CookieStore` session, or one not stored yet, is not saved, with one warning.
   */
  private changedAfterResponse(session: SessionState, change: 'change' | 'regenerate' | 'sign-in'): void {
    if (change === 'regenerate') {
      this.phase = 'regenerate-refused';
      throw this.refusedAfterResponse(session, 'regenerate() after the response was sent is refused: its new cookie could no longer reach the browser, and the old session would be gone (the user signed out)');
    }
    if (change === 'sign-in' && this.phase === 'regenerate-refused') {
      throw this.refusedAfterResponse(session, 'setUser() after a refused regenerate() is refused: the user would be signed in on the id the session had before');
    }
    if (!this.raw.writableEnded) {
      saveAgainAtEnd(this.raw);
      return;
    }
    // Not stored, and no write of it running or queued (the response's own creation of it): its cookie never went out.
    if (session.definition.clientSide || (!session.stored && session.writing === 0 && session.lastWrite === undefined)) {
      if (this.lateWarned) return;
      this.lateWarned = true;
      this.engine.logger.warn(
        `Session '${session.definition.name}' changed after the response was sent; ${session.definition.clientSide ? 'it lives in its cookie, which' : 'it is new, and its cookie'} can no longer reach the browser, so the change is not saved: change it before the response is sent`,
      );
      return;
    }
    // Announced before the change is made: the save starts once it has been (and after the writes before it).
    const late = queueSave(session, () => this.saveSession(session, true), true);
    lateSaves.add(late);
    late.catch(noop); // failures are logged where they happen
  }

  private refusedAfterResponse(session: SessionState, what: string): SessionError {
    return reported(new SessionError(
      `Session '${session.definition.name}': ${what}; call it before the response is sent (in GraphQL, an error in a non-null field sends the response while other resolvers still run)`,
    ));
  }

  /**
   * Writes what changed in `session` now (its turn in the queue has come): with a cookie for the
   * head while it has not gone out. `late`: a change made after the response, which is not saved
   * once the response became an error (nothing of the request is saved then).
   */
  private saveSession(session: SessionState, late: boolean): Promise<void> | undefined {
    if (late && (responseReplaced(this.raw) || !session.stored)) return undefined;
    if (session.versionDue) {
      const stamping = this.engine.stampVersion(session);
      if (stamping !== undefined) return Promise.resolve(stamping).then(() => this.saveSession(session, late));
    }
    const plan = planSave(session, this, this.phase !== 'open' || headGone(this.raw));
    if (plan === undefined) return undefined;
    const written = this.engine.perform(plan);
    if (written === undefined) return void this.keepCookie(plan);
    return written.then(() => this.keepCookie(plan));
  }

  /**
   * Plans every loaded session, in the order of the configuration (the default session, then
   * `sessions`' keys), then writes them in that order (see `writeInOrder`): a session that cannot be
   * saved (too large, refused by its schema) stops the save before anything is written.
   */
  private saveAll(headersSent: boolean): string[] | undefined | Promise<string[] | undefined> {
    if (this.engine.versioned) {
      const stamping = this.stampVersions();
      if (stamping !== undefined) return stamping.then(() => this.saveAll(headersSent));
    }
    if (!headersSent) this.extra?.askSource();
    const first = this.first;
    if (first === undefined) return this.headCookies(undefined);
    if (this.others === undefined) {
      const plan = planSave(first, this, headersSent);
      if (plan === undefined) return this.headCookies(undefined);
      const written = this.engine.perform(plan);
      const cookies = this.headCookies(plan.cookie === undefined ? undefined : [plan.cookie]);
      return written === undefined ? cookies : written.then(() => cookies);
    }
    const plans: SavePlan[] = [];
    for (const def of this.engine.definitions.values()) {
      const session = this.loaded(def.name);
      const plan = session === undefined ? undefined : planSave(session, this, headersSent);
      if (plan !== undefined) plans.push(plan);
    }
    let cookies: string[] | undefined;
    for (const plan of plans) if (plan.cookie !== undefined) (cookies ??= []).push(plan.cookie);
    const checks = plans.flatMap((plan) => (plan.check === undefined ? [] : [plan.check]));
    // Every schema has answered before any session is written: one that refuses stops them all.
    const written = checks.length === 0 ? writeInOrder(this.engine, plans) : Promise.all(checks).then(() => writeInOrder(this.engine, plans));
    cookies = this.headCookies(cookies);
    return written === undefined ? cookies : written.then(() => cookies);
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

  /** The head's cookies: the save's own, with those of explicit saves, the cookie source's and the CSRF companion. */
  private headCookies(cookies: string[] | undefined): string[] | undefined {
    return this.extra === undefined ? withCompanion(this, cookies) : this.extra.take(cookies);
  }

  private keepCookie(plan: SavePlan): void {
    if (plan.cookie !== undefined) this.addCookie(plan.session.definition.cookieName, plan.cookie);
  }

  private keep(session: SessionState): SessionState {
    const name = session.definition.name;
    if (this.first === undefined) this.first = session;
    else if (this.first.definition.name !== name) (this.others ??= new Map()).set(name, session);
    return session;
  }
}

/** `destroyed`, then `ended` once it has landed (at once when the store answered at once). */
function destroyThen(destroyed: Promise<void> | undefined, ended: () => void): Promise<void> | undefined {
  if (destroyed === undefined) {
    ended();
    return undefined;
  }
  return destroyed.then(ended);
}
