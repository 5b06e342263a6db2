// Models, liveness, readiness.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Health, ModelList, Readiness, ref } from '../../contracts/schemas.js';
import { serviceKeys } from '../../service/redis-keys.js';
import { readModels } from '../../service/model-registry.js';
import type { Services } from '../services.js';
import { problemResponses } from './responses.js';

const tags = ['system'];
const READY_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref()),
  ]);
}

export async function systemRoutes(instance: FastifyInstance, { queues, config }: Services): Promise<void> {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/models', {
    schema: {
      tags,
      operationId: 'listModels',
      summary: 'Model packs the workers serve',
      response: { 200: ref(ModelList), ...problemResponses() },
    },
    handler: async () => {
      await queues.connected();
      return { data: await readModels(queues.redis, serviceKeys(config.queuePrefix)) };
    },
  });

  app.get('/healthz', {
    config: { public: true, probe: true },
    schema: {
      tags,
      operationId: 'getHealth',
      summary: 'Liveness: the process answers',
      security: [],
      response: { 200: ref(Health) },
    },
    handler: async () => ({ status: 'ok' }),
  });

  app.get('/readyz', {
    config: { public: true, probe: true },
    schema: {
      tags,
      security: [],
      operationId: 'getReadiness',
      summary: 'Readiness: Redis answers and every queue has a live worker',
      response: { 200: ref(Readiness), 503: { ...ref(Readiness), description: 'Not ready' } },
    },
    handler: async (_request, reply) => {
      let redis = false;
      let workers: Record<string, number> = {};
      try {
        await queues.connected(READY_TIMEOUT_MS);
        redis = (await withTimeout(queues.redis.ping(), READY_TIMEOUT_MS)) === 'PONG';
        workers = await withTimeout(queues.workerCounts(), READY_TIMEOUT_MS);
      } catch {
        // Unreachable Redis leaves the checks false.
      }
      const ready = redis && Object.keys(workers).length > 0 && Object.values(workers).every((count) => count > 0);
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'unavailable', checks: { redis, workers } });
    },
  });
}
