import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { HttpStatus } from '@nestjs/common';
import { CLIENT_STORE_MESSAGE, STORE_UNAVAILABLE_CODE, storeUnavailableBody } from '../session/session.errors.js';

/**
 * The headers a session adds to a response's head: its cookies, merged with those the app set
 * (on the response, or in the headers passed to `writeHead`), and a `Cache-Control` that keeps the
 * response private; and what an error response sent instead of a failed save carries.
 */

/** Headers that describe the body the handler meant to send, not the error sent instead. */
const BODY_HEADERS = new Set([
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-disposition',
  'content-range',
  'content-location',
  'transfer-encoding',
  'etag',
  'last-modified',
  // What the app meant to go with its own answer, not with an error.
  'set-cookie',
  'location',
  'refresh',
]);

/**
 * The generic body of an error response: a 503 is the body of a `SessionStoreError`; for GraphQL, a
 * GraphQL response with one error and its code, or for a batch, a list of them, one per operation
 * (as batching clients expect a list).
 */
function errorBody(status: number, saver: { readonly graphql?: boolean; graphqlBatch?(): number | undefined }): string {
  const unavailable = status === (HttpStatus.SERVICE_UNAVAILABLE as number);
  if (saver.graphql !== true) return JSON.stringify(unavailable ? storeUnavailableBody() : { statusCode: status, message: 'Internal Server Error' });
  const [message, code] = unavailable ? [CLIENT_STORE_MESSAGE, STORE_UNAVAILABLE_CODE] : ['Internal Server Error', 'INTERNAL_SERVER_ERROR'];
  const one = { errors: [{ message, extensions: { code } }] };
  const batch = saver.graphqlBatch?.();
  return JSON.stringify(batch === undefined ? one : Array.from({ length: batch }, () => one));
}

/**
 * Sends `status` with a generic JSON body through the response's own `writeHead` and `end` (those
 * before the gate): the headers the head was to carry (`headers`, as Fastify passes its own to
 * `writeHead`) are kept, but for those describing the body the handler meant to send.
 */
export function sendErrorResponse(
  res: ServerResponse,
  status: number,
  headers: unknown,
  saver: { readonly graphql?: boolean; graphqlBatch?(): number | undefined },
  writeHead: ServerResponse['writeHead'],
  end: ServerResponse['end'],
): void {
  if (headers !== null && typeof headers === 'object' && !Array.isArray(headers)) {
    for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
      if (value !== undefined && !BODY_HEADERS.has(name.toLowerCase())) res.setHeader(name, value);
    }
  }
  for (const name of res.getHeaderNames()) if (BODY_HEADERS.has(name)) res.removeHeader(name);
  const body = errorBody(status, saver);
  res.statusCode = status;
  writeHead.call(res, status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  (end as (chunk: string) => ServerResponse).call(res, body);
}

/** Adds the cookies to the headers set so far, and makes the response private to the browser. */
export function setOnResponse(res: ServerResponse, cookies: string[]): void {
  res.setHeader('set-cookie', [...toList(res.getHeader('set-cookie')), ...cookies]);
  const cacheControl = privateCacheControl(res.getHeader('cache-control'));
  if (cacheControl !== undefined) res.setHeader('cache-control', cacheControl);
}

export function mergeIntoObject(res: ServerResponse, headers: OutgoingHttpHeaders, cookies: string[]): void {
  let cookieKey: string | undefined;
  let cacheKey: string | undefined;
  for (const key of Object.keys(headers)) {
    const lower = key.toLowerCase();
    if (lower === 'set-cookie') cookieKey = key;
    else if (lower === 'cache-control') cacheKey = key;
  }
  if (cookieKey === undefined) headers['set-cookie'] = [...toList(res.getHeader('set-cookie')), ...cookies];
  else headers[cookieKey] = [...toList(headers[cookieKey]), ...cookies];
  const cacheControl = privateCacheControl(cacheKey === undefined ? res.getHeader('cache-control') : headers[cacheKey]);
  if (cacheControl !== undefined) headers[cacheKey ?? 'cache-control'] = cacheControl;
}

export function mergeIntoArray(res: ServerResponse, headers: unknown[], cookies: string[]): void {
  // Node accepts [name, value, name, value, ...] and sets each pair in turn, so a second `set-cookie`
  // pair would replace the first: every cookie goes into one pair, after those the head already had
  // (or, when it had none, those set on the response before, which a `set-cookie` pair replaces).
  const step = Array.isArray(headers[0]) ? 1 : 2;
  const nameAt = (i: number) => String(step === 1 ? (headers[i] as unknown[])[0] : headers[i]).toLowerCase();
  const valueAt = (i: number) => (step === 1 ? (headers[i] as unknown[])[1] : headers[i + 1]);
  let own: string[] | undefined;
  for (let i = headers.length - step; i >= 0; i -= step) {
    if (nameAt(i) !== 'set-cookie') continue;
    own = [...toList(valueAt(i)), ...(own ?? [])];
    headers.splice(i, step);
  }
  const pairs: [string, string | string[]][] = [['set-cookie', [...(own ?? toList(res.getHeader('set-cookie'))), ...cookies]]];
  let cacheAt = -1;
  for (let i = 0; i < headers.length; i += step) if (nameAt(i) === 'cache-control') cacheAt = i;
  const cacheControl = privateCacheControl(cacheAt >= 0 ? valueAt(cacheAt) : res.getHeader('cache-control'));
  if (cacheControl !== undefined) {
    if (cacheAt < 0) pairs.push(['cache-control', cacheControl]);
    else if (step === 1) (headers[cacheAt] as unknown[])[1] = cacheControl;
    else headers[cacheAt + 1] = cacheControl;
  }
  for (const pair of pairs) {
    if (step === 1) headers.push(pair);
    else headers.push(pair[0], pair[1]);
  }
}

/**
 * The Cache-Control a response carrying a session cookie must have, or undefined to keep its own:
 * `private` (or `no-store`) always, so no shared cache hands one visitor's session to the next;
 * `public` and `s-maxage` give way.
 */
function privateCacheControl(value: unknown): string | undefined {
  if (value === undefined || value === null) return 'private';
  // Directives split at commas outside quoted strings (`private="set-cookie"` is a field list).
  const directives = toList(value).join(', ').match(/(?:[^,"]|"[^"]*")+/g) ?? [];
  const kept: string[] = [];
  for (const each of directives) {
    const directive = each.trim();
    const name = directive.split('=', 1)[0].trim().toLowerCase();
    if ((name === 'private' && !directive.includes('=')) || name === 'no-store') return undefined;
    if (directive !== '' && name !== 'public' && name !== 's-maxage') kept.push(directive);
  }
  return ['private', ...kept].join(', ');
}

function toList(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value.map((entry) => `${entry as string}`) : [`${value as string}`];
}
