// The GraphQL app of graphql.e2e.test.ts, in a file of its own so that the test can skip it (and
// never load @nestjs/graphql) on a NestJS line its installed version does not support.
import { BadRequestException, ForbiddenException, Injectable, Module, UseGuards, type CanActivate, type ExecutionContext, type Type } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, Context, Field, GraphQLModule, Int, Mutation, ObjectType, Query, ResolveField, Resolver } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import type { ServerResponse } from 'node:http';
import { Flash, Session, SessionModule, SessionService, UseSession } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { SECRET } from './app.fixture.js';

@ObjectType()
export class Viewer {
  @Field(() => String)
  name!: string;
}

/** Lets signed-in visitors through, reading the session with SessionService.load(context). */
@Injectable()
export class SignedInGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    if (session.get('userId') === undefined) throw new ForbiddenException('sign in first');
    session.set('guarded', ((session.get('guarded') as number | undefined) ?? 0) + 1);
    return true;
  }
}

/** What resolvers still running after their response was sent did, in order: for the test to wait on. */
export const afterResponse: string[] = [];

/** Resolves once the HTTP response of this GraphQL context has gone out (Apollo: `req.res`; Mercurius: `reply.raw`). */
function responseSent(context: { req?: { res?: ServerResponse }; reply?: { raw: ServerResponse } }): Promise<void> {
  const res = context.reply?.raw ?? context.req!.res!;
  return res.writableFinished ? Promise.resolve() : new Promise((resolve) => res.once('finish', () => resolve()));
}

@Resolver()
export class SessionResolver {
  constructor(private readonly sessions: SessionService) {}

  @Query(() => Int, { nullable: true })
  userId(@Session() session: Session) {
    return session.get('userId') ?? null;
  }

  /** Non-null: a load that fails leaves the whole `data` null. */
  @Query(() => Int)
  visits(@Session() session: Session) {
    return session.get('visits') ?? 0;
  }

  @Query(() => String, { nullable: true })
  lateValue(@Session() session: Session) {
    return session.get('late') ?? null;
  }

  @Query(() => [String])
  messages(@Flash() flash: Flash) {
    return flash.get('info');
  }

  /** Asks for no session: its field resolvers do. */
  @Query(() => Viewer)
  viewer(): Viewer {
    return { name: 'viewer' };
  }

  /** SessionService.load() given the Express request itself (Apollo on Express). */
  @Query(() => String, { nullable: true })
  async fromRequest(@Context('req') req: object) {
    const session = await this.sessions.load(req);
    return session.isNew ? null : session.id;
  }

  /** SessionService.load() given the Express request, changing the session (Apollo on Express). */
  @Mutation(() => Int)
  async incrementFromRequest(@Context('req') req: object) {
    return this.increment(await this.sessions.load(req));
  }

  /** SessionService.load() given the GraphQL context object. */
  @Query(() => String, { nullable: true })
  async fromContext(@Context() context: object) {
    const session = await this.sessions.load(context);
    return session.isNew ? null : session.id;
  }

  /** SessionService.current(), through @UseSession(). */
  @Query(() => Int, { nullable: true })
  @UseSession()
  whoAmI() {
    return this.sessions.current()?.get('userId') ?? null;
  }

  @Query(() => Int)
  @UseGuards(SignedInGuard)
  guarded(@Session() session: Session) {
    return session.get('guarded') as number;
  }

  @Mutation(() => Boolean)
  async login(@Session() session: Session, @Flash() flash: Flash, @Args('userId', { type: () => Int }) userId: number) {
    await session.regenerate();
    session.set('userId', userId);
    flash.add('info', `Welcome ${userId}`);
    return true;
  }

  @Mutation(() => Boolean)
  async logout(@Session() session: Session) {
    await session.destroy();
    return true;
  }

  @Mutation(() => Int)
  increment(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return visits;
  }

  /** Nullable: a field that fails leaves the next mutations of the document running. */
  @Mutation(() => Int, { nullable: true })
  bump(@Session() session: Session) {
    return this.increment(session);
  }

  /** Non-null and failing at once: graphql-js answers (data: null) while its sibling fields still run. */
  @Query(() => Int)
  boom(): number {
    throw new BadRequestException('boom');
  }

  /** Changes the session once the response has gone out (run beside `boom`). */
  @Query(() => Int, { nullable: true })
  async lateSet(@Session() session: Session, @Flash() flash: Flash, @Context() context: object) {
    await responseSent(context);
    session.set('late', 'saved');
    flash.add('info', 'added late');
    afterResponse.push('set');
    return 1;
  }

  /** regenerate() or destroy() once the response has gone out (run beside `boom`). */
  @Query(() => Int, { nullable: true })
  async lateEnd(@Session() session: Session, @Context() context: object, @Args('how', { type: () => String }) how: string) {
    await responseSent(context);
    try {
      await (how === 'regenerate' ? session.regenerate() : session.destroy());
      afterResponse.push(`${how}: done`);
    } catch (error) {
      afterResponse.push(`${how}: ${(error as Error).name}: ${(error as Error).message}`);
    }
    return 1;
  }

  @Mutation(() => Boolean)
  failing(@Session() session: Session, @Flash() flash: Flash) {
    session.set('visits', 99);
    flash.add('info', 'set before the error');
    throw new BadRequestException('the resolver failed');
  }
}

@Resolver(() => Viewer)
export class ViewerResolver {
  /** Nest runs field resolvers without guards (no `fieldResolverEnhancers`): the parameter loads. */
  @ResolveField(() => Int, { nullable: true })
  userId(@Session() session: Session) {
    return session.get('userId') ?? null;
  }
}

const resolvers = [SessionResolver, ViewerResolver, SignedInGuard];

/**
 * Apollo on Express (@nestjs/apollo), with its default context: `{ req }`, batches allowed. `options`: e.g. the two
 * that let a store failure through as it is (HTTP 503, `extensions.code`).
 */
export function apolloModule(store: SessionStore, options: Partial<ApolloDriverConfig> = {}): Type<unknown> {
  @Module({
    imports: [
      SessionModule.forRoot({ secret: SECRET, store }),
      GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, graphiql: false, allowBatchedHttpRequests: true, ...options }),
    ],
    providers: resolvers,
  })
  class ApolloAppModule {}
  return ApolloAppModule;
}

/** Mercurius on Fastify (@nestjs/mercurius), with its default context: `{ req, reply, app }`, batches allowed. */
export function mercuriusModule(store: SessionStore): Type<unknown> {
  @Module({
    imports: [
      SessionModule.forRoot({ secret: SECRET, store }),
      GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, autoSchemaFile: true, graphiql: false, allowBatchedQueries: true }),
    ],
    providers: resolvers,
  })
  class MercuriusAppModule {}
  return MercuriusAppModule;
}
