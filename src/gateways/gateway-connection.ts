import { parseCookieHeader } from '../transports/cookie-header.js';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import { isThenable } from '../lifecycle/thenable.js';
import { openCookie, readOpened, readStored, type OpenedCookie } from '../lifecycle/session-reader.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { reported, SessionError, SessionSocketError } from '../session/session.errors.js';
import { SessionState, type SessionHost } from '../session/session.js';
import { socketClient, type SocketClient } from './socket-client.js';
import { queueSave, queueWrite } from '../lifecycle/session-writer.js';
import { checkSize, planSave } from '../lifecycle/save-plan.js';
import { GatewayMessage, ownerOf } from './socket-message.js';

const kConnection = Symbol('nest-sessions:connection');
const kMessage = Symbol('nest-sessions:message');

/** One session of a socket, as its handshake's cookie names it: read once per connection. */
interface Entry {
  readonly def: SessionDefinition;
  /** The cookie was read: `opened` and `id` below are known. */
  cookieRead: boolean;
  /** The handshake's cookie of this session, opened; undefined when none or not valid. */
  opened: OpenedCookie | undefined;
  /** Server-side stores: the verified id of the cookie; undefined when none, unknown to the store, or ended. */
  id: string | undefined;
  /** Takes this socket off the session's connections. */
  unregister: (() => void) | undefined;
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
    if (def.clientSide) return readOpened(this.engine, def, this, entry.opened);
    const id = entry.id;
    if (id === undefined || entry.opened?.id === undefined) return new SessionState(def, this);
    // Hung on before the store is asked: an end confirmed while the read is in flight ends this socket.
    this.hangOn(entry, id);
    const result = readStored(this.engine, def, this, id, entry.opened.currentKey, entry.opened.value);
    if (!isThenable(result)) return this.found(entry, id, result);
    return Promise.resolve(result).then((session) => this.found(entry, id, session));
  }

  // SessionHost
  async destroyStored(session: SessionState, id: string, _replaced: boolean, ended: () => void): Promise<void> {
    const entry = this.entry(session.definition.name);
    // This socket stays open (it is answering); the session's other sockets are ended. Its other
    // messages neither read the session nor hang on it again from now on, unless the store fails.
    entry.unregister?.();
    entry.unregister = undefined;
    const mine = entry.id === id;
    if (mine) entry.id = undefined;
    try {
      await queueWrite(session, async () => {
        await this.engine.destroy(session.definition, id);
        ended();
      });
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
      const plan = planSave(session, this, true);
      return plan === undefined ? undefined : this.engine.perform(plan);
    });
  }

  checkSize(session: SessionState, growth?: number): void {
    checkSize(session, growth);
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
    ownerOf(session)?.changing();
  }

  isSecure(): boolean {
    return false; // never asked: no cookie is built for a socket
  }

  private entry(name: string): Entry {
    let entry = this.entries.get(name);
    if (entry === undefined) {
      entry = { def: this.engine.definition(name), cookieRead: false, opened: undefined, id: undefined, unregister: undefined };
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
    entry.opened = value === undefined ? undefined : openCookie(def, value);
    entry.id = entry.opened?.id;
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

