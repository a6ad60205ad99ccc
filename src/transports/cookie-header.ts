import { parse } from 'cookie';

/**
 * The one reader of a `Cookie` header, for HTTP requests, gateway handshakes and subscription
 * upgrades alike: read from the raw header (cookie-parser and @fastify/cookie disagree on quoting,
 * and may be absent). A malformed header means no session, never an error.
 */
export function parseCookieHeader(header: string): Record<string, string | undefined> {
  try {
    return parse(header);
  } catch {
    return {};
  }
}
