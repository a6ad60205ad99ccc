import { reported, SessionValidationError } from './session.errors.js';
import type { Flash, FlashMessages } from './session.interface.js';

/** What a `FlashBox` needs from the session that holds it. */
export interface FlashHolder {
  /** The stored messages, read-only. */
  storedFlash(): Readonly<Record<string, readonly unknown[]>> | undefined;
  /**
   * Replaces the stored messages (undefined: none left). Lists of keys that did not change are
   * passed on as the same objects, so the save writes only the keys that did. `growth`: at most how
   * many bytes the change adds to the stored form (checked against a cookie's limit). `operation`:
   * the call that made the change, for an error that names it.
   */
  replaceFlash(flash: Record<string, unknown[]> | undefined, growth: number, operation: FlashOperation): void;
}

/** The calls of a `Flash` that change the stored messages. */
export type FlashOperation = 'flash.add' | 'flash.get' | 'flash.all';

const hasOwn = Object.hasOwn;

/** Flash messages kept inside their session until read; `now()` messages live for this request only. */
export class FlashBox implements Flash<any> {
  private current: Record<string, unknown[]> | undefined;

  constructor(private readonly holder: FlashHolder) {}

  add(key: string, value: unknown): void {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (error) {
      throw reported(new SessionValidationError(`flash.add('${key}'): the message cannot be stored as JSON (${(error as Error)?.message}); flash messages must be JSON-serialisable`, `flash.${key}`, { cause: error }));
    }
    if (text === undefined) throw reported(new SessionValidationError(`flash.add('${key}'): a ${typeof value} cannot be stored; flash messages must be JSON-serialisable`, `flash.${key}`));
    const stored = this.holder.storedFlash();
    const next = copy(stored);
    next[key] = stored !== undefined && hasOwn(stored, key) ? [...stored[key], value] : [value];
    this.holder.replaceFlash(next, Buffer.byteLength(text) + Buffer.byteLength(JSON.stringify(key)) + 4, 'flash.add');
  }

  get(key: string): any[] {
    const list = this.peek(key);
    const stored = this.holder.storedFlash();
    if (stored !== undefined && hasOwn(stored, key)) {
      const next = copy(stored);
      delete next[key];
      this.holder.replaceFlash(Object.keys(next).length === 0 ? undefined : next, 0, 'flash.get');
    }
    if (this.current !== undefined) delete this.current[key];
    return list;
  }

  peek(key: string): any[] {
    const stored = this.holder.storedFlash();
    const fromStore = stored !== undefined && hasOwn(stored, key) ? stored[key] : undefined;
    const fromNow = this.current !== undefined && hasOwn(this.current, key) ? this.current[key] : undefined;
    if (fromNow === undefined) return fromStore === undefined ? [] : [...fromStore];
    return fromStore === undefined ? [...fromNow] : [...fromStore, ...fromNow];
  }

  has(key: string): boolean {
    const stored = this.holder.storedFlash();
    return (stored !== undefined && hasOwn(stored, key)) || (this.current !== undefined && hasOwn(this.current, key));
  }

  all(): Record<string, any[]> {
    const result = Object.create(null) as Record<string, unknown[]>;
    const stored = this.holder.storedFlash();
    for (const source of [stored, this.current]) {
      if (source === undefined) continue;
      for (const key of Object.keys(source)) result[key] = hasOwn(result, key) ? [...result[key], ...source[key]] : [...source[key]];
    }
    if (stored !== undefined) this.holder.replaceFlash(undefined, 0, 'flash.all');
    this.current = undefined;
    return result;
  }

  now(key: string, value: unknown): void {
    this.current ??= Object.create(null) as Record<string, unknown[]>;
    (this.current[key] ??= []).push(value);
  }
}

/** A new object holding the same lists: only the key that changes gets a new one. */
function copy(flash: Readonly<Record<string, readonly unknown[]>> | undefined): Record<string, unknown[]> {
  const next = Object.create(null) as Record<string, unknown[]>;
  if (flash !== undefined) for (const key of Object.keys(flash)) next[key] = flash[key] as unknown[];
  return next;
}

export type { Flash, FlashMessages };
