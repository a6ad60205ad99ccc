import { type } from 'arktype';
import * as v from 'valibot';
import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import type { Session, SessionDataOf, SessionModuleOptions, SessionOf } from '../../src/index.js';

// Type-level tests: `npm run typecheck` compiles this file, and fails when a `@ts-expect-error`
// line is not an error, which it is only while the session's type comes from the schema. The
// functions below are compiled, never run: each line is what a handler would write.

const zodSchema = z.object({ userId: z.number().optional(), theme: z.enum(['light', 'dark']).optional(), visits: z.number().default(0) });
const valibotSchema = v.object({ userId: v.optional(v.number()), theme: v.optional(v.picklist(['light', 'dark'])) });
const arktypeSchema = type({ 'userId?': 'number', 'theme?': "'light' | 'dark'" });

function withZod(session: SessionOf<typeof zodSchema>) {
  expectTypeOf(session.get('userId')).toEqualTypeOf<number | undefined>();
  expectTypeOf(session.get('theme')).toEqualTypeOf<'light' | 'dark' | undefined>();
  expectTypeOf(session.get('visits')).toEqualTypeOf<number | undefined>();
  session.set('theme', 'dark');
  // @ts-expect-error a value of the wrong type
  session.set('userId', '42');
  // @ts-expect-error a value outside the enum
  session.set('theme', 'blue');
  // @ts-expect-error a key the schema does not have
  session.set('other', 1);
  // @ts-expect-error a key the schema does not have
  session.get('other');
}

function withValibot(session: SessionOf<typeof valibotSchema>) {
  expectTypeOf(session.get('userId')).toEqualTypeOf<number | undefined>();
  session.set('userId', 42);
  // @ts-expect-error a value of the wrong type
  session.set('userId', '42');
  // @ts-expect-error a key the schema does not have
  session.has('other');
}

function withArktype(session: SessionOf<typeof arktypeSchema>) {
  expectTypeOf(session.get('theme')).toEqualTypeOf<'light' | 'dark' | undefined>();
  session.set('theme', 'light');
  // @ts-expect-error a value of the wrong type
  session.set('userId', '42');
  // @ts-expect-error a key the schema does not have
  session.delete('other');
}

// What is validated and stored is the schema's input: a transform's output never reaches the session.
const transformed = z.object({ joinedAt: z.string().transform((text) => new Date(text)).optional() });

function withTransform(session: SessionOf<typeof transformed>) {
  expectTypeOf(session.get('joinedAt')).toEqualTypeOf<string | undefined>();
  session.set('joinedAt', new Date().toISOString());
  // @ts-expect-error the output type, which set() validates against the input and refuses
  session.set('joinedAt', new Date());
}

// The README's way to keep the plain `Session` type: an interface extending the schema's data type.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
interface AugmentedData extends SessionDataOf<typeof zodSchema> {}

function withAugmented(session: Session<AugmentedData>) {
  session.set('theme', 'dark');
  // @ts-expect-error a value outside the enum
  session.set('theme', 'blue');
}

describe('the session type a schema gives', () => {
  it("is the session of the schema's output type", () => {
    expectTypeOf(withZod).parameter(0).toEqualTypeOf<Session<{ userId?: number | undefined; theme?: 'light' | 'dark' | undefined; visits?: number | undefined }>>();
    expectTypeOf(withValibot).parameter(0).toEqualTypeOf<Session<{ userId?: number | undefined; theme?: 'light' | 'dark' | undefined }>>();
    expectTypeOf(withArktype).parameter(0).toEqualTypeOf<Session<{ userId?: number; theme?: 'light' | 'dark' }>>();
    expectTypeOf(withAugmented).parameter(0).toExtend<Session<AugmentedData>>();
    expectTypeOf(withTransform).parameter(0).toEqualTypeOf<Session<{ joinedAt?: string | undefined }>>();
    expectTypeOf<SessionDataOf<typeof valibotSchema>>().toEqualTypeOf<{ userId?: number | undefined; theme?: 'light' | 'dark' | undefined }>();
  });

  it('the schema option takes any Standard Schema, and nothing else', () => {
    expectTypeOf({ schema: zodSchema, sessions: { prefs: { schema: valibotSchema } } }).toExtend<SessionModuleOptions>();
    expectTypeOf({ schema: arktypeSchema }).toExtend<SessionModuleOptions>();
    expectTypeOf({ schema: transformed }).toExtend<SessionModuleOptions>();
    expectTypeOf({ schema: { parse: () => 1 } }).not.toExtend<SessionModuleOptions>();
  });
});
