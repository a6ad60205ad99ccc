import { parseCookieHeader } from '../transports/cookie-header.js';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import { openCookie, readOpened, readSession } from '../lifecycle/session-reader.js';
import type { SessionReader, SessionSource } from '../lifecycle/session-source.js';
import { loadEach } from '../lifecycle/session-source.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { reported, SessionReadOnlyError } from '../session/session.errors.js';
import type { SessionState } from '../session/session.js';
import { subscriptionConnection, type SubscriptionConnection } from '../transports/subscription-context.js';
import { ReadOnlySession } from './read-only-session.js';

const kSessions = Symbol('nest-sessions:subscription');
const kHanging = Symbol('nest-sessions:hanging');

/** What hangs on one stored session on one connection: the registration, and how to end each subscription. */
interface Hanging {
  readonly remove: () => void;
  readonly ends: Set<() => void>;
}

/**
 * The sessions of one GraphQL subscription (one operation over a WebSocket), kept on its GraphQL
 * context object. Read from the store, by the cookie of the request that opened the connection,
 * when a resolver first asks; read-only (`ReadOnlySession`). A stored session registers the
 * connection with the engine, so that its end (destroy, regenerate) ends the subscription here; the
 * registration goes when the connection closes.
 */
export class SubscriptionSessions implements SessionSource, SessionReader {
  private readonly sessions = new Map<string, ReadOnlySession>();
  private loading: Map<string, Promise<ReadOnlySession>> | undefined;
  private cookies: Record<string, string | undefined> | undefined;

  private constructor(
    readonly engine: SessionEngine,
    private readonly connection: SubscriptionConnection,
  ) {}

  /**
   * The sessions of the subscription whose GraphQL context is `gqlContext`, created on first use
   * with `engine` (or the one registered on the app's HTTP server); undefined when the context is
   * no subscription's.
   */
  static of(engine: SessionEngine | undefined, gqlContext: unknown, engineOf: (request: unknown) => SessionEngine | undefined): SubscriptionSessions | undefined {
    if (gqlContext == null || typeof gqlContext !== 'object') return undefined;
    const found = (gqlContext as { [kSessions]?: SubscriptionSessions })[kSessions];
    if (found !== undefined) return found;
    const connection = subscriptionConnection(gqlContext);
    if (connection === undefined) return undefined;
    const owner = engine ?? engineOf(connection.request);
    if (owner === undefined) return undefined;
    const sessions = new SubscriptionSessions(owner, connection);
    Object.defineProperty(gqlContext, kSessions, { value: sessions, configurable: true });
    return sessions;
  }

  loaded(name: string): ReadOnlySession | undefined {
    return this.sessions.get(name);
  }

  load(name: string): ReadOnlySession | Promise<ReadOnlySession> {
    const known = this.sessions.get(name);
    if (known !== undefined) return known;
    const inFlight = this.loading?.get(name);
    if (inFlight !== undefined) return inFlight;
    const def = this.engine.definition(name);
    // A stored session's cookie registers before the store read: an end confirmed while the read is
    // in flight still ends this subscription. Removed again when the store does not know the id.
    const value = def.clientSide ? undefined : this.incomingCookie(def);
    const opened = value === undefined ? undefined : openCookie(def, value);
    const early = opened?.id === undefined ? undefined : { id: opened.id, release: this.hangOn(name, opened.id) };
    let result: SessionState | Promise<SessionState>;
    try {
      result = opened === undefined ? readSession(this.engine, def, this) : readOpened(this.engine, def, this, opened);
    } catch (error) {
      early?.release?.();
      throw error;
    }
    if (!(result instanceof Promise)) return this.keep(result, early);
    const promise = result.then(
      (state) => {
        this.loading?.delete(name);
        return this.keep(state, early);
      },
      (error: unknown) => {
        this.loading?.delete(name);
        early?.release?.();
        throw error;
      },
    );
    (this.loading ??= new Map()).set(name, promise);
    return promise;
  }

  loadAll(names: readonly string[]): Promise<unknown> | undefined {
    return loadEach(names, (name) => this.load(name));
  }

  incomingCookie(def: SessionDefinition): string | undefined {
    const header = this.connection.request.headers.cookie;
    if (typeof header !== 'string' || header === '') return undefined;
    this.cookies ??= parseCookieHeader(header);
    return this.cookies[def.cookieName];
  }

  // SessionHost: a ReadOnlySession never asks; refused all the same.
  destroyStored(session: SessionState): Promise<void> {
    return Promise.reject(readOnly(session, 'destroy'));
  }

  saveNow(session: SessionState): Promise<void> {
    return Promise.reject(readOnly(session, 'save'));
  }

  checkSize(): void {
    // nothing is ever written from here
  }

  private keep(state: SessionState, early: { id: string; release: (() => void) | undefined } | undefined): ReadOnlySession {
    const session = new ReadOnlySession(state);
    this.sessions.set(state.definition.name, session);
    const hangs = state.stored && !state.definition.clientSide;
    if (hangs && early?.id === state.id) return session;
    early?.release?.();
    if (hangs) this.hangOn(state.definition.name, state.id);
    return session;
  }

  /**
   * Ends this subscription when the session `name`/`id` ends here, for as long as the connection is
   * open and the subscription runs. Returns what takes this subscription's end off again (undefined
   * when nothing was added: an operation answered at once, a closed connection, or a connection-wide
   * end already there).
   */
  private hangOn(name: string, id: string): (() => void) | undefined {
    const connection = this.connection;
    const end = connection.end;
    if (end === undefined || !connection.isOpen()) return undefined;
    const engine = this.engine;
    const holder = connection.holder as { [kHanging]?: Map<string, Hanging> };
    let hanging = holder[kHanging];
    if (hanging === undefined) {
      const all = (hanging = new Map<string, Hanging>());
      Object.defineProperty(holder, kHanging, { value: all, configurable: true });
      connection.onClose(() => {
        for (const each of all.values()) {
          each.remove();
          counted(engine, -each.ends.size);
          each.ends.clear();
        }
        all.clear();
      });
    }
    const all = hanging;
    const key = `${name}\u0000${id}`;
    let entry = all.get(key);
    if (entry === undefined) {
      const ends = new Set<() => void>();
      const remove = engine.connections.add(name, id, () => {
        all.delete(key);
        counted(engine, -ends.size);
        const each = [...ends];
        ends.clear();
        for (const end of each) {
          try {
            end();
          } catch {
            // a connection already closing; the others still hear it
          }
        }
      });
      all.set(key, (entry = { remove, ends }));
    }
    if (entry.ends.has(end)) return undefined;
    entry.ends.add(end);
    counted(engine, 1);
    const mine = entry;
    const release = () => {
      if (!mine.ends.delete(end)) return;
      counted(engine, -1);
      if (mine.ends.size === 0 && all.get(key) === mine) {
        all.delete(key);
        mine.remove();
      }
    };
    // A subscription that ends on its own (Mercurius: stopped by the client) takes its end off.
    connection.onEnd?.(release);
    return release;
  }
}

/** How many subscription ends are kept, per engine: what the tests watch for leaks. */
const endsKept = new WeakMap<SessionEngine, number>();

function counted(engine: SessionEngine, change: number): void {
  if (change !== 0) endsKept.set(engine, (endsKept.get(engine) ?? 0) + change);
}

/** @internal How many ends of subscriptions hang on sessions of `engine`'s, on every open connection. */
export function subscriptionEndsKept(engine: SessionEngine): number {
  return endsKept.get(engine) ?? 0;
}

function readOnly(session: SessionState, operation: string): SessionReadOnlyError {
  return reported(new SessionReadOnlyError(`Session '${session.definition.name}' is read-only over a GraphQL WebSocket (a subscription, or a query or mutation sent over it): it cannot be ${operation === 'save' ? 'saved' : 'destroyed'} there`, operation));
}

