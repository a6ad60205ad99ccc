import type { SessionState } from '../session/session.js';
import type { SessionEngine } from './session-engine.js';
import type { SavePlan } from './save-plan.js';

/**
 * The one way a session object is written. Every write of it, whoever starts it (the response
 * leaving, an explicit `save()`, a change made after the response, a GraphQL request, a gateway
 * message or its teardown, a `destroy()` or `regenerate()`), waits for the writes asked for before
 * it to settle: a later write never reaches the store before an earlier one has landed, on any
 * store, and each is planned against what the one before it confirmed. A transport only says when
 * its moments are; the queue, kept on the session object itself, orders what they start.
 */

const noop = (): void => undefined;

/**
 * Runs `write` once every write of `session` queued before it has settled (failed ones included);
 * at once, and synchronously, when none is running. A write that runs or fails synchronously
 * returns or throws as it does.
 */
export function queueWrite<T>(session: SessionState, write: () => T | Promise<T>): T | Promise<T> {
  const before = session.lastWrite;
  const result = before === undefined ? write() : before.then(write);
  if (result instanceof Promise) void track(session, result);
  return result;
}

/**
 * `queueWrite` for a write of several sessions at once (a response's save of all its sessions):
 * it waits for the writes of each, and every later write of any of them waits for it.
 */
export function queueWriteOfAll<T>(sessions: readonly SessionState[], write: () => T | Promise<T>): T | Promise<T> {
  if (sessions.length === 1) return queueWrite(sessions[0], write);
  let before: Promise<void>[] | undefined;
  for (const session of sessions) if (session.lastWrite !== undefined) (before ??= []).push(session.lastWrite);
  const result = before === undefined ? write() : Promise.all(before).then(write);
  if (result instanceof Promise) for (const session of sessions) void track(session, result);
  return result;
}

/**
 * Queues a save of `session`: `save` plans what changed when it starts, so a save asked for while
 * another is still waiting to start joins that one (unless `join` is false), which will find both
 * changes. `deferred`: it starts no sooner than the next microtask, for a change announced before
 * it is made.
 */
export function queueSave(session: SessionState, save: () => Promise<void> | undefined, deferred = false, join = true): Promise<void> {
  const waiting = session.waitingSave;
  if (waiting !== undefined && join) return waiting;
  const before = session.lastWrite ?? (deferred ? Promise.resolve() : undefined);
  if (before === undefined) {
    let started: Promise<void> | undefined;
    try {
      started = save();
    } catch (error) {
      started = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return track(session, started ?? Promise.resolve());
  }
  const start = () => {
    if (session.waitingSave === queued) session.waitingSave = undefined;
    return save();
  };
  const queued = before.then(start);
  session.waitingSave = queued;
  return track(session, queued);
}

/** Makes `write` the last write of `session` until it settles. */
export function track<T extends Promise<unknown>>(session: SessionState, write: T): T {
  const settled = write.then(noop, noop);
  session.lastWrite = settled;
  void settled.then(() => {
    if (session.lastWrite === settled) session.lastWrite = undefined;
  });
  return write;
}

/**
 * Writes the plans of several sessions one after another, in the order given (the configuration's):
 * a write that fails stops the writes after it, and the sessions created by the writes before it
 * (and by the failing one: a creation that timed out may have landed) are removed again, since no
 * cookie will name them; changes written to sessions that existed stay. Undefined when every write
 * finished at once.
 */
export function writeInOrder(engine: SessionEngine, plans: readonly SavePlan[], from = 0): Promise<void> | undefined {
  for (let i = from; i < plans.length; i++) {
    let written: Promise<void> | undefined;
    try {
      written = engine.perform(plans[i]);
    } catch (error) {
      if (!plans.slice(0, i + 1).some((plan) => plan.kind === 'create')) throw error;
      return undoCreated(engine, plans, i, error);
    }
    if (written !== undefined) {
      return written.then(
        () => writeInOrder(engine, plans, i + 1),
        (error: unknown) => undoCreated(engine, plans, i, error),
      );
    }
  }
  return undefined;
}

/** After the write of `plans[failed]` failed: removes the sessions created up to it, then fails with its error. */
async function undoCreated(engine: SessionEngine, plans: readonly SavePlan[], failed: number, error: unknown): Promise<never> {
  const created = plans.slice(0, failed + 1).filter((plan) => plan.kind === 'create');
  await Promise.allSettled(created.map(async (plan) => engine.destroy(plan.session.definition, plan.id)));
  throw error;
}
