import { Logger } from '@nestjs/common';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { SessionConfigError, SessionValidationError } from '../../src/index.js';
import type { StandardSchemaV1 } from '../../src/schema/standard-schema.js';
import { shapeMessage } from '../../src/schema/session-schema.js';
import { resolveSessions, type SessionDefinition } from '../../src/session/session-definition.js';
import { SessionState, type SessionHost } from '../../src/session/session.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';

/** The default session's definition with `schema`. */
function definition(schema: unknown): SessionDefinition {
  return resolveSessions({ secret: SECRET, schema: schema as StandardSchemaV1 }).definitions.get('default')!;
}

/** A host for a server-side session: no size checks; saving is not what these tests are about. */
const host: SessionHost = {
  destroyStored: () => Promise.resolve(),
  saveNow: () => Promise.resolve(),
  checkSize: () => undefined,
};

function stored(def: SessionDefinition, data: Record<string, unknown>): SessionState {
  const texts = Object.fromEntries(Object.entries(data).map(([key, value]) => [key, JSON.stringify(value)]));
  return new SessionState(def, host, 'id', { data: texts, meta: { createdAt: Date.now() }, expiresAt: Date.now() + 60_000 });
}

function refusal(change: () => void): SessionValidationError {
  try {
    change();
  } catch (error) {
    if (error instanceof SessionValidationError) return error;
    throw error;
  }
  throw new Error('the change was accepted');
}

/** A hand-made Standard Schema: one issue per key whose value is not a number. */
const numbersOnly: StandardSchemaV1 = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate(value) {
      const issues = Object.entries(value as Record<string, unknown>)
        .filter(([, each]) => typeof each !== 'number')
        .map(([key]) => ({ message: 'must be a number', path: [key] }));
      return issues.length > 0 ? { issues } : { value };
    },
  },
};

beforeEach(() => {
  // Refused changes are logged where they are thrown.
  vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('the schema option', () => {
  it('refuses at startup what is no Standard Schema v1, naming the option', () => {
    expect(() => definition({ parse: () => 1 })).toThrow(SessionConfigError);
    expect(() => definition({ parse: () => 1 })).toThrow(/^schema must be a Standard Schema/);
    expect(() => definition(null)).toThrow(/^schema must be a Standard Schema/);
    expect(() => definition({ '~standard': { version: 2, vendor: 'x', validate: () => ({ value: 1 }) } })).toThrow(/^schema: Standard Schema version 2 is not supported/);
    expect(() => resolveSessions({ secret: SECRET, sessions: { prefs: { schema: 42 as never } } })).toThrow(/^sessions\.prefs\.schema must be a Standard Schema/);
  });

  it('is not inherited by named sessions', () => {
    const resolved = resolveSessions({ secret: SECRET, schema: numbersOnly, sessions: { prefs: {} } });
    expect(resolved.definitions.get('default')!.schema).toBeDefined();
    expect(resolved.definitions.get('prefs')!.schema).toBeUndefined();
  });
});

describe('set() and delete() with a schema', () => {
  const range = z.object({ min: z.number().optional(), max: z.number().optional() }).refine((d) => d.min === undefined || d.max === undefined || d.min <= d.max, 'min must not exceed max');

  it('refuses a change that breaks a rule on the whole data, naming the key changed', () => {
    const session = stored(definition(range), { max: 3 });
    const error = refusal(() => session.set('min', 5));
    expect(error.path).toBe('min');
    expect(error.message).toContain('min must not exceed max');
    expect(session.toJSON()).toEqual({ max: 3 });
    session.set('max', 10);
    session.set('min', 5);
    expect(session.toJSON()).toEqual({ max: 10, min: 5 });
  });

  it('lets required keys be set one by one; the whole must match when saved', () => {
    const def = definition(z.object({ a: z.number(), b: z.number() }));
    const session = new SessionState(def, host);
    session.set('a', 1);
    expect(refusal(() => session.set('b', 'two')).path).toBe('b');
    const changes = session.changes()!;
    const error = refusal(() => void def.schema!.checkSave(session.dataAfter(changes)));
    expect(error.path).toBe('b');
    session.set('b', 2);
    expect(def.schema!.checkSave(session.dataAfter(session.changes()!))).toBeUndefined();
    // Empty data always passes: what every new session starts as.
    session.clear();
    expect(def.schema!.checkSave(session.dataAfter(session.changes()!))).toBeUndefined();
  });

  it('refuses a wrong value for a required key not set yet, even when its message is the one the missing key had', () => {
    // A custom message is the same whether the key is missing or has a value of the wrong type.
    const def = definition(z.object({ userId: z.number({ message: 'userId is required' }), theme: z.string().optional() }));
    const session = new SessionState(def, host);
    session.set('theme', 'dark'); // the data now has its issue: userId missing
    const error = refusal(() => session.set('userId', 'alice'));
    expect(error.path).toBe('userId');
    expect(session.toJSON()).toEqual({ theme: 'dark' });
    session.set('userId', 7);
    expect(session.toJSON()).toEqual({ theme: 'dark', userId: 7 });
  });

  it('checks the value as it will read back (after JSON), so a value JSON changes is refused at once', () => {
    const session = new SessionState(definition(z.object({ at: z.date().optional() })), host);
    expect(refusal(() => session.set('at', new Date())).path).toBe('at');
  });

  it('a schema that answers with a promise: set() cannot wait, the save does', async () => {
    const def = definition(z.object({ n: z.number().refine(async (n) => n > 0, 'must be positive') }));
    const session = new SessionState(def, host);
    session.set('n', -1);
    await expect(def.schema!.checkSave(session.dataAfter(session.changes()!))).rejects.toMatchObject({ name: 'SessionValidationError', path: 'n' });
    session.set('n', 1);
    await expect(def.schema!.checkSave(session.dataAfter(session.changes()!))).resolves.toBeUndefined();
  });

  it('a schema that throws refuses the change (the error as the cause) and reads no stored session', () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const broken = new Error('broken schema');
    const def = definition({ '~standard': { version: 1, vendor: 'x', validate: () => { throw broken; } } });
    const error = refusal(() => new SessionState(def, host).set('k', 1));
    expect(error.cause).toBe(broken);
    expect(def.schema!.acceptStored({ k: '1' })).toBe(false);
  });
});

describe('a schema whose answer is malformed', () => {
  it('reads a stored session as none, and refuses the save, rather than throwing a TypeError', () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    for (const issues of [[null], [42], [{ message: 'bad', path: 5 }], [{ message: 'bad', path: [null] }]]) {
      const def = definition({ '~standard': { version: 1, vendor: 'x', validate: () => ({ issues }) } });
      expect(def.schema!.acceptStored({ k: '1' })).toBe(false);
      expect(() => def.schema!.checkSave({ k: '1' })).toThrow(SessionValidationError);
    }
  });
});

describe('a stored session that does not match', () => {
  it('is logged once per cause, remembering a bounded number of causes', () => {
    const warnings: string[] = [];
    vi.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => void warnings.push(String(message)));
    const schema = definition(numbersOnly).schema!;
    for (let i = 0; i < 150; i++) expect(schema.acceptStored({ [`key${i}`]: '"x"' })).toBe(false);
    expect(warnings).toHaveLength(150);
    // The last 100 are remembered; the first were forgotten and are logged again.
    expect(schema.acceptStored({ key149: '"y"' })).toBe(false);
    expect(schema.acceptStored({ key50: '"y"' })).toBe(false);
    expect(warnings).toHaveLength(150);
    expect(schema.acceptStored({ key0: '"y"' })).toBe(false);
    expect(warnings).toHaveLength(151);
    // Array indexes make one cause; keys that are not identifiers are not shown.
    const items = definition(z.object({ items: z.array(z.number()) })).schema!;
    expect(items.acceptStored({ items: '[1, "a"]' })).toBe(false);
    expect(items.acceptStored({ items: '["b", 2, 3]' })).toBe(false);
    expect(warnings.slice(151)).toEqual([expect.stringContaining('at items[]: Invalid input: expected number, received string')]);
    const records = definition(z.record(z.string(), z.number())).schema!;
    expect(records.acceptStored({ 'alice@example.com': '"x"' })).toBe(false);
    expect(warnings.at(-1)).toContain('at [*]:');
    expect(warnings.at(-1)).not.toContain('alice');
  });

  it('reads with hidden keys (starting with NUL) left out of what the schema sees', () => {
    const schema = definition(z.strictObject({ n: z.number() })).schema!;
    expect(schema.acceptStored({ n: '1', '\u0000csrf': '"secret"' })).not.toBe(false);
    expect(schema.acceptStored({ '\u0000csrf': '"secret"' })).toBeUndefined();
  });
});

describe('shapeMessage', () => {
  it('keeps the words of a message and drops the values it quotes', () => {
    expect(shapeMessage('Invalid type: Expected number but received "card-4111-1111"')).toBe('Invalid type: Expected number but received "…"');
    expect(shapeMessage('userId must be an integer (was 1.5)')).toBe('userId must be an integer (was #)');
    expect(shapeMessage('Invalid type: Expected string but received true')).toBe('Invalid type: Expected string but received …');
    expect(shapeMessage('theme must be "dark" or "light" (was "a \\" quote")')).toBe('theme must be "…" or "…" (was "…")');
    expect(shapeMessage('line\nforged "unterminated')).toBe('line forged "…"');
    expect(shapeMessage(undefined)).toBe('invalid');
  });
});
