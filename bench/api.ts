// npm run bench:api [-- --requests 200 --concurrency 16 --enqueue 1000 --skip-default]
// Serving overhead on loopback, all in one run:
//  - classify: requests/s and p50/p99 through HTTP + queue + worker (micro-batched), against
//    the in-process engine's classify throughput measured in the same run (their ratio);
//  - POST /generations enqueue rate against raw BullMQ `add` rate (no generate worker);
//  - one generation at the 512/32 default through HTTP, start to finish.
// Uses REDIS_URL (default 127.0.0.1:6379) under a random prefix, removed at the end.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import sharp from 'sharp';
import { buildApp } from '../src/api/app.js';
import { createServices } from '../src/api/services.js';
import { loadConfig } from '../src/config.js';
import { createEngine } from '../src/models/index.js';
import { startWorker } from '../src/worker/worker.js';
import { freePort, loopbackEnv, removeQueues } from '../test/integration/api-harness.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '16' },
    enqueue: { type: 'string', default: '1000' },
    'skip-default': { type: 'boolean', default: false },
  },
});
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const ENQUEUE = Number(values.enqueue);
const LABELS = ['circle', 'square', 'triangle', 'star', 'cross'];
const silent = pino({ level: 'silent' });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Runs `total` calls of `fn` with `concurrency` in flight; returns each latency and the wall time. */
async function load(
  total: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t = performance.now();
        await fn(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { latencies: latencies.sort((a, b) => a - b), seconds: (performance.now() - started) / 1000 };
}

const port = await freePort();
const dir = await mkdtemp(join(tmpdir(), 'bench-api-'));
const env = {
  ...loopbackEnv(port, dir, 'bench'),
  MODELS_DIR: process.env.MODELS_DIR ?? 'packs',
  GENERATE_MAX_QUEUED: String(ENQUEUE * 3),
  CLASSIFY_MAX_QUEUED: String(REQUESTS * 2),
};
const config = loadConfig(env);
const engine = await createEngine({ modelsDir: config.modelsDir, defaultPack: 'demo-shapes', logger: silent });
const services = createServices(config);
const app = await buildApp({ services, logger: silent });
await app.listen({ port, host: '127.0.0.1' });
const base = `http://127.0.0.1:${port}`;
const report: Record<string, unknown> = { requests: REQUESTS, concurrency: CONCURRENCY };

try {
  const image = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c03030' } })
    .png()
    .toBuffer();
  const request = { images: [new Uint8Array(image)], labels: LABELS };

  // In-process: the engine alone, one request at a time and in batches like the worker's.
  await engine.classify([request]);
  const single = await load(Math.min(REQUESTS, 100), 1, async () => void (await engine.classify([request])));
  const batch = config.classifyBatchMax;
  const batches = Math.max(1, Math.ceil(REQUESTS / batch));
  const batched = await load(
    batches,
    1,
    async () => void (await engine.classify(Array.from({ length: batch }, () => request))),
  );
  const engineSingleRps = single.latencies.length / single.seconds;
  const engineBatchedRps = (batches * batch) / batched.seconds;

  // Through HTTP + queue + worker, only classify served.
  const classifyWorker = await startWorker(loadConfig({ ...env, WORKER_QUEUES: 'classify' }), silent, { engine });
  const body = JSON.stringify({ image: { base64: image.toString('base64') }, labels: LABELS });
  const post = async () => {
    const response = await fetch(`${base}/clip/classify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    if (response.status !== 200) throw new Error(`classify answered ${response.status}: ${await response.text()}`);
    await response.arrayBuffer();
  };
  await post();
  const http = await load(REQUESTS, CONCURRENCY, post);
  const httpRps = REQUESTS / http.seconds;
  report.classify = {
    http_rps: round(httpRps),
    http_p50_ms: round(percentile(http.latencies, 50)),
    http_p99_ms: round(percentile(http.latencies, 99)),
    engine_single_rps: round(engineSingleRps),
    engine_batched_rps: round(engineBatchedRps),
    engine_batch_size: batch,
    http_over_engine_batched: round(httpRps / engineBatchedRps, 3),
  };

  // Enqueue: no generate worker, so jobs only queue.
  const genBody = JSON.stringify({ prompt: 'a red circle', candidates: 4, n: 1 });
  const enqueueHttp = await load(ENQUEUE, CONCURRENCY, async () => {
    const response = await fetch(`${base}/generations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: genBody,
    });
    if (response.status !== 202) throw new Error(`POST /generations answered ${response.status}`);
    await response.arrayBuffer();
  });
  const queue = services.queues.get('generate');
  const data = {
    input: {
      prompt: 'a red circle',
      candidates: 4,
      n: 1,
      seed: 1,
      output_format: 'png' as const,
      webhook_events_filter: [],
    },
    created_at: new Date().toISOString(),
    // As the API's jobs are: a worker drops them (they have no record) rather than adopting them.
    recorded: true as const,
  };
  const rawAdd = await load(ENQUEUE, CONCURRENCY, async () => void (await queue.add('generate', data)));
  report.enqueue = {
    http_rps: round(ENQUEUE / enqueueHttp.seconds),
    http_p50_ms: round(percentile(enqueueHttp.latencies, 50)),
    http_p99_ms: round(percentile(enqueueHttp.latencies, 99)),
    bullmq_add_rps: round(ENQUEUE / rawAdd.seconds),
    http_over_bullmq: round(enqueueHttp.seconds > 0 ? rawAdd.seconds / enqueueHttp.seconds : 0, 3),
  };
  await queue.obliterate({ force: true });
  await classifyWorker.stop();

  // The default generation (512 candidates, 32 kept) through HTTP, start to finish.
  if (!values['skip-default']) {
    const generateWorker = await startWorker(loadConfig({ ...env, WORKER_QUEUES: 'generate' }), silent, { engine });
    const started = performance.now();
    const accepted = (await (
      await fetch(`${base}/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'a red circle above a blue square', seed: 1 }),
      })
    ).json()) as { id: string };
    let generation: any;
    do {
      await new Promise((resolve) => setTimeout(resolve, 250));
      generation = await (await fetch(`${base}/generations/${accepted.id}`)).json();
    } while (!['succeeded', 'failed', 'canceled'].includes(generation.status) && performance.now() - started < 600_000);
    report.default_generation = {
      status: generation.status,
      wall_ms: round(performance.now() - started),
      images: generation.images?.length,
      metrics: generation.metrics,
    };
    await generateWorker.stop();
  }
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} finally {
  await app.close();
  await services.close();
  await engine.close();
  await removeQueues(config);
  await rm(dir, { recursive: true, force: true });
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
