// Builds the Fastify app; never listens (main.ts and the tests do).
import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { MAX_IMAGES_PER_REQUEST, NAMED_SCHEMAS } from '../contracts/schemas.js';
import { ServiceError } from '../errors.js';
import { authPlugin } from './plugins/auth.js';
import { charsetPlugin } from './plugins/charset.js';
import { errorsPlugin, sendProblem } from './plugins/errors.js';
import { metricsPlugin } from './plugins/metrics.js';
import { swaggerPlugin } from './plugins/swagger.js';
import { installValidators } from './plugins/validation.js';
import { RequestLogs } from './request-logs.js';
import { clipRoutes } from './routes/clip.js';
import { addOpenAISchemas, openAIRoutes } from './openai/index.js';
import { fileRoutes } from './routes/files.js';
import { generationRoutes } from './routes/generations.js';
import { playgroundRoutes } from './routes/playground.js';
import { systemRoutes } from './routes/system.js';
import { usageRoutes } from './routes/usage.js';
import type { Services } from './services.js';

export interface AppOptions {
  services: Services;
  logger: FastifyBaseLogger;
}

/** What a page on an allowed origin may send and read: the headers the API takes and gives. */
function corsOptions(origins: readonly string[]) {
  return {
    origin: origins.includes('*') ? '*' : [...origins],
    methods: ['GET', 'POST', 'DELETE'],
    allowedHeaders: ['authorization', 'x-api-key', 'content-type', 'idempotency-key', 'last-event-id'],
    exposedHeaders: [
      'location',
      'retry-after',
      'x-request-id',
      'idempotent-replayed',
      'ratelimit-limit',
      'ratelimit-remaining',
      'ratelimit-reset',
    ],
    maxAge: 600,
  };
}

export async function buildApp({ services, logger }: AppOptions): Promise<FastifyInstance> {
  const { config } = services;
  const app = Fastify({
    loggerInstance: logger,
    logController: new RequestLogs(),
    bodyLimit: config.bodyLimitBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    return503OnClosing: true,
    // A path the router cannot take apart (bad escapes, an over-long id) names nothing: 404.
    frameworkErrors: (error, request, reply) => {
      sendProblem(reply, request, new ServiceError('not_found', `no such resource (${error.code})`));
    },
  });
  // JSON bodies only (and multipart where a route says so): text is a 415, not a string body.
  app.removeContentTypeParser('text/plain');
  installValidators(app);
  for (const schema of NAMED_SCHEMAS) app.addSchema(schema);
  addOpenAISchemas(app);
  await app.register(errorsPlugin);
  await app.register(charsetPlugin);
  await app.register(swaggerPlugin, { publicBaseUrl: config.publicBaseUrl });
  await app.register(metricsPlugin, { queues: services.queues });
  // Before auth: a browser's preflight carries no key and is answered here.
  if (config.corsOrigins.length > 0) await app.register(cors, corsOptions(config.corsOrigins));
  await app.register(authPlugin, {
    keyStore: services.keyStore,
    limiter: services.generations.limiter,
    queues: services.queues,
  });
  await app.register(multipart, {
    limits: {
      fileSize: config.imageMaxBytes,
      files: MAX_IMAGES_PER_REQUEST,
      fields: 2100,
      fieldSize: 64 * 1024,
      parts: 2200,
    },
    throwFileSizeLimit: true,
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('X-Request-Id', request.id);
  });
  await app.register(generationRoutes, services);
  await app.register(clipRoutes, services);
  await app.register(systemRoutes, services);
  await app.register(fileRoutes, services);
  await app.register(usageRoutes, services);
  await app.register(openAIRoutes, { ...services, prefix: '/v1' });
  await app.register(playgroundRoutes);
  return app;
}
