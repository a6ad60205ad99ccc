/** What users put into sessions, at its most awkward: shared by the server and the client suites. */

export type Entries = readonly (readonly [string, unknown])[];

export const JSON_VALUES: Entries = [
  ['null', null], ['true', true], ['false', false], ['zero', 0], ['negative', -42], ['float', -0.125],
  ['pi', Math.PI], ['maxSafe', Number.MAX_SAFE_INTEGER], ['tiny', 5e-324], ['huge', 1e21], ['emptyString', ''],
  ['escapes', 'quote " backslash \\ newline \n tab \t'], ['emptyArray', []], ['emptyObject', {}],
  ['nested', { a: [1, { b: null, c: [true, false] }], d: { e: { f: 'deep' } } }],
  ['mixed', [null, 1, 'two', { three: 3 }, [4, [5]]]],
];

export const AWKWARD_VALUES: Entries = [['nul', 'a\u0000b'], ['lone', 'x\ud83dy'], ['both', ['\u0000', '\udc00']], ['nested', { 'k\u0000': '\ud800' }]];

/**
 * Keys a UTF-8 or JSON back-end cannot hold as they are (NUL, lone surrogates), and keys that look
 * like an encoded key: a store that encodes keys must keep all of them apart.
 */
export const AWKWARD_KEYS: readonly string[] = [
  'a\u0000b', '\u0000', 'x\ud83dy', '\udc00', '\ud83d', 'a\u0000',
  '\u0001', '\u0001"a\\u0000"', '\u0001not json', '\\u0000', 'plain',
];

export const UNICODE: Entries = [
  ['😀 emoji', '🎉 party 👩‍👩‍👧 family'], ['مفتاح', 'مرحبا بالعالم'], ['𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝌆 astral 𠜎'],
  ['ключ', { 'вложенный': 'значение' }], ['e\u0301', 'combining é'], ['中文', ['汉字', '\u202eright-to-left override']],
];

/** Keys that name parts of Object.prototype, with values that would pollute it if merged naively. */
export const HOSTILE_KEYS: Entries = [
  ['__proto__', { polluted: true }], ['constructor', { prototype: { polluted: true } }], ['prototype', { polluted: true }],
  ['hasOwnProperty', 'not a function'], ['toString', 1], ['valueOf', { polluted: true }], ['plain', 'ok'],
];

/** Flash lists under hostile keys, their messages holding own `__proto__` keys (as JSON.parse makes them). */
export function hostileFlash(): Record<string, unknown[]> {
  return JSON.parse(
    '{"__proto__":[{"polluted":true},{"__proto__":{"polluted":true}}],"constructor":[{"prototype":{"polluted":true}}],"toString":["x"],"plain":["ok"]}',
  ) as Record<string, unknown[]>;
}

/** Flash messages a request might echo from user input. */
export const AWKWARD_MESSAGES: readonly unknown[] = ['a\u0000b', 'x\ud83dy', '\udc00', { 'k\u0000': '\ud800', text: 'été' }, ['\u0000']];
