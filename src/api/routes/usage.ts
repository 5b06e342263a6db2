// GET /usage: the calling key's own counters and limits (null: unlimited). GET /webhook-secret:
// the secret that signs the calling key's webhooks, so its receivers can verify them.
import { type TypeBoxTypeProvider, Type } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { ANONYMOUS } from '../../service/api-keys.js';
import type { Services } from '../services.js';
import { problemResponses } from './responses.js';

const Limit = Type.Union([Type.Integer(), Type.Null()], { description: 'null: unlimited' });

const Usage = Type.Object({
  key: Type.Object({ id: Type.String({ description: '`anonymous` while the API is open' }), name: Type.String() }),
  limits: Type.Object({ requests_per_minute: Limit, concurrent_generations: Limit, candidates_per_day: Limit }),
  usage: Type.Object({
    requests_this_minute: Type.Integer({
      description: 'Including this request; counted only while the key has a requests_per_minute limit (0 without one)',
    }),
    concurrent_generations: Type.Integer({ description: 'Generations queued or processing' }),
    candidates_today: Type.Integer({ description: 'Candidates asked for since 00:00 UTC' }),
  }),
});

const WebhookSecret = Type.Object({
  key: Type.Object({ id: Type.String(), name: Type.String() }),
  webhook_secret: Type.Union([Type.String({ pattern: '^whsec_' }), Type.Null()], {
    description:
      "Standard Webhooks secret (`whsec_…`) of this key. null in open mode (the server's WEBHOOK_SECRET signs; its operator knows it) or when webhooks are not configured",
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
  instance.withTypeProvider<TypeBoxTypeProvider>().get('/webhook-secret', {
    schema: {
      operationId: 'getWebhookSecret',
      tags: ['system'],
      summary: "The secret that signs the calling key's webhooks",
      response: { 200: WebhookSecret, ...problemResponses() },
    },
    handler: async (request, reply) => {
      const { id, name, webhookSecret } = request.principal;
      reply.header('cache-control', 'no-store');
      return { key: { id, name }, webhook_secret: id === ANONYMOUS ? null : (webhookSecret ?? null) };
    },
  });
}
