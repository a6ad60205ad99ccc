import { parse } from 'cookie';
import { adapterFor, type PlatformAdapter } from './platform.adapter.js';
import { armResponse, type ResponseCommitter } from './response-commit.js';
import type { SessionDefinition } from './session-definition.js';
import type { SessionEngine } from './session-engine.js';
import { SessionState, type SessionHost } from './session.js';

const kSessions = Symbol('nest-sessions:request');

/** Where the cookies of a commit go: the platform's response, or a list merged into outgoing headers. */
type CookieTarget = string[] | undefined;

/**
 * The sessions of one request, kept on the request object itself (never in a map keyed by
 * request), so they live and die with it.
 */
export class RequestSessions implements SessionHost, ResponseCommitter {
  /** The interceptor will save after the handler. */
  intercepted = false;
  private first: SessionState | undefined;
  private others: Map<string, SessionState> | undefined;
  private loading: Map<string, Promise<SessionState>> | undefined;
  private cookies: Record<string, string | undefined> | undefined;
  private writing: Promise<void> | undefined;
  private readonly adapter: PlatformAdapter;

  private constructor(
    readonly engine: SessionEngine,
    readonly req: any,
    readonly res: any,
  ) {
    this.adapter = adapterFor(res);
  }

  /** The sessions of this request, created on first use. */
  static of(engine: SessionEngine, req: any, res: any): RequestSessions {
    return (req[kSessions] as RequestSessions | undefined) ?? (req[kSessions] = new RequestSessions(engine, req, res));
  }

  /** The sessions of this request if any were asked for. */
  static find(req: any): RequestSessions | undefined {
    return req?.[kSessions] as RequestSessions | undefined;
  }

  /** The session already loaded under `name`, if any. */
  loaded(name: string): SessionState | undefined {
    return this.first?.definition.name === name ? this.first : this.others?.get(name);
  }

  /** Loads the session `name` once per request; synchronous when no store call is needed. */
  load(name: string): SessionState | Promise<SessionState> {
    const known = this.loaded(name);
    if (known !== undefined) return known;
    const inFlight = this.loading?.get(name);
    if (inFlight !== undefined) return inFlight;
    const result = this.engine.read(this.engine.definition(name), this);
    if (!(result instanceof Promise)) return this.keep(result);
    const promise = result.then((session) => {
      this.loading?.delete(name);
      return this.keep(session);
    });
    (this.loading ??= new Map()).set(name, promise);
    return promise;
  }

  /** Loads several sessions; undefined when all were available at once. */
  loadAll(names: readonly string[]): Promise<unknown> | undefined {
    let pending: Promise<unknown>[] | undefined;
    for (const name of names) {
      const result = this.load(name);
      if (result instanceof Promise) (pending ??= []).push(result);
    }
    return pending === undefined ? undefined : pending.length === 1 ? pending[0] : Promise.all(pending);
  }

  /** Saves every loaded session that changed; undefined when there was nothing to wait for. */
  commit(): Promise<void> | undefined {
    return this.commitEach(undefined, this.adapter.headersSent(this.res));
  }

  /** From now on, the response itself saves what changed before it goes out. */
  armResponse(): void {
    armResponse(this.adapter.rawResponse(this.res), this);
  }

  commitForResponse(headersSent: boolean): string[] | undefined {
    const cookies: string[] = [];
    const pending = this.commitEach(cookies, headersSent);
    if (pending !== undefined) {
      const previous = this.writing;
      // The response cannot turn into a 503 any more: the engine has logged the failure.
      const settled = pending.catch(() => undefined);
      this.writing = previous === undefined ? settled : Promise.all([previous, settled]).then(() => undefined);
    }
    return cookies.length > 0 ? cookies : undefined;
  }

  pendingWrite(): Promise<void> | undefined {
    return this.writing;
  }

  // SessionHost
  destroyStored(session: SessionState): Promise<void> {
    return Promise.resolve(this.engine.destroy(session));
  }

  async saveNow(session: SessionState): Promise<void> {
    await this.engine.commit(session, this, undefined, this.adapter.headersSent(this.res));
  }

  checkSize(session: SessionState, growth?: number): void {
    this.engine.checkSize(session, growth);
  }

  /** Sends a Set-Cookie through the platform, or collects it for the outgoing headers. */
  sendCookie(value: string, target: CookieTarget): void {
    if (target !== undefined) {
      target.push(value);
      return;
    }
    this.adapter.appendSetCookie(this.res, value);
    this.adapter.setHeaderIfAbsent(this.res, 'cache-control', 'private');
  }

  isSecure(): boolean {
    return this.adapter.isSecure(this.req);
  }

  private commitEach(target: CookieTarget, headersSent: boolean): Promise<void> | undefined {
    if (this.first === undefined) return undefined;
    const first = this.engine.commit(this.first, this, target, headersSent);
    if (this.others === undefined) return first;
    const pending: Promise<void>[] = first === undefined ? [] : [first];
    for (const session of this.others.values()) {
      const result = this.engine.commit(session, this, target, headersSent);
      if (result !== undefined) pending.push(result);
    }
    if (pending.length === 0) return undefined;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
  }

  private keep(session: SessionState): SessionState {
    const name = session.definition.name;
    if (this.first === undefined) this.first = session;
    else if (this.first.definition.name !== name) (this.others ??= new Map()).set(name, session);
    return session;
  }

  /** The value of this session's cookie in the request, if any. */
  incomingCookie(def: SessionDefinition): string | undefined {
    const header = this.req.headers?.cookie as string | undefined;
    if (header === undefined || header === '') return undefined;
    this.cookies ??= parseCookies(header);
    return this.cookies[def.cookieName];
  }
}

function parseCookies(header: string): Record<string, string | undefined> {
  try {
    return parse(header);
  } catch {
    return {}; // a malformed header means no session, never an error
  }
}
