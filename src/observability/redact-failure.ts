/**
 * What of a driver's error may be shown to whoever reads a health endpoint (often public, or kept in
 * a load balancer's log): URLs (which may hold a password), addresses, host names, paths and quoted
 * user, role and database names are replaced, and the message is cut short.
 */
const REDACTIONS: readonly [RegExp, string][] = [
  [/\b[a-z][a-z0-9+.-]*:\/\/\S+/gi, '<url>'],
  [/\b(ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL)\s+[^\s,;)]+/g, '$1 <host>'],
  [/\[[0-9a-f:.]+(?:%[\w.-]+)?\](?::\d+)?/gi, '<address>'],
  [/\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b/g, '<address>'],
  [/(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?::\d+)?(?![\w:])/gi, '<address>'],
  [/\b[a-z0-9][a-z0-9.-]*:\d{1,5}\b/gi, '<address>'],
  [/\b(user|role|database|host)\s+("[^"]*"|'[^']*')/gi, '$1 <name>'],
  [/(^|\s)\/[^\s,;)]+/g, '$1<path>'],
];
const MAX_MESSAGE = 200;

/** `message` without what could locate or open the back-end. */
export function redactFailure(message: string): string {
  let safe = message;
  for (const [pattern, replacement] of REDACTIONS) safe = safe.replace(pattern, replacement);
  return safe.length > MAX_MESSAGE ? `${safe.slice(0, MAX_MESSAGE - 1)}…` : safe;
}
