import { parse } from 'cookie';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import type { SessionReader, SessionSource } from '../lifecycle/session-source.js';
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
    const result = this.engine.read(this.engine.definition(name), this);
    if (!(result instanceof Promise)) return this.keep(result);
    const promise = result.then(
      (state) => {
        this.loading?.delete(name);
        return this.keep(state);
      },
      (error: unknown) => {
        this.loading?.delete(name);
        throw error;
      },
    );
    (this.loading ??= new Map()).set(name, promise);
    return promise;
  }

  loadAll(names: readonly string[]): Promise<unknown> | undefined {
    let pending: Promise<unknown>[] | undefined;
    for (const name of names) {
      const result = this.load(name);
      if (result instanceof Promise) (pending ??= []).push(result);
    }
    return pending === undefined ? undefined : Promise.all(pending);
  }

  incomingCookie(def: SessionDefinition): string | undefined {
    const header = this.connection.request.headers.cookie;
    if (typeof header !== 'string' || header === '') return undefined;
    this.cookies ??= parseCookies(header);
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

  private keep(state: SessionState): ReadOnlySession {
    const session = new ReadOnlySession(state);
    this.sessions.set(state.definition.name, session);
    if (state.stored && !state.definition.clientSide) this.hangOn(state.definition.name, state.id);
    return session;
  }

  /** Ends this subscription when the session `name`/`id` ends here, for as long as the connection is open. */
  private hangOn(name: string, id: string): void {
    const connection = this.connection;
    if (!connection.isOpen()) return;
    const holder = connection.holder as { [kHanging]?: Map<string, Hanging> };
    let hanging = holder[kHanging];
    if (hanging === undefined) {
      const all = (hanging = new Map());
      Object.defineProperty(holder, kHanging, { value: all, configurable: true });
      connection.onClose(() => {
        for (const each of all.values()) each.remove();
        all.clear();
      });
    }
    const key = `${name}\u0000${id}`;
    let entry = hanging.get(key);
    if (entry === undefined) {
      const ends = new Set<() => void>();
      const all = hanging;
      const remove = this.engine.connections.add(name, id, () => {
        all.delete(key);
        for (const end of ends) {
          try {
            end();
          } catch {
            // a connection already closing; the others still hear it
          }
        }
      });
      hanging.set(key, (entry = { remove, ends }));
    }
    entry.ends.add(connection.end);
  }
}

function readOnly(session: SessionState, operation: string): SessionReadOnlyError {
  return reported(new SessionReadOnlyError(`Session '${session.definition.name}' is read-only in a GraphQL subscription: it cannot be ${operation === 'save' ? 'saved' : 'destroyed'} there`, operation));
}

function parseCookies(header: string): Record<string, string | undefined> {
  try {
    return parse(header);
  } catch {
    return {}; // a malformed header means no session, never an error
  }
}
