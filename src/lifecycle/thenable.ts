import type { MaybePromise } from '../stores/session-store.interface.js';

/** Any thenable counts as pending: stores may answer with another promise library's promise. */
export function isThenable<T>(value: MaybePromise<T>): value is PromiseLike<T> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<T>).then === 'function';
}
