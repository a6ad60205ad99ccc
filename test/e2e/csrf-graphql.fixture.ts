// The GraphQL apps of csrf-graphql.e2e.test.ts, in a file of its own so that the test can skip it
// (and never load @nestjs/graphql) on a NestJS line its installed version does not support.
import { Module, UseGuards, type Type } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, GraphQLModule, Int, Mutation, Query, Resolver } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { CsrfGuard, CsrfToken, Session, SessionModule } from '../../src/index.js';
import { SECRET } from './app.fixture.js';

@Resolver()
export class BankResolver {
  /** How a GraphQL client gets a token: a query, with the header carrier for its mutations. */
  @Query(() => String)
  csrfToken(@CsrfToken() token: string) {
    return token;
  }

  /** Guarded, but a query: it passes without a token, whatever the HTTP method. */
  @Query(() => Int)
  @UseGuards(CsrfGuard)
  balance(@Session() session: Session) {
    return (session.get('balance') as number | undefined) ?? 0;
  }

  /** A sign-in: its new session holds no CSRF secret of the old one's. */
  @Mutation(() => Boolean)
  @UseGuards(CsrfGuard)
  async signIn(@Session() session: Session) {
    await session.regenerate();
    session.set('user', 1);
    return true;
  }

  @Mutation(() => Int)
  @UseGuards(CsrfGuard)
  deposit(@Session() session: Session, @Args('amount', { type: () => Int }) amount: number) {
    const balance = ((session.get('balance') as number | undefined) ?? 0) + amount;
    session.set('balance', balance);
    return balance;
  }
}

/** The same resolver with the guard bound app-wide instead (APP_GUARD). */
@Resolver()
export class NoteResolver {
  @Query(() => Int)
  notes(@Session() session: Session) {
    return (session.get('notes') as number | undefined) ?? 0;
  }

  @Mutation(() => Int)
  note(@Session() session: Session) {
    const notes = ((session.get('notes') as number | undefined) ?? 0) + 1;
    session.set('notes', notes);
    return notes;
  }
}

/**
 * The session options of both apps: the readable-cookie mode (`x-xsrf-token` accepted too). Both
 * drivers take batched requests and run mutations sent over a WebSocket (graphql-ws), where a
 * mutation has no HTTP request to show a token.
 */
const sessions = () => SessionModule.forRoot({ secret: SECRET, csrf: { cookie: true } });

export function apolloCsrfModule(global: boolean): Type<unknown> {
  @Module({
    imports: [
      sessions(),
      GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, graphiql: false, allowBatchedHttpRequests: true, subscriptions: { 'graphql-ws': true } }),
    ],
    providers: [BankResolver, NoteResolver, ...(global ? [{ provide: APP_GUARD, useClass: CsrfGuard }] : [])],
  })
  class ApolloCsrfModule {}
  return ApolloCsrfModule;
}

export function mercuriusCsrfModule(global: boolean): Type<unknown> {
  @Module({
    imports: [
      sessions(),
      GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, autoSchemaFile: true, graphiql: false, allowBatchedQueries: true, subscription: { fullWsTransport: true } }),
    ],
    providers: [BankResolver, NoteResolver, ...(global ? [{ provide: APP_GUARD, useClass: CsrfGuard }] : [])],
  })
  class MercuriusCsrfModule {}
  return MercuriusCsrfModule;
}
