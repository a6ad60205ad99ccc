import type { SessionMeta, SessionPatch, SessionRecord } from './session-store.interface.js';

/**
 * The record `patch` makes of `record`, for stores that hold whole records (memory, files): a new
 * object each time, so a reader holding the old one never sees it change. Keys are defined, never
 * assigned, so a key named `__proto__` stays plain data.
 */
export function applyPatch(record: SessionRecord, patch: SessionPatch): SessionRecord {
  const data = { ...record.data };
  for (const key of patch.unset) delete data[key];
  for (const key of Object.keys(patch.set)) define(data, key, patch.set[key]);

  const meta: SessionMeta = { createdAt: record.meta.createdAt };
  const maxAge = patch.maxAge === undefined ? record.meta.maxAge : (patch.maxAge ?? undefined);
  if (maxAge !== undefined) meta.maxAge = maxAge;
  const flash: Record<string, unknown[]> = { ...record.meta.flash };
  for (const key of patch.flash.unset) delete flash[key];
  for (const key of Object.keys(patch.flash.set)) define(flash, key, patch.flash.set[key]);
  if (Object.keys(flash).length > 0) meta.flash = flash;
  if (record.meta.session !== undefined) meta.session = record.meta.session;
  const user = patch.user === undefined ? record.meta.user : (patch.user ?? undefined);
  if (user !== undefined) meta.user = user;
  return { data, meta, expiresAt: patch.expiresAt };
}

function define<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
