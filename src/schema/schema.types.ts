import type { Session } from '../nest/session.decorators.js';
import type { StandardSchemaV1 } from './standard-schema.js';

/**
 * The session data a schema describes: its input type, what is validated and stored (the schema's
 * output, transforms and defaults, is never used): `interface SessionData extends SessionDataOf<typeof schema> {}`.
 */
export type SessionDataOf<S extends StandardSchemaV1> = StandardSchemaV1.InferInput<S>;

/** The session a schema describes: `@Session() session: SessionOf<typeof schema>`. */
export type SessionOf<S extends StandardSchemaV1> = Session<SessionDataOf<S>>;
