import { parse } from 'cookie';

export interface ParsedSetCookie {
  name: string;
  value: string;
  attributes: Record<string, string | true>;
  raw: string;
}

/** The Set-Cookie headers of a response, parsed. */
export function setCookies(headers: Record<string, unknown>): ParsedSetCookie[] {
  const header = headers['set-cookie'];
  const list = header === undefined ? [] : Array.isArray(header) ? (header as string[]) : [header as string];
  return list.map((raw) => {
    const [pair, ...rest] = raw.split(';');
    const eq = pair.indexOf('=');
    const attributes: Record<string, string | true> = {};
    for (const part of rest) {
      const [key, ...value] = part.trim().split('=');
      attributes[key.toLowerCase()] = value.length === 0 ? true : value.join('=');
    }
    return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), attributes, raw };
  });
}

/** A browser-like cookie jar for tests over plain HTTP (it keeps Secure cookies too, like Chromium on localhost). */
export class CookieJar {
  private readonly cookies = new Map<string, string>();

  /** Takes the Set-Cookie headers of a response; returns them parsed. */
  take(response: { headers: Record<string, unknown> }): ParsedSetCookie[] {
    const parsed = setCookies(response.headers);
    for (const cookie of parsed) {
      const expires = cookie.attributes.expires;
      const gone = cookie.attributes['max-age'] === '0' || (typeof expires === 'string' && Date.parse(expires) <= Date.now());
      if (gone) this.cookies.delete(cookie.name);
      else this.cookies.set(cookie.name, cookie.value);
    }
    return parsed;
  }

  get(name: string): string | undefined {
    return this.cookies.get(name);
  }

  set(name: string, value: string): void {
    this.cookies.set(name, value);
  }

  delete(name: string): void {
    this.cookies.delete(name);
  }

  /** The Cookie request header. */
  header(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  static parse(header: string): Record<string, string | undefined> {
    return parse(header);
  }
}
