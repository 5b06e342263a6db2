// Worker-side Prometheus figures, served on the worker's own port: job and stage durations,
// classify batch sizes, the generation scheduler's batches, jobs in flight.
import { type Server, createServer } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createWorkerMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'dalle_worker_' });
  const registers = [registry];
  return {
    registry,
    jobDuration: new Histogram({
      name: 'dalle_job_duration_seconds',
      help: 'Time a worker spent on a job, by queue and outcome',
      labelNames: ['queue', 'outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    }),
    queueWait: new Histogram({
      name: 'dalle_job_queue_wait_seconds',
      help: 'Time from enqueue to a worker starting the job',
      labelNames: ['queue'],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers,
    }),
    stageDuration: new Histogram({
      name: 'dalle_generation_stage_seconds',
      help: 'Generation stage durations',
      labelNames: ['stage'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    batchSize: new Histogram({
      name: 'dalle_classify_batch_size',
      help: 'Classify requests per engine call (micro-batching)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    }),
    generationBatchRows: new Histogram({
      name: 'dalle_generation_batch_rows',
      help: 'Candidate rows per generation engine call (scheduler batches)',
      buckets: [1, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
      registers,
    }),
    generationBatchJobs: new Histogram({
      name: 'dalle_generation_batch_jobs',
      help: 'Generations sharing one engine call',
      buckets: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64],
      registers,
    }),
    generationBatchFill: new Histogram({
      name: 'dalle_generation_batch_fill_ratio',
      help: 'Rows of a generation batch over GENERATE_BATCH_CANDIDATES',
      buckets: [0.1, 0.25, 0.5, 0.75, 0.9, 1],
      registers,
    }),
    generationFirstBatchWait: new Histogram({
      name: 'dalle_generation_first_batch_seconds',
      help: "Time from a generation's start on the worker to its first batch",
      buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    webhookDeliveries: new Counter({
      name: 'dalle_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    activeJobs: new Gauge({
      name: 'dalle_worker_active_jobs',
      help: 'Jobs in flight on this worker',
      labelNames: ['queue'],
      registers,
    }),
  };
}
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

/** GET /metrics on its own port; resolves with the port actually bound. */
export async function serveMetrics(
  registry: Registry,
  port: number,
  host: string,
): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  // Listening on a TCP port, the address is an object (a string only for a pipe).
  return { server, port: typeof address === 'object' && address ? address.port : port };
}
