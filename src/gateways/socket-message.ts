import type { SessionScope } from '../lifecycle/session-engine.js';
import { isThenable } from '../lifecycle/thenable.js';
import type { SessionState } from '../session/session.js';
import type { GatewayConnection } from './gateway-connection.js';

/** The message each session object of a socket belongs to. */
const owners = new WeakMap<SessionState, GatewayMessage>();

/** The message `session` was read for, if it is a socket's. */
export function ownerOf(session: SessionState): GatewayMessage | undefined {
  return owners.get(session);
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
