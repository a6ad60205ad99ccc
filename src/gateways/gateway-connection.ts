import { parseCookieHeader } from '../transports/cookie-header.js';
import type { SessionEngine, SessionScope } from '../lifecycle/session-engine.js';
import { checked, isThenable, matching } from '../lifecycle/session-engine.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { reported, SessionError, SessionSocketError } from '../session/session.errors.js';
import { SessionState, type SessionHost } from '../session/session.js';
import type { ClientSessionStore, SessionRecord } from '../stores/session-store.interface.js';
import { socketClient, type SocketClient } from './socket-client.js';
import { queueSave, queueWrite } from '../lifecycle/session-writer.js';

const kConnection = Symbol('nest-sessions:connection');
const kMessage = Symbol('nest-sessions:message');

/** The message each session object of a socket belongs to. */
const owners = new WeakMap<SessionState, GatewayMessage>();

/** One session of a socket, as its handshake's cookie names it: read once per connection. */
interface Entry {
  readonly def: SessionDefinition;
  /** The cookie was read: `id` / `sealed` below are known. */
  cookieRead: boolean;
  /** Server-side stores: the verified id of the cookie; undefined when none, unknown to the store, or ended. */
  id: string | undefined;
  currentKey: boolean;
  cookieValue: string;
  /** `CookieStore`: the session the cookie carried. */
  sealed: { id: string; record: SessionRecord } | undefined;
  /** Takes this socket off the session's connections. */
  unregister: (() => void) | undefined;
}

/**
 * The sessions of one message of a socket (or of one `SessionService.load(client)` outside any
 * message, as in `handleConnection`): each read fresh at the message's first ask, then shared by
 * everything that asks within the message (its guards, its parameters, its interceptor, and, on a
 * handler marked `@UseSession()`, `load(client)` and `current()` in what its handler calls).
 * Messages that overlap each have their own, and each saves what it changed as a patch of the keys
 * it changed, so their changes merge.
 */
export class GatewayMessage implements SessionScope {
  private readonly sessions = new Map<string, SessionState | Promise<SessionState>>();
  /** The arguments Nest gives the message's guards and interceptors (its parameters get a copy). */
  args: readonly unknown[] | undefined;
  /** Its handler runs in the engine's context (AsyncLocalStorage), where `current()` and `load(client)` find it. */
  scoped = false;
  /** Its handler is over and its sessions saved: nothing finds this message any more. */
  finished = false;
  /** A handler's interceptor runs it: it saves what changed once the handler is over. */
  intercepted = false;
  /** A save of what changed outside any handler is due at the next turn of the event loop. */
  private saveDue = false;
  /** Changed since its interceptor's last save began. */
  private unsaved = false;

  constructor(readonly connection: GatewayConnection) {}

  /** The session already loaded under `name` for this message, if any. */
  loaded(name: string): SessionState | undefined {
    if (this.finished) return undefined;
    const session = this.sessions.get(name);
    return session instanceof Promise ? undefined : session;
  }

  /** The session `name` of this message, read at its first ask. */
  load(name: string): SessionState | Promise<SessionState> {
    const known = this.sessions.get(name);
    if (known !== undefined) return known;
    const result = this.connection.read(name);
    if (!isThenable(result)) {
      this.keep(name, result);
      return result;
    }
    const loading = Promise.resolve(result).then(
      (session) => {
        this.keep(name, session);
        return session;
      },
      (error: unknown) => {
        this.sessions.delete(name); // a store that was down is asked again at the next ask
        throw error;
      },
    );
    this.sessions.set(name, loading);
    return loading;
  }

  private keep(name: string, session: SessionState): void {
    this.sessions.set(name, session);
    owners.set(session, this);
  }

  /**
   * One of its sessions is about to change. Where no handler's save follows (`handleConnection`,
   * a guard that refuses the message, `load(client)` in a handler not marked `@UseSession()`, work
   * a handler left scheduled), the change is saved on its own at the next turn of the event loop,
   * with whatever else changed by then: nothing is dropped for want of a response.
   */
  changing(): void {
    if (this.intercepted && !this.finished) {
      this.unsaved = true; // its handler's interceptor saves it, or, if its last save has begun, `end` does
      return;
    }
    if (this.saveDue) return;
    this.saveDue = true;
    setImmediate(() => {
      this.saveDue = false;
      if (this.intercepted && !this.finished) return; // its handler's interceptor saves it
      this.save().catch(() => undefined); // logged where it failed; session.save() tells the caller
    });
  }

  /** Its interceptor is done: a change made since its last save began is saved on its own. */
  ended(): void {
    if (this.unsaved) this.changing();
  }

  /** Saves what changed in the message's server-side sessions (after its handler). */
  async save(): Promise<void> {
    this.unsaved = false;
    const pending: Promise<void>[] = [];
    for (const session of this.sessions.values()) {
      if (!(session instanceof Promise) && !session.definition.clientSide) pending.push(this.connection.saveNow(session));
    }
    await Promise.all(pending);
  }
}

/**
 * The sessions of one gateway connection, kept on its client object (socket.io `Socket`, `ws`
 * `WebSocket`), so they live and die with it. The handshake's cookie is read and verified once;
 * each message gets its own session objects (`GatewayMessage`), read fresh from the store, and
 * saves what it changed after its handler. A `CookieStore` session is the one the handshake's cookie
 * carried, checked against `userVersion` at every message when configured. No cookie can be sent
 * over a socket: a `CookieStore` session cannot change, `regenerate()` is refused, and a socket
 * without a stored session cannot start one (`SessionSocketError`). The socket hangs on its stored
 * sessions in the engine's connections from before their first store read, so that it is ended
 * when they end (a logout over HTTP, even one confirmed while that read is in flight), and is taken
 * off when it closes or the store no longer knows the session.
 */
export class GatewayConnection implements SessionHost {
  private readonly entries = new Map<string, Entry>();
  /** The messages whose handler runs now, from their interceptor's start to their last save. */
  private readonly handling = new Set<GatewayMessage>();
  private cookies: Record<string, string | undefined> | undefined;
  private closed = false;
  private watching = false;

  private constructor(
    readonly engine: SessionEngine,
    private readonly client: SocketClient,
  ) {}

  /** The sessions of this socket, created on first use; undefined when `client` is no gateway client. */
  static of(engine: SessionEngine, client: unknown): GatewayConnection | undefined {
    const found = GatewayConnection.find(client);
    if (found !== undefined) return found;
    const platform = socketClient(client);
    if (platform === undefined) return undefined;
    const connection = new GatewayConnection(engine, platform);
    Object.defineProperty(client, kConnection, { value: connection, configurable: true, enumerable: false, writable: false });
    return connection;
  }

  /** The sessions of this socket if any were asked for. */
  static find(client: unknown): GatewayConnection | undefined {
    return typeof client === 'object' && client !== null ? ((client as Record<symbol, unknown>)[kConnection] as GatewayConnection | undefined) : undefined;
  }

  /**
   * The message whose guards and interceptors get `args` (one array per message), created at its
   * first ask. Without them (`load(client)`), the message of a handler marked `@UseSession()` that
   * runs this call. Otherwise (`handleConnection`, a handler that is not marked, work a handler left
   * scheduled), a message of its own, so that every such call reads fresh.
   */
  message(args?: unknown[]): GatewayMessage {
    const holder = args as unknown as { [kMessage]?: GatewayMessage } | undefined;
    const known = holder?.[kMessage];
    if (known !== undefined && !known.finished) return known;
    const scope = this.scope();
    if (scope !== undefined && (args === undefined || scope.args === args)) return scope;
    const message = new GatewayMessage(this);
    if (holder !== undefined) Object.defineProperty(holder, kMessage, { value: message, configurable: true });
    return message;
  }

  /**
   * The message of a parameter, which gets a copy of its message's arguments: the one that runs
   * this call in the engine's context, else the running message whose arguments are the same values
   * (twins run in the engine's context, see `begin`). Only a parameter matches by value: a guard or
   * an interceptor of a message that has not begun must never be handed another one.
   */
  messageOfParameter(args: unknown[]): GatewayMessage {
    const known = (args as unknown as { [kMessage]?: GatewayMessage })[kMessage];
    if (known !== undefined && !known.finished) return known;
    const scope = this.scope();
    if (scope !== undefined && sameValues(scope.args, args)) return scope;
    for (const message of this.handling) if (!message.scoped && sameValues(message.args, args)) return message;
    return this.message(args);
  }

  /** The running message of this socket in whose context (`scoped`) this call runs, if any. */
  private scope(): GatewayMessage | undefined {
    const scope = this.engine.context.getStore();
    return scope instanceof GatewayMessage && scope.connection === this && !scope.finished ? scope : undefined;
  }

  /**
   * The handler of `message` starts, with the arguments `args`: its parameters find it by them.
   * It runs in the engine's context (`scoped`) where `current()` is asked for (`@UseSession()`), or
   * where another running message of this socket has the same arguments (the same event, the same
   * payload, no ack), which a parameter could not tell apart; true if it must.
   */
  begin(message: GatewayMessage, args: unknown[], context: boolean): boolean {
    message.args = args;
    message.scoped = context || [...this.handling].some((other) => other !== message && !other.scoped && sameValues(other.args, args));
    this.handling.add(message);
    return message.scoped;
  }

  /**
   * The handler of `message` is over and its sessions saved: later asks read anew; what changed
   * while its last save was in flight (work the handler left scheduled) is saved on its own.
   */
  end(message: GatewayMessage): void {
    message.finished = true;
    this.handling.delete(message);
    message.ended();
  }

  /**
   * The session `name` as its store has it now: a server-side one read by the cookie's id (the
   * socket hung on it first), a `CookieStore` one as the handshake's cookie carried it.
   */
  read(name: string): SessionState | Promise<SessionState> {
    const entry = this.entry(name);
    const def = entry.def;
    if (!entry.cookieRead) this.readCookie(entry);
    if (def.clientSide) {
      const sealed = entry.sealed;
      const record = sealed === undefined ? undefined : checked(sealed.record, def);
      if (record === undefined) return new SessionState(def, this);
      // userVersion: a user signed out everywhere is signed out of this socket at its next message.
      return this.engine.checkedVersion(def, this, matching(def, this, record, () => new SessionState(def, this, sealed!.id, record)));
    }
    const id = entry.id;
    if (id === undefined) return new SessionState(def, this);
    // Hung on before the store is asked: an end confirmed while the read is in flight ends this socket.
    this.hangOn(entry, id);
    const result = this.engine.readStored(def, this, id, entry.currentKey, entry.cookieValue);
    if (!isThenable(result)) return this.found(entry, id, result);
    return Promise.resolve(result).then((session) => this.found(entry, id, session));
  }

  // SessionHost
  async destroyStored(session: SessionState, id: string): Promise<void> {
    const entry = this.entry(session.definition.name);
    // This socket stays open (it is answering); the session's other sockets are ended. Its other
    // messages neither read the session nor hang on it again from now on, unless the store fails.
    entry.unregister?.();
    entry.unregister = undefined;
    const mine = entry.id === id;
    if (mine) entry.id = undefined;
    try {
      await queueWrite(session, () => this.engine.destroy(session.definition, id));
    } catch (error) {
      // Not ended: the socket keeps the session, and is ended with it later.
      if (mine && entry.id === undefined) entry.id = id;
      if (entry.id !== undefined) this.hangOn(entry, entry.id);
      throw error;
    }
  }

  /** Saves what changed in `session`, in its turn after the writes asked for before (see `session-writer.ts`). */
  saveNow(session: SessionState): Promise<void> {
    return queueSave(session, () => {
      const plan = this.engine.plan(session, this, true);
      return plan === undefined ? undefined : this.engine.perform(plan);
    });
  }

  checkSize(session: SessionState, growth?: number): void {
    this.engine.checkSize(session, growth);
  }

  refuseChange(session: SessionState, change: 'change' | 'regenerate'): void {
    const name = session.definition.name;
    if (change === 'regenerate') {
      throw reported(new SessionSocketError(
        `Session '${name}': regenerate() over a socket is refused, since no response can carry the new id to the browser; regenerate over HTTP (on login), then reconnect the socket`,
      ));
    }
    if (session.definition.clientSide) {
      throw reported(new SessionSocketError(
        `Session '${name}' lives in its cookie (CookieStore), which cannot change over a socket (no response carries a cookie); change it over HTTP, or use a server-side store`,
      ));
    }
    if (!session.stored) {
      throw reported(new SessionSocketError(
        `Session '${name}': this socket has no stored session (it came without a session cookie, or the session ended), and a new one cannot start over a socket, since its cookie could never reach the browser; start the session over HTTP, then reconnect the socket`,
      ));
    }
    owners.get(session)?.changing();
  }

  isSecure(): boolean {
    return false; // never asked: no cookie is built for a socket
  }

  private entry(name: string): Entry {
    let entry = this.entries.get(name);
    if (entry === undefined) {
      entry = { def: this.engine.definition(name), cookieRead: false, id: undefined, currentKey: false, cookieValue: '', sealed: undefined, unregister: undefined };
      this.entries.set(name, entry);
    }
    return entry;
  }

  /** Reads this session's cookie from the handshake, once per connection. */
  private readCookie(entry: Entry): void {
    const def = entry.def;
    const header = this.client.cookieHeader();
    if (typeof header !== 'string') throw reported(new SessionError(`Session '${def.name}': ${header.unknown}`));
    entry.cookieRead = true;
    if (header === '') return;
    this.cookies ??= parseCookieHeader(header);
    const value = this.cookies[def.cookieName];
    if (value === undefined) return;
    if (def.clientSide) {
      const opened = (def.store as ClientSessionStore).open(value);
      if (opened !== undefined) entry.sealed = opened;
      return;
    }
    const signed = def.signer.unsign(value);
    if (signed === undefined) return;
    entry.id = signed[0];
    entry.currentKey = signed[1];
    entry.cookieValue = value;
  }

  /** What the store read of `id` found, for a socket hung on it since before the read. */
  private found(entry: Entry, id: string, session: SessionState): SessionState {
    // The session ended while it was read (a logout): the socket is being ended, the message gets no session.
    if (entry.id !== id) return new SessionState(entry.def, this);
    if (!session.stored) {
      // The store does not know it (expired, ended elsewhere): nothing to hang on, nothing to read again.
      entry.id = undefined;
      entry.unregister?.();
      entry.unregister = undefined;
    }
    return session;
  }

  /** Hangs the socket on the session `id`, once, while it is open. */
  private hangOn(entry: Entry, id: string): void {
    if (entry.unregister !== undefined || this.closed || !this.client.isOpen()) return;
    entry.unregister = this.engine.connections.add(entry.def.name, id, () => this.ended(entry));
    if (!this.watching) {
      this.watching = true;
      this.client.onClose(() => this.close());
    }
  }

  private ended(entry: Entry): void {
    entry.unregister = undefined;
    entry.id = undefined;
    this.client.end();
  }

  private close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) {
      entry.unregister?.();
      entry.unregister = undefined;
    }
  }
}

/** Two argument lists hold the same values, one by one. */
function sameValues(a: readonly unknown[] | undefined, b: readonly unknown[]): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

