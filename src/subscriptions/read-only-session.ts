import { FlashBox } from '../session/flash.js';
import { reported, SessionReadOnlyError } from '../session/session.errors.js';
import type { Session } from '../session/session.interface.js';
import type { SessionState } from '../session/session.js';

const readOnlyStates = new WeakMap<ReadOnlySession, SessionState>();

/** The session a `ReadOnlySession` reads, for `SessionService` calls that take a session (`sessionsOf(session)`); never for the app. */
export function readOnlyState(session: unknown): SessionState | undefined {
  return session instanceof ReadOnlySession ? readOnlyStates.get(session) : undefined;
}

/**
 * A session as a GraphQL subscription sees it: everything reads as on HTTP, and every change throws
 * `SessionReadOnlyError` before anything changes, since no response carries its cookie and nothing
 * saves it. A value read and changed in place is not saved either.
 */
export class ReadOnlySession implements Session<any> {
  private flashBox: FlashBox | undefined;

  constructor(private readonly state: SessionState) {
    readOnlyStates.set(this, state);
  }

  get id(): string {
    return this.state.id;
  }

  get isNew(): boolean {
    return this.state.isNew;
  }

  get expiresAt(): Date {
    return this.state.expiresAt;
  }

  /** `peek()`, `has()` and `now()` work; `add()`, and `get()` or `all()` of a stored message, throw. */
  get flash(): FlashBox {
    const state = this.state;
    return (this.flashBox ??= new FlashBox({
      storedFlash: () => state.storedFlash(),
      replaceFlash: (_flash, _growth, operation) => {
        throw refused(state, operation, 'flash messages cannot be added or consumed (flash.add(), flash.get(), flash.all()); flash.peek() reads them without consuming');
      },
    }));
  }

  get user(): string | undefined {
    return this.state.user;
  }

  setUser(): void {
    throw refused(this.state, 'setUser', 'session.setUser() cannot be saved');
  }

  get(key: string): any {
    return this.state.get(key);
  }

  has(key: string): boolean {
    return this.state.has(key);
  }

  toJSON(): Record<string, any> {
    return this.state.toJSON();
  }

  set(key: string): void {
    throw refused(this.state, 'set', `session.set('${key}') cannot be saved`);
  }

  delete(key: string): void {
    throw refused(this.state, 'delete', `session.delete('${key}') cannot be saved`);
  }

  clear(): void {
    throw refused(this.state, 'clear', 'session.clear() cannot be saved');
  }

  setMaxAge(): void {
    throw refused(this.state, 'setMaxAge', 'session.setMaxAge() cannot be saved');
  }

  touch(): void {
    throw refused(this.state, 'touch', 'session.touch() cannot be saved');
  }

  regenerate(): Promise<void> {
    return rejected(refused(this.state, 'regenerate', 'session.regenerate() cannot send the new id'));
  }

  destroy(): Promise<void> {
    return rejected(refused(this.state, 'destroy', 'session.destroy() cannot clear the cookie'));
  }

  save(): Promise<void> {
    return rejected(refused(this.state, 'save', 'session.save() cannot send a cookie'));
  }
}

/** Rejected, and never an unhandled rejection if the caller does not wait: the mistake is logged where made. */
function rejected(error: SessionReadOnlyError): Promise<void> {
  const promise = Promise.reject(error);
  promise.catch(() => undefined);
  return promise;
}

function refused(state: SessionState, operation: string, what: string): SessionReadOnlyError {
  return reported(new SessionReadOnlyError(
    `Session '${state.definition.name}' is read-only over a GraphQL WebSocket (a subscription, or a query or mutation sent over it): ${what}, since a WebSocket has no response to carry a cookie. Change the session in a query or mutation over HTTP.`,
    operation,
  ));
}
