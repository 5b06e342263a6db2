// GET /usage: the calling key's own counters and limits (null: unlimited).
import { type TypeBoxTypeProvider, Type } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';
import { problemResponses } from './responses.js';

const Limit = Type.Union([Type.Integer(), Type.Null()], { description: 'null: unlimited' });

const Usage = Type.Object({
  key: Type.Object({ id: Type.String({ description: '`anonymous` while the API is open' }), name: Type.String() }),
  limits: Type.Object({ requests_per_minute: Limit, concurrent_generations: Limit, candidates_per_day: Limit }),
  usage: Type.Object({
    requests_this_minute: Type.Integer({ description: 'Including this request' }),
    concurrent_generations: Type.Integer({ description: 'Generations queued or processing' }),
    candidates_today: Type.Integer({ description: 'Candidates asked for since 00:00 UTC' }),
  }),
});

export async function usageRoutes(instance: FastifyInstance, { generations }: Services): Promise<void> {
  instance.withTypeProvider<TypeBoxTypeProvider>().get('/usage', {
    schema: {
      tags: ['system'],
      operationId: 'getUsage',
      summary: "The calling key's usage and limits",
      response: { 200: Usage, ...problemResponses() },
    },
    handler: async (request) => {
      const { id, name, limits } = request.principal;
      return {
        key: { id, name },
        limits: {
          requests_per_minute: limits.requests_per_minute ?? null,
          concurrent_generations: limits.concurrent_generations ?? null,
          candidates_per_day: limits.candidates_per_day ?? null,
        },
        usage: await generations.limiter.usage(request.principal),
      };
    },
  });
}
