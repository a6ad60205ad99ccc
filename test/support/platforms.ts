import type { INestApplication, Type } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import fastifyCookie from '@fastify/cookie';
import cookieParser from 'cookie-parser';
import request from 'supertest';
import type { Server } from 'node:http';

export interface TestApp {
  app: INestApplication;
  server: Server;
  http: () => ReturnType<typeof request>;
  close: () => Promise<void>;
}

export interface Platform {
  /** express, express+cookie-parser, fastify, fastify+@fastify/cookie */
  name: string;
  kind: 'express' | 'fastify';
  create(module: Type<unknown>, options?: { trustProxy?: boolean }): Promise<TestApp>;
}

async function finish(app: INestApplication, kind: 'express' | 'fastify'): Promise<TestApp> {
  await app.init();
  if (kind === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  const server = app.getHttpServer() as Server;
  return { app, server, http: () => request(server), close: () => app.close() };
}

function express(withCookieParser: boolean): Platform {
  return {
    name: withCookieParser ? 'express+cookie-parser' : 'express',
    kind: 'express',
    async create(module, options = {}) {
      const ref = await Test.createTestingModule({ imports: [module] }).compile();
      const app = ref.createNestApplication(new ExpressAdapter(), { logger: false });
      if (options.trustProxy) (app.getHttpAdapter().getInstance() as { set(k: string, v: unknown): void }).set('trust proxy', true);
      if (withCookieParser) app.use(cookieParser());
      return finish(app, 'express');
    },
  };
}

function fastify(withCookiePlugin: boolean): Platform {
  return {
    name: withCookiePlugin ? 'fastify+@fastify/cookie' : 'fastify',
    kind: 'fastify',
    async create(module, options = {}) {
      const ref = await Test.createTestingModule({ imports: [module] }).compile();
      const app = ref.createNestApplication<NestFastifyApplication>(new FastifyAdapter({ trustProxy: options.trustProxy === true }), { logger: false });
      if (withCookiePlugin) await app.register(fastifyCookie as never);
      return finish(app, 'fastify');
    },
  };
}

/** Every e2e case runs on each of these. */
export const platforms: Platform[] = [express(false), express(true), fastify(false), fastify(true)];
