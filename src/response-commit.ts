import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { appendRawSetCookie } from './platform.adapter.js';

/** What an armed response asks of its request's sessions. */
export interface ResponseCommitter {
  /** Saves what changed; returns the cookies to send (once) and leaves any store write pending. */
  commitForResponse(headersSent: boolean): string[] | undefined;
  /** The store writes still running, if any. */
  pendingWrite(): Promise<void> | undefined;
}

interface Armed {
  committer: ResponseCommitter;
  writeHead: ServerResponse['writeHead'];
  end: ServerResponse['end'];
}

const kArmed = Symbol('nest-sessions:armed-response');
type ArmedResponse = ServerResponse & { [kArmed]?: Armed };

/**
 * Makes a raw response save its request's sessions itself, for changes made where no interceptor
 * runs after them (guards, `@Res()`, `@Sse()`): the cookie joins the headers as they go out and
 * the end of the body waits for the store write. Shared functions, no closure per request.
 */
export function armResponse(res: ServerResponse, committer: ResponseCommitter): void {
  const armed = res as ArmedResponse;
  if (armed[kArmed] !== undefined) return;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the originals are called with this response as `this`
  armed[kArmed] = { committer, writeHead: res.writeHead, end: res.end };
  armed.writeHead = armedWriteHead;
  armed.end = armedEnd as ServerResponse['end'];
}

function armedWriteHead(this: ArmedResponse, statusCode: number, ...rest: unknown[]): ServerResponse {
  const armed = this[kArmed]!;
  const cookies = armed.committer.commitForResponse(false);
  if (cookies !== undefined) {
    const last = rest.length - 1;
    const headers = last >= 0 && typeof rest[last] === 'object' && rest[last] !== null ? rest[last] : undefined;
    if (headers === undefined) {
      setOnResponse(this, cookies);
    } else if (Array.isArray(headers)) {
      mergeIntoArray(this, headers, cookies);
    } else {
      mergeIntoObject(this, headers as OutgoingHttpHeaders, cookies);
    }
  }
  return (armed.writeHead as (...args: unknown[]) => ServerResponse).call(this, statusCode, ...rest);
}

function armedEnd(this: ArmedResponse, ...args: unknown[]): ServerResponse {
  const armed = this[kArmed]!;
  // Commit before the body ends: headers not sent yet get the cookie through writeHead.
  const cookies = armed.committer.commitForResponse(this.headersSent);
  if (cookies !== undefined && !this.headersSent) setOnResponse(this, cookies);
  const end = armed.end as (...endArgs: unknown[]) => ServerResponse;
  const pending = armed.committer.pendingWrite();
  if (pending === undefined) return end.apply(this, args);
  void pending.then(() => end.apply(this, args));
  return this;
}

/** Adds the cookies to the headers set so far, with `Cache-Control: private` unless one is set. */
function setOnResponse(res: ServerResponse, cookies: string[]): void {
  for (const cookie of cookies) appendRawSetCookie(res, cookie);
  if (!res.hasHeader('cache-control')) res.setHeader('cache-control', 'private');
}

function mergeIntoObject(res: ServerResponse, headers: OutgoingHttpHeaders, cookies: string[]): void {
  let cookieKey: string | undefined;
  let hasCacheControl = res.hasHeader('cache-control');
  for (const key of Object.keys(headers)) {
    const lower = key.toLowerCase();
    if (lower === 'set-cookie') cookieKey = key;
    else if (lower === 'cache-control') hasCacheControl = true;
  }
  if (cookieKey === undefined) {
    const fromRes = res.getHeader('set-cookie');
    headers['set-cookie'] = [...toList(fromRes), ...cookies];
  } else {
    headers[cookieKey] = [...toList(headers[cookieKey]), ...cookies];
  }
  if (!hasCacheControl) headers['cache-control'] = 'private';
}

function mergeIntoArray(res: ServerResponse, headers: unknown[], cookies: string[]): void {
  // Node accepts [name, value, name, value, ...] and [[name, value], ...].
  const nested = Array.isArray(headers[0]);
  let hasCacheControl = res.hasHeader('cache-control');
  for (let i = 0; i < headers.length; i += nested ? 1 : 2) {
    const name = String(nested ? (headers[i] as unknown[])[0] : headers[i]).toLowerCase();
    if (name === 'cache-control') hasCacheControl = true;
  }
  const pairs: [string, string][] = cookies.map((cookie) => ['set-cookie', cookie]);
  if (!hasCacheControl) pairs.push(['cache-control', 'private']);
  for (const pair of pairs) {
    if (nested) headers.push(pair);
    else headers.push(pair[0], pair[1]);
  }
}

function toList(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value.map((entry) => `${entry as string}`) : [`${value as string}`];
}
