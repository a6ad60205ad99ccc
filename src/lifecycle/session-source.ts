import type { SessionDefinition } from '../session/session-definition.js';
import type { SessionHost } from '../session/session.js';
import type { Session } from '../session/session.interface.js';

/**
 * Where the sessions of one call come from, once loaded: an HTTP request (`RequestSessions`) or a
 * GraphQL subscription's connection (`SubscriptionSessions`). What the guard, the parameters, the
 * interceptor and `SessionService` ask of either.
 */
export interface SessionSource {
  /** The session already loaded under `name`, if any. */
  loaded(name: string): Session<any> | undefined;
  /** Loads the session `name` once; synchronous when no store call is needed. */
  load(name: string): Session<any> | Promise<Session<any>>;
  /** Loads several sessions; undefined when all were available at once. */
  loadAll(names: readonly string[]): Promise<unknown> | undefined;
}

/** What the engine reads a session for: the cookie it came with, and the host the session reports to. */
export interface SessionReader extends SessionHost {
  /** The value of this session's cookie, if any. */
  incomingCookie(def: SessionDefinition): string | undefined;
}

/** Loads each of `names`; undefined when all were available at once, else a promise of them all. */
export function loadEach(names: readonly string[], load: (name: string) => unknown): Promise<unknown> | undefined {
  let pending: Promise<unknown>[] | undefined;
  for (const name of names) {
    const result = load(name);
    if (result instanceof Promise) (pending ??= []).push(result);
  }
  return pending === undefined ? undefined : pending.length === 1 ? pending[0] : Promise.all(pending);
}
