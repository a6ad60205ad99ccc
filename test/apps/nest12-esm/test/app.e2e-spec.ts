import { Test, TestingModule } from '@nestjs/testing';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { App } from 'supertest/types.js';
import { AppModule } from './../src/app.module.js';

describe('AppController (e2e)', () => {
  let app: INestApplication<App>;

  beforeEach(async () => {
    const moduleFixture: TestingModule = await Test.createTestingModule({
      imports: [AppModule],
    }).compile();

    app = moduleFixture.createNestApplication();
    await app.init();
  });

  it('/ (GET)', () => {
    return request(app.getHttpServer())
      .get('/')
      .expect(200)
      .expect('Hello World!');
  });

  it('/count (GET) keeps the session across requests', async () => {
    const agent = request.agent(app.getHttpServer());
    await agent.get('/count').expect(200).expect({ visits: 1 });
    await agent.get('/count').expect(200).expect({ visits: 2 });
    await agent.get('/count').expect(200).expect({ visits: 3 });
  });

  afterEach(async () => {
    await app.close();
  });
});
