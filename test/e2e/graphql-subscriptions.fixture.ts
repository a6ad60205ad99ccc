// The GraphQL apps of graphql-subscriptions.e2e.test.ts, in a file of its own so that the test can
// skip it (and never load @nestjs/graphql) on a NestJS line its installed version does not support.
import { EventEmitter, on } from 'node:events';
import { ForbiddenException, Injectable, Module, UseGuards, type CanActivate, type ExecutionContext, type Type } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, Context, Field, GraphQLModule, Int, Mutation, ObjectType, Parent, Query, ResolveField, Resolver, Subscription } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { Flash, Session, SessionModule, SessionService, UseSession } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { SECRET } from './app.fixture.js';

/** What a live "signed in as" badge shows. */
@ObjectType()
export class Badge {
  @Field(() => Int, { nullable: true })
  userId!: number | null;

  /** The session's id, for the test to look at the connections registered on it. */
  @Field(() => String, { nullable: true })
  sessionId!: string | null;

  @Field(() => [String])
  messages!: string[];
}

/** What current() saw in a subscription's iterator as its client left. */
export const closedWith: (number | null)[] = [];

/** What a query returns that has a `next()` of its own and is async iterable (a cursor): only a subscription's result is an event stream. */
@ObjectType()
export class Cursor {
  @Field(() => Int)
  position!: number;

  next!: () => number;
}

@Resolver(() => Cursor)
export class CursorResolver {
  @ResolveField(() => Int)
  following(@Parent() cursor: Cursor) {
    return cursor.next();
  }
}

/** Lets signed-in visitors through, reading the session with SessionService.load(context); changes nothing. */
@Injectable()
export class SignedInReader implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    if (session.get('userId') === undefined) throw new ForbiddenException('sign in first');
    return true;
  }
}

/** Apollo's ticks: each makes every live badge send its session again. */
export const ticks = new EventEmitter();
ticks.setMaxListeners(0);

/** Mercurius' own pubsub of a subscription (`@Context('pubsub')`): its events end when it is closed. */
interface MercuriusPubSub {
  subscribe(topic: string): Promise<AsyncIterable<unknown>>;
}

/** The ticks a subscription listens to: Mercurius' pubsub topic `TICK` where there is one (as Mercurius apps do), else `ticks`. */
async function tickSource(context: { pubsub?: MercuriusPubSub }): Promise<AsyncIterator<unknown>> {
  if (typeof context.pubsub?.subscribe === 'function') return (await context.pubsub.subscribe('TICK'))[Symbol.asyncIterator]();
  return on(ticks, 'tick');
}

/**
 * A badge now, then one per tick, read from the session. A hand-written iterator rather than an
 * async generator: its `return()` ends it at once, even while it waits for a tick.
 */
async function badges(context: object, read: () => Badge): Promise<AsyncIterableIterator<{ badge: Badge }>> {
  const source = await tickSource(context);
  let first = true;
  const iterator: AsyncIterableIterator<{ badge: Badge }> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      if (first) {
        first = false;
        return { done: false, value: { badge: read() } };
      }
      const step = await source.next();
      return step.done === true ? { done: true, value: undefined } : { done: false, value: { badge: read() } };
    },
    async return() {
      await source.return?.();
      return { done: true, value: undefined };
    },
  };
  return iterator;
}

function badgeOf(session: Session, flash?: Flash): Badge {
  return {
    userId: (session.get('userId') as number | undefined) ?? null,
    sessionId: session.isNew ? null : session.id,
    messages: flash === undefined ? [] : (flash.peek('info') as string[]),
  };
}

@Resolver()
export class LiveResolver {
  constructor(private readonly sessions: SessionService) {}

  @Query(() => Int, { nullable: true })
  userId(@Session() session: Session) {
    return session.get('userId') ?? null;
  }

  /** A query under @UseSession() whose result has a `next()` method and is async iterable. */
  @Query(() => Cursor)
  @UseSession()
  cursor(): Cursor {
    const position = (this.sessions.current()?.get('userId') as number | undefined) ?? 0;
    const cursor = { position, next: () => position + 1, [Symbol.asyncIterator]: () => cursor };
    return cursor;
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

  /** The signed-in user, through @Session() and @Flash() (peek). */
  @Subscription(() => Badge)
  badge(@Session() session: Session, @Flash() flash: Flash, @Context() context: object) {
    return badges(context, () => badgeOf(session, flash));
  }

  /** The same, through SessionService.load() given the GraphQL context. */
  @Subscription(() => Badge, { name: 'badgeFromContext', resolve: (payload: { badge: Badge }) => payload.badge })
  async badgeFromContext(@Context() context: object) {
    const session = await this.sessions.load(context);
    return badges(context, () => badgeOf(session));
  }

  /** The same, through SessionService.current(), read as each event is made (after the resolver call). */
  @Subscription(() => Badge, { name: 'currentBadge', resolve: (payload: { badge: Badge }) => payload.badge })
  @UseSession()
  currentBadge(@Context() context: object) {
    return badges(context, () => this.currentBadgeNow());
  }

  /** The same from an async generator, whose body runs only when the first event is asked for. */
  @Subscription(() => Badge, { name: 'currentTicker', resolve: (payload: { badge: Badge }) => payload.badge })
  @UseSession()
  async *currentTicker() {
    yield { badge: this.currentBadgeNow() };
    yield { badge: this.currentBadgeNow() };
  }

  /** One event, then none until the client leaves: a hand-made iterator whose `return()` records the user current() sees then. */
  @Subscription(() => Badge, { name: 'currentUntilClosed', resolve: (payload: { badge: Badge }) => payload.badge })
  @UseSession()
  currentUntilClosed() {
    let sent = false;
    const iterator: AsyncIterableIterator<{ badge: Badge }> = {
      next: () => {
        if (sent) return new Promise(() => undefined);
        sent = true;
        return Promise.resolve({ done: false, value: { badge: this.currentBadgeNow() } });
      },
      return: () => {
        closedWith.push(this.currentBadgeNow().userId);
        return Promise.resolve({ done: true, value: undefined });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  private currentBadgeNow(): Badge {
    const session = this.sessions.current();
    return session === undefined ? { userId: -1, sessionId: null, messages: ['no current session'] } : badgeOf(session);
  }

  /** Only for signed-in visitors: a guard that reads the session. */
  @Subscription(() => Badge, { name: 'guardedBadge', resolve: (payload: { badge: Badge }) => payload.badge })
  @UseGuards(SignedInReader)
  guardedBadge(@Session() session: Session, @Context() context: object) {
    return badges(context, () => badgeOf(session));
  }

  /** A change in a subscription: refused, and nothing changes. */
  @Subscription(() => Badge, { name: 'counting', resolve: (payload: { badge: Badge }) => payload.badge })
  async counting(@Session() session: Session, @Context() context: object, @Args('what', { type: () => String }) what: string) {
    if (what === 'set') session.set('visits', 1);
    else if (what === 'flash') session.flash.get('info');
    else await session.regenerate();
    return badges(context, () => badgeOf(session));
  }
}

@Resolver(() => Badge)
export class BadgeResolver {
  /** A field of what a subscription sends, resolved with each event: the parameter loads from the subscription's context. */
  @ResolveField(() => Int, { nullable: true })
  viewerId(@Session() session: Session) {
    return session.get('userId') ?? null;
  }
}

const providers = [LiveResolver, BadgeResolver, CursorResolver, SignedInReader];

/** Apollo on Express, subscriptions over graphql-ws (and batched HTTP requests): the only session-related setup is none. */
export function apolloSubscriptionsModule(store: SessionStore, context?: ApolloDriverConfig['context']): Type<unknown> {
  @Module({
    imports: [
      SessionModule.forRoot({ secret: SECRET, store }),
      GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, graphiql: false, allowBatchedHttpRequests: true, subscriptions: { 'graphql-ws': true }, context }),
    ],
    providers,
  })
  class ApolloSubscriptionsModule {}
  return ApolloSubscriptionsModule;
}

/**
 * Mercurius on Fastify, its own subscription server (graphql-ws' protocol among those it speaks),
 * which runs queries and mutations sent over the socket too (`fullWsTransport`); batched HTTP requests too.
 */
export function mercuriusSubscriptionsModule(store: SessionStore): Type<unknown> {
  @Module({
    imports: [
      SessionModule.forRoot({ secret: SECRET, store }),
      GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, autoSchemaFile: true, graphiql: false, allowBatchedQueries: true, subscription: { fullWsTransport: true } }),
    ],
    providers,
  })
  class MercuriusSubscriptionsModule {}
  return MercuriusSubscriptionsModule;
}
