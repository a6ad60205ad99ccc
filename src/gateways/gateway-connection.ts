import { parse } from 'cookie';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import { checked, isThenable, matching } from '../lifecycle/session-engine.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { reported, SessionError, SessionSocketError } from '../session/session.errors.js';
import { SessionState, type SessionHost } from '../session/session.js';
import type { ClientSessionStore, SessionRecord } from '../stores/session-store.interface.js';
import { socketClient, type SocketClient } from './socket-client.js';

const kConnection = Symbol('nest-sessions:connection');
const kFresh = Symbol('nest-sessions:message');

/** One session of a socket: what its cookie said (read once), and the state the messages share. */
interface Entry {
  readonly def: SessionDefinition;
  /** The cookie was read: `id` / `sealed` below are known. */
  cookieRead: boolean;
  /** Server-side stores: the verified id of the cookie, undefined when none (or once destroyed). */
  id: string | undefined;
  currentKey: boolean;
  cookieValue: string;
  /** `CookieStore`: the session the cookie carried. */
  sealed: { id: string; record: SessionRecord } | undefined;
  state: SessionState | undefined;
  loading: Promise<SessionState> | undefined;
  /** Takes this socket off the session's connections. */
  unregister: (() => void) | undefined;
}

/**
 * The sessions of one gateway connection, kept on its client object (socket.io `Socket`, `ws`
 * `WebSocket`), so they live and die with it. The handshake's cookie is read once; a server-side
 * session is read fresh from its store when a message starts while no other message of the socket
 * is running (messages that overlap share one session object), and what a message changed is saved
 * after its handler. A `CookieStore` session is read from the handshake cookie at every message, and
 * checked against `userVersion` when configured. No cookie can be sent over a socket: a `CookieStore` session cannot change,
 * `regenerate()` is refused, and a socket without a stored session cannot start one
 * (`SessionSocketError`). The socket hangs on its stored sessions in the engine's connections, so
 * that it is ended when they end (a logout over HTTP), and is taken off when it closes.
 */
export class GatewayConnection implements SessionHost {
  private readonly entries = new Map<string, Entry>();
  private cookies: Record<string, string | undefined> | undefined;
  /** Messages of this socket whose handler is running (counted by the session interceptor). */
  private running = 0;
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

  /** The session already loaded under `name`, if any. */
  loaded(name: string): SessionState | undefined {
    return this.entries.get(name)?.state;
  }

  /**
   * The session `name` for the message whose handler arguments are `args` (one array per message,
   * shared by its guards and interceptors): read fresh at the message's first ask when no other
   * message of the socket is running, else the one they share. Without `args` (a parameter, or
   * outside a message), the one loaded already, or a fresh read.
   */
  load(name: string, args?: unknown[]): SessionState | Promise<SessionState> {
    const entry = this.entry(name);
    if (entry.loading !== undefined) return entry.loading;
    let fresh = entry.state === undefined;
    if (args !== undefined) {
      const seen = ((args as unknown as Record<symbol, Set<string> | undefined>)[kFresh] ??= new Set());
      if (!seen.has(name)) {
        seen.add(name);
        // A cookie session is checked again at every message (userVersion may have ended it).
        fresh ||= this.running === 0 || entry.def.clientSide;
      }
    }
    if (!fresh) return entry.state!;
    const result = this.read(entry);
    if (!isThenable(result)) return this.keep(entry, result);
    const loading = result.then(
      (session) => {
        entry.loading = undefined;
        return this.keep(entry, session);
      },
      (error: unknown) => {
        entry.loading = undefined;
        throw error;
      },
    );
    entry.loading = loading;
    return loading;
  }

  /** A message's handler starts: sessions it loads from now on are shared with messages that overlap it. */
  begin(): void {
    this.running++;
  }

  /** A message's handler is done (saved or given up). */
  end(): void {
    this.running--;
  }

  /** Saves what changed in the socket's server-side sessions (after a message's handler). */
  async save(): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const entry of this.entries.values()) {
      const session = entry.state;
      if (session !== undefined && !session.definition.clientSide) pending.push(this.saveNow(session));
    }
    await Promise.all(pending);
  }

  // SessionHost
  async destroyStored(session: SessionState, id: string): Promise<void> {
    const entry = this.entry(session.definition.name);
    // This socket stays open (it is answering); the session's other sockets are ended.
    entry.unregister?.();
    entry.unregister = undefined;
    await this.engine.destroy(session.definition, id);
    if (entry.id === id) entry.id = undefined;
  }

  saveNow(session: SessionState): Promise<void> {
    let written: Promise<void> | undefined;
    try {
      const plan = this.engine.plan(session, this, true);
      written = plan === undefined ? undefined : this.engine.perform(plan);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return written ?? Promise.resolve();
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
  }

  isSecure(): boolean {
    return false; // never asked: no cookie is built for a socket
  }

  private entry(name: string): Entry {
    let entry = this.entries.get(name);
    if (entry === undefined) {
      entry = { def: this.engine.definition(name), cookieRead: false, id: undefined, currentKey: false, cookieValue: '', sealed: undefined, state: undefined, loading: undefined, unregister: undefined };
      this.entries.set(name, entry);
    }
    return entry;
  }

  private read(entry: Entry): SessionState | Promise<SessionState> {
    const def = entry.def;
    if (!entry.cookieRead) this.readCookie(entry);
    if (def.clientSide) {
      const sealed = entry.sealed;
      const record = sealed === undefined ? undefined : checked(sealed.record, def);
      if (record === undefined) return new SessionState(def, this);
      // userVersion: a user signed out everywhere is signed out of this socket at its next message.
      return this.engine.checkedVersion(def, this, matching(def, this, record, () => new SessionState(def, this, sealed!.id, record)));
    }
    if (entry.id === undefined) return new SessionState(def, this);
    return this.engine.readStored(def, this, entry.id, entry.currentKey, entry.cookieValue);
  }

  /** Reads this session's cookie from the handshake, once per connection. */
  private readCookie(entry: Entry): void {
    const def = entry.def;
    const header = this.client.cookieHeader();
    if (header === undefined) {
      throw reported(new SessionError(
        `Session '${def.name}': the Cookie header of this WebSocket's upgrade request is out of reach (a ws gateway on a port of its own); serve the gateway on the app's HTTP server (@WebSocketGateway() without a port), or use socket.io`,
      ));
    }
    entry.cookieRead = true;
    if (header === '') return;
    this.cookies ??= parseCookies(header);
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

  /** Keeps the session the socket's messages share, and hangs the socket on it while it is stored. */
  private keep(entry: Entry, session: SessionState): SessionState {
    entry.state = session;
    if (session.stored && !entry.def.clientSide && entry.unregister === undefined && !this.closed && this.client.isOpen()) {
      entry.unregister = this.engine.connections.add(entry.def.name, session.id, () => this.ended(entry));
      if (!this.watching) {
        this.watching = true;
        this.client.onClose(() => this.close());
      }
    } else if (!session.stored && entry.unregister !== undefined) {
      // The session is gone from its store (ended elsewhere): nothing left to hang on.
      entry.unregister();
      entry.unregister = undefined;
    }
    return session;
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

function parseCookies(header: string): Record<string, string | undefined> {
  try {
    return parse(header);
  } catch {
    return {}; // a malformed header means no session, never an error
  }
}
