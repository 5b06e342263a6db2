// Prometheus metrics of the API process: HTTP latency per route and the depth of every
// queue per state, read from Redis at scrape time. Worker figures are on each worker's port.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { QUEUE_NAMES } from '../../contracts/queues.js';
import type { Queues } from '../../queue/queues.js';
import { openStreamCount } from '../event-stream.js';

const STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
const OUTSTANDING = ['waiting', 'prioritized', 'delayed', 'active'] as const;

export const metricsPlugin = fp(async (app: FastifyInstance, options: { queues: Queues }) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'dalle_api_' });
  const httpDuration = new Histogram({
    name: 'dalle_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  // Both gauges of a scrape share one read: prom-client collects them at the same time.
  let reading: Promise<(Record<string, number> | null)[]> | undefined;
  const readCounts = () =>
    (reading ??= Promise.all(
      QUEUE_NAMES.map(
        (name) =>
          options.queues
            .get(name)
            .getJobCounts(...STATES)
            .catch(() => null), // a queue Redis cannot count is left out of this scrape
      ),
    ).finally(() => {
      reading = undefined;
    }));
  new Gauge({
    name: 'dalle_queue_jobs',
    help: 'Jobs per queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      const counts = await readCounts();
      this.reset();
      QUEUE_NAMES.forEach((queue, i) => {
        for (const [state, count] of Object.entries(counts[i] ?? {})) this.set({ queue, state }, count);
      });
    },
  });
  // What an autoscaler counts as work (deploy/kubernetes): BullMQ keeps prioritized jobs in a
  // set apart from the wait list, and a retry sits in delayed during its backoff until a
  // running worker moves it back, so a wait-list length alone misses both.
  new Gauge({
    name: 'dalle_queue_outstanding_jobs',
    help: 'Jobs per queue that need a worker: waiting, prioritized, delayed and active',
    labelNames: ['queue'],
    registers: [registry],
    async collect() {
      const counts = await readCounts();
      this.reset();
      QUEUE_NAMES.forEach((queue, i) => {
        const of = counts[i];
        if (of)
          this.set(
            { queue },
            OUTSTANDING.reduce((sum, state) => sum + (of[state] ?? 0), 0),
          );
      });
    },
  });

  new Gauge({
    name: 'dalle_event_streams_open',
    help: 'Event streams (GET /generations/:id/events) open in this process',
    registers: [registry],
    collect() {
      this.set(openStreamCount());
    },
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  app.get(
    '/metrics',
    {
      config: { public: true, probe: true },
      schema: {
        tags: ['system'],
        operationId: 'getMetrics',
        summary: 'Prometheus metrics of the API process',
        security: [],
        response: {
          200: {
            description: 'The Prometheus text exposition format',
            content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } },
          },
        },
      },
      // The exposition text goes out as it is: the schema documents it, nothing serializes it.
      serializerCompiler: () => (data) => String(data),
    },
    async (_request, reply) => {
      reply.type(registry.contentType);
      return registry.metrics();
    },
  );
});
