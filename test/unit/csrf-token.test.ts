import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formToken,
  maskToken,
  MASKED_TOKEN_LENGTH,
  newCsrfSecret,
  normalPath,
  secretBytes,
  sessionToken,
  tokenMatches,
  unmaskToken,
} from '../../src/csrf/csrf-token.js';

const secret = () => secretBytes(newCsrfSecret())!;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('CSRF tokens', () => {
  it('any string, of any length or alphabet, is refused without an exception', () => {
    const key = secret();
    const valid = maskToken(sessionToken(key));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: 80, maxLength: 90 }),
          fc.string({ unit: fc.constantFrom(...ALPHABET, '=', '+', '/', '.', ' ', '\u0000'), minLength: MASKED_TOKEN_LENGTH, maxLength: MASKED_TOKEN_LENGTH }),
        ),
        (value) => {
          fc.pre(value !== valid);
          expect(tokenMatches(value, key, 'POST', '/x')).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('any value that is not a string is refused without an exception', () => {
    const key = secret();
    fc.assert(
      fc.property(fc.anything(), (value) => {
        expect(tokenMatches(value, key, 'POST', '/x')).toBe(false);
        expect(unmaskToken(value)).toBeUndefined();
      }),
    );
  });

  it('masks differently every time, and every masking verifies', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const key = Buffer.from(bytes);
        const token = sessionToken(key);
        const a = maskToken(token);
        const b = maskToken(token);
        expect(a).not.toBe(b);
        expect(a).toHaveLength(MASKED_TOKEN_LENGTH);
        expect(tokenMatches(a, key, 'POST', '/')).toBe(true);
        expect(tokenMatches(b, key, 'DELETE', '/anything')).toBe(true);
        expect(unmaskToken(a)).toEqual(token);
      }),
    );
  });

  it('a valid token with any one character changed is refused', () => {
    const key = secret();
    const valid = maskToken(sessionToken(key));
    fc.assert(
      fc.property(fc.nat(MASKED_TOKEN_LENGTH - 1), fc.constantFrom(...ALPHABET), (index, char) => {
        fc.pre(valid[index] !== char);
        const altered = valid.slice(0, index) + char + valid.slice(index + 1);
        expect(tokenMatches(altered, key, 'POST', '/x')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('a token is valid for its own secret only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
        fc.pre(Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0);
        expect(tokenMatches(maskToken(sessionToken(Buffer.from(a))), Buffer.from(b), 'POST', '/')).toBe(false);
      }),
    );
  });

  it('a per-form token is valid for its method and path only', () => {
    const key = secret();
    const path = fc.string({ maxLength: 20 }).map((tail) => `/${tail}`);
    fc.assert(
      fc.property(fc.constantFrom('POST', 'PUT', 'PATCH', 'DELETE'), path, fc.constantFrom('POST', 'PUT', 'PATCH', 'DELETE'), path, (method, to, otherMethod, otherPath) => {
        const token = maskToken(formToken(key, method, to));
        expect(tokenMatches(token, key, method.toLowerCase(), `${to}?q=1`)).toBe(true);
        const same = method === otherMethod && normalPath(to) === normalPath(otherPath);
        expect(tokenMatches(token, key, otherMethod, otherPath)).toBe(same);
      }),
    );
  });

  it('a per-form token ignores the query string and trailing slashes, and nothing else of the path', () => {
    const key = secret();
    const token = maskToken(formToken(key, 'POST', '/account/delete'));
    for (const path of ['/account/delete', '/account/delete/', '/account/delete//', '/account/delete?x=1', '/account/delete/?x=1']) {
      expect(tokenMatches(token, key, 'POST', path)).toBe(true);
    }
    for (const path of ['/', '/account', '/account/delete/x', '/account/deletex', '/Account/delete', '/account%2Fdelete', 'account/delete']) {
      expect(tokenMatches(token, key, 'POST', path)).toBe(false);
    }
    expect(tokenMatches(maskToken(formToken(key, 'POST', '/')), key, 'POST', '/?q=1')).toBe(true);
  });

  it('a secret is 32 random bytes; anything else stored under its key reads as none', () => {
    const text = newCsrfSecret();
    expect(secretBytes(text)).toHaveLength(32);
    expect(newCsrfSecret()).not.toBe(text);
    for (const bad of [undefined, null, 42, '', 'short', `${text}A`, randomBytes(32).toString('base64'), { text }]) {
      expect(secretBytes(bad)).toBeUndefined();
    }
  });
});
