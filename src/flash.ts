import type { Flash, FlashMessages } from './session.interface.js';

/** What a `FlashBox` needs from the session that holds it. */
export interface FlashHolder {
  /** The stored messages, read-only. */
  storedFlash(): Readonly<Record<string, readonly unknown[]>> | undefined;
  /** Replaces the stored messages (undefined: none left). */
  replaceFlash(flash: Record<string, unknown[]> | undefined): void;
}

const hasOwn = Object.hasOwn;

/** Flash messages kept inside their session until read; `now()` messages live for this request only. */
export class FlashBox implements Flash<any> {
  private current: Record<string, unknown[]> | undefined;

  constructor(private readonly holder: FlashHolder) {}

  add(key: string, value: unknown): void {
    const next = copy(this.holder.storedFlash());
    next[key] = hasOwn(next, key) ? [...next[key], value] : [value];
    this.holder.replaceFlash(next);
  }

  get(key: string): any[] {
    const list = this.peek(key);
    const stored = this.holder.storedFlash();
    if (stored !== undefined && hasOwn(stored, key)) {
      const next = copy(stored);
      delete next[key];
      this.holder.replaceFlash(Object.keys(next).length === 0 ? undefined : next);
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
    if (stored !== undefined) this.holder.replaceFlash(undefined);
    this.current = undefined;
    return result;
  }

  now(key: string, value: unknown): void {
    this.current ??= Object.create(null) as Record<string, unknown[]>;
    (this.current[key] ??= []).push(value);
  }
}

function copy(flash: Readonly<Record<string, readonly unknown[]>> | undefined): Record<string, unknown[]> {
  const next = Object.create(null) as Record<string, unknown[]>;
  if (flash !== undefined) for (const key of Object.keys(flash)) next[key] = [...flash[key]];
  return next;
}

export type { Flash, FlashMessages };
