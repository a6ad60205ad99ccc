import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';

const port = Number(process.env.PORT ?? 3000);
const app = await NestFactory.create<NestExpressApplication>(AppModule);
app.enableShutdownHooks(); // closes the session store on Ctrl-C or SIGTERM
await app.listen(port);
new Logger('Sample').log(`Listening on http://localhost:${port}`);
