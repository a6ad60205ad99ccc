import { DEFAULT_SESSION } from '../session/session.constants.js';
import { reported, SessionConfigError, SessionError, SessionSupportError } from '../session/session.errors.js';
import type { Session } from '../session/session.interface.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { asUserId, SessionState, userIdOf } from '../session/session.js';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import { checked } from '../lifecycle/session-reader.js';
import { readOnlyState } from '../subscriptions/read-only-session.js';
import { isUserTie, type SessionStore, type UserSessionEntry } from '../stores/session-store.interface.js';

/** One of a user's live sessions, as `SessionService.sessionsOf()` lists it. */
export interface UserSessionInfo {
  /** Names the session to `SessionService.endSession()`; sealed, so it is no session id and nothing else accepts it. */
  handle: string;
  /** When the session was created or last regenerated (a sign-in). */
  createdAt: Date;
  /** When a request last wrote the session (a read-only request moves it at the touch cadence: a tenth of the session's lifetime). */
  lastSeenAt: Date;
  /** The `User-Agent` of that request, when recorded (`forRoot({ device })`). */
  userAgent?: string;
  /** The client's IP address at that request, when recorded. */
  ip?: string;
  /**
   * The session the call was given (`sessionsOf(session)`), or else the session of the request
   * being served on a route marked `@UseSession()`.
   */
  current: boolean;
}

/** Which sessions `sessionsOf()` and `endSessionsOf()` look at. */
export interface UserSessionsOptions {
  /** The configured session to look in (`forRoot({ sessions: { admin: ... } })`). Default: the default session. */
  session?: string;
}

/** Which sessions `endSessionsOf()` ends: those of one configured session, all or all but one. */
export interface EndSessionsOptions extends UserSessionsOptions {
  /**
   * A session to keep (sign out everywhere else): the session itself, or `'current'`: the session
   * the call was given (`endSessionsOf(session, { except: 'current' })`), or else the session of
   * the request being served on a route marked `@UseSession()`.
   */
  except?: 'current' | Session<any>;
}

/** The options of `endSession(handle, options)`: whose session the handle must name. */
export interface EndSessionOptions {
  /**
   * Ends the session only if it is tied to this user (the one signed in on the request, typically
   * `session.user`): a handle of another user's session answers false and ends nothing. Absent or
   * `undefined` (a visitor signed in as no one), or no valid user id (`''`, too long, `NaN`), it ends
   * nothing either.
   */
  user: string | number | undefined;
  /** The configured session the handle belongs to. Default: the default session. */
  session?: string;
}

/** A user id, or a session whose user is meant (and which is then the current one). */
export type UserOrSession = string | number | Session<any>;

/** Lists and ends the sessions tied to a user, through the store's `listByUser()`. */
export class UserSessions {
  constructor(private readonly engine: SessionEngine) {}

  async list(whose: UserOrSession, options: UserSessionsOptions | undefined): Promise<UserSessionInfo[]> {
    const { def, user, held } = this.target(whose, options, 'sessionsOf');
    if (user === undefined) return [];
    const entries = await this.entries(def, user, 'sessionsOf');
    const current = held === undefined ? this.currentId(def.name) : keptId(held);
    const handles = def.handles();
    return entries
      .map((entry) => {
        const tie = entry.meta.user!;
        const info: UserSessionInfo = {
          handle: handles.seal(entry.id, user),
          createdAt: new Date(entry.meta.createdAt),
          lastSeenAt: new Date(tie.lastSeenAt ?? entry.meta.createdAt),
          current: entry.id === current,
        };
        if (tie.userAgent !== undefined) info.userAgent = tie.userAgent;
        if (tie.ip !== undefined) info.ip = tie.ip;
        return info;
      })
      .sort((a, b) => b.lastSeenAt.getTime() - a.lastSeenAt.getTime());
  }

  async endAll(whose: UserOrSession, options: EndSessionsOptions | undefined): Promise<number> {
    const { def, user, held, endable } = this.target(whose, options, 'endSessionsOf');
    const name = def.name;
    const except = options?.except;
    let kept: string | undefined;
    if (except === 'current') {
      const current = held ?? (this.engine.context.getStore()?.loaded(name) as SessionState | undefined);
      if (current === undefined) {
        throw reported(new SessionError(
          "SessionService.endSessionsOf(user, { except: 'current' }): there is no current session here to keep; pass the session instead of its user (endSessionsOf(session, { except: 'current' })), or mark the route @UseSession()",
        ));
      }
      kept = keptId(current);
    } else if (stateOf(except) !== undefined) {
      kept = keptId(stateOf(except)!);
    } else if (except !== undefined) {
      throw reported(new SessionError("SessionService.endSessionsOf(): options.except must be 'current' or a Session"));
    }
    this.capable(def, 'endSessionsOf');
    if (user === undefined) return 0;
    const entries = await this.entries(def, user, 'endSessionsOf');
    const ending = entries.filter((entry) => entry.id !== kept);
    await this.endEntries(def, ending, endable === true ? held : undefined);
    return ending.length;
  }

  /**
   * `endSession(handle)` (unchecked: the caller has checked that it may) or `(handle, { user, session })`.
   * Any other second argument (a user id or a session name given as it is, undefined, null) ends
   * nothing, so that a user id in place of the options never ends a session unchecked.
   */
  async end(handle: string, args: readonly unknown[]): Promise<boolean> {
    const [second] = args;
    let name = DEFAULT_SESSION;
    let owned = false;
    let owner: unknown;
    if (second !== null && typeof second === 'object') {
      // An options object always checks the user: `{}` or `{ user: undefined }` (nobody signed in)
      // ends nothing. Read as properties, so inherited ones count as well.
      owned = true;
      owner = (second as EndSessionOptions).user;
      const session = (second as EndSessionOptions).session;
      if (session !== undefined) name = this.nameOf(session, 'endSession');
    } else if (args.length > 0) {
      return false;
    }
    const def = this.engine.definition(name);
    this.capable(def, 'endSession');
    const user = owned ? asUserId(owner) : undefined;
    // A caller who asked for the check with no valid user to check against: nothing ends.
    if (owned && user === undefined) return false;
    const opened = def.handles().open(handle);
    // The handle names the user its session was tied to when listed: another user's handle ends nothing.
    if (opened === undefined || (user !== undefined && opened.userId !== user)) return false;
    const found = await this.engine.call(def, 'read a session', (store) => store.get(opened.id));
    const record = checked(found, def);
    // A stale handle: the session ended, or it is no longer this user's.
    if (record === undefined || record.meta.user?.id !== opened.userId) return false;
    await this.endEntries(def, [opened], undefined);
    return true;
  }

  /**
   * What a call is about: a user id (its sessions of `options.session`, by default the default
   * session), or a session (its user, among sessions of its own name; it is the current one).
   */
  private target(
    whose: UserOrSession,
    options: UserSessionsOptions | undefined,
    what: string,
  ): { def: SessionDefinition; user: string | undefined; held?: SessionState; endable?: boolean } {
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw reported(new SessionConfigError(`SessionService.${what}(user, options): options must be an object such as { session: 'admin' }, got ${typeof options}`));
    }
    const session = stateOf(whose);
    if (session !== undefined) {
      const def = session.definition;
      if (this.engine.definitions.get(def.name) !== def) {
        throw reported(new SessionConfigError(`SessionService.${what}(session): that session belongs to another app (another SessionModule); pass a session of this app's requests`));
      }
      if (options?.session !== undefined && options.session !== def.name) {
        throw reported(new SessionConfigError(`SessionService.${what}(session, { session: '${options.session}' }): the session given is session '${def.name}'`));
      }
      // A session read over a GraphQL WebSocket is read-only: it is listed as current, never ended here.
      return { def, user: session.user, held: session, endable: session === whose };
    }
    const def = this.engine.definition(options?.session === undefined ? DEFAULT_SESSION : this.nameOf(options.session, what));
    return { def, user: userIdOf(whose, `SessionService.${what}()`) };
  }

  private nameOf(name: unknown, what: string): string {
    if (typeof name !== 'string' || !this.engine.definitions.has(name)) {
      throw reported(new SessionConfigError(`SessionService.${what}(): options.session ${typeof name === 'string' ? `'${name}'` : String(name)} names no configured session`));
    }
    return name;
  }

  /** The user's live sessions of this name, as the store lists them, checked. */
  private async entries(def: SessionDefinition, user: string, what: string): Promise<UserSessionEntry[]> {
    this.capable(def, what);
    const found = await this.engine.call(def, "list a user's sessions", (store) => store.listByUser!(user));
    const now = Date.now();
    const seen = new Set<string>();
    const entries: UserSessionEntry[] = [];
    for (const entry of Array.isArray(found) ? found : []) {
      if (entry === null || typeof entry !== 'object' || typeof entry.id !== 'string' || seen.has(entry.id)) continue;
      const meta = entry.meta;
      if (meta === null || typeof meta !== 'object' || typeof meta.createdAt !== 'number' || !(entry.expiresAt > now)) continue;
      if ((meta.session ?? DEFAULT_SESSION) !== def.name || !isUserTie(meta.user) || meta.user.id !== user) continue;
      seen.add(entry.id);
      entries.push(entry);
    }
    return entries;
  }

  /**
   * Ends the sessions `ended`. The session given (`endSessionsOf(session)`) and the current
   * request's, when among them, are ended through `destroy()`: in their turn after the writes this
   * request asked for of them (which would otherwise bring them back), and so that this response
   * clears the cookie and the handler sees them gone. The others are removed from the store at once.
   */
  private async endEntries(def: SessionDefinition, ended: readonly { id: string }[], held: SessionState | undefined): Promise<void> {
    const own = new Map<string, SessionState>();
    for (const session of [held, this.engine.context.getStore()?.loaded(def.name) as SessionState | undefined]) {
      const id = session === undefined ? undefined : storedId(session);
      if (id !== undefined) own.set(id, session!);
    }
    await Promise.all(ended.map(async (entry) => {
      const session = own.get(entry.id);
      return session === undefined ? this.engine.destroy(def, entry.id) : session.destroy();
    }));
  }

  private currentId(name: string): string | undefined {
    const current = this.engine.context.getStore()?.loaded(name);
    return current === undefined ? undefined : storedId(current);
  }

  private capable(def: SessionDefinition, what: string): SessionStore {
    const store = def.store as SessionStore;
    if (!def.clientSide && typeof store.listByUser === 'function') return store;
    const kind = (store as { constructor?: { name?: string } }).constructor?.name ?? 'a custom store';
    throw reported(new SessionSupportError(
      def.clientSide
        ? `SessionService.${what}(): session '${def.name}' is kept in the browser by ${kind}, so the server can neither list nor end it; end a user's cookie sessions with SessionModule.forRoot({ userVersion }), or use a server-side store (MemoryStore, FileStore, RedisStore, PostgresStore)`
        : `SessionService.${what}(): the store of session '${def.name}' (${kind}) cannot list a user's sessions: it has no listByUser(); implement it (see SessionStore.listByUser) or use MemoryStore, FileStore, RedisStore or PostgresStore`,
    ));
  }
}

/** A session as `SessionService` calls take it: the request's own, or one a subscription read (read-only). */
function stateOf(value: unknown): SessionState | undefined {
  return value instanceof SessionState ? value : readOnlyState(value);
}

/**
 * The id of a session to keep: its id unless it was destroyed, also while its first write is in
 * flight (an id not stored yet matches no listed session, so keeping it costs nothing).
 */
function keptId(session: SessionState): string | undefined {
  return session.destroyed ? undefined : session.id;
}

/** The id a session has in its store, or undefined when it is not stored (new, regenerated or destroyed in this request). */
function storedId(session: SessionState | Session<any>): string | undefined {
  return session instanceof SessionState && session.stored ? session.id : undefined;
}
