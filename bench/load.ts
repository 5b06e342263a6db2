// npm run bench:load [-- --classify 400 --connections 16 --burst 24 --depth 4]
// Bounded load on loopback against the real API and a real worker on the demo pack:
//  - many clients classifying at once (autocannon, a fixed number of requests);
//  - a burst of generation requests, then every accepted one followed to its end;
//  - backpressure: with GENERATE_MAX_QUEUED=depth and no generate worker, work past the depth
//    gets 503 queue_full, and how fast.
// Everything is bounded in count and time and stops by itself. Uses REDIS_URL (default
// 127.0.0.1:6379) under random prefixes, removed at the end.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon, { type Result } from 'autocannon';
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
    classify: { type: 'string', default: '400' },
    connections: { type: 'string', default: '16' },
    burst: { type: 'string', default: '24' },
    depth: { type: 'string', default: '4' },
  },
});
const CLASSIFY = Number(values.classify);
const CONNECTIONS = Number(values.connections);
const BURST = Number(values.burst);
const DEPTH = Number(values.depth);
const GENERATION_DEADLINE_MS = 10 * 60_000;
const LABELS = ['circle', 'square', 'triangle', 'star', 'cross'];
const MODELS = process.env.MODELS_DIR ?? 'packs';
const JSON_HEADERS = { 'content-type': 'application/json' };
const silent = pino({ level: 'silent' });
const round = (value: number, digits = 1) => Number(value.toFixed(digits));

/** An API on a free loopback port with its own prefix; env overrides the defaults. */
async function startApi(dir: string, env: Record<string, string>) {
  const port = await freePort();
  const fullEnv = { ...loopbackEnv(port, dir, 'bench-load'), MODELS_DIR: MODELS, ...env };
  const config = loadConfig(fullEnv);
  const services = createServices(config);
  const app = await buildApp({ services, logger: silent });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    config,
    env: fullEnv,
    base: `http://127.0.0.1:${port}`,
    async close() {
      await app.close();
      await services.close();
      await removeQueues(config);
    },
  };
}

function summary(result: Result) {
  return {
    requests: result.requests.total,
    rps: round(result.requests.average),
    p50_ms: round(result.latency.p50),
    p99_ms: round(result.latency.p99),
    max_ms: round(result.latency.max),
    status: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count])),
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

const dir = await mkdtemp(join(tmpdir(), 'bench-load-'));
const engine = await createEngine({ modelsDir: MODELS, defaultPack: 'demo-shapes', cpuThreads: 1, logger: silent });
const report: Record<string, unknown> = {
  classify_requests: CLASSIFY,
  connections: CONNECTIONS,
  burst: BURST,
  depth: DEPTH,
};
const main = await startApi(dir, { CLASSIFY_MAX_QUEUED: String(CLASSIFY * 2), GENERATE_MAX_QUEUED: String(BURST * 2) });
const worker = await startWorker(loadConfig(main.env), silent, { engine });
const full = await startApi(dir, { GENERATE_MAX_QUEUED: String(DEPTH), QUEUE_FULL_RETRY_AFTER_SECONDS: '1' });

try {
  // 1. Many clients classifying at once.
  const image = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c03030' } })
    .png()
    .toBuffer();
  const classifyBody = JSON.stringify({ image: { base64: image.toString('base64') }, labels: LABELS });
  await fetch(`${main.base}/clip/classify`, { method: 'POST', headers: JSON_HEADERS, body: classifyBody }); // warm-up
  report.classify = summary(
    await autocannon({
      url: `${main.base}/clip/classify`,
      method: 'POST',
      headers: JSON_HEADERS,
      body: classifyBody,
      connections: CONNECTIONS,
      amount: CLASSIFY,
      timeout: 60,
    }),
  );

  // 2. A burst of generations, all at once; then each accepted one followed to its end.
  const ids: string[] = [];
  const started = performance.now();
  const burst = await autocannon({
    url: main.base,
    connections: BURST,
    amount: BURST,
    timeout: 60,
    requests: [
      {
        method: 'POST',
        path: '/generations',
        headers: JSON_HEADERS,
        body: JSON.stringify({ prompt: 'a red circle above a blue square', candidates: 8, n: 2 }),
        onResponse: (status, body) => {
          if (status === 202) ids.push((JSON.parse(body) as { id: string }).id);
        },
      },
    ],
  });
  const outcomes: Record<string, number> = {};
  const deadline = Date.now() + GENERATION_DEADLINE_MS;
  for (const id of ids) {
    for (;;) {
      const generation = (await (await fetch(`${main.base}/generations/${id}`)).json()) as { status: string };
      if (['succeeded', 'failed', 'canceled'].includes(generation.status) || Date.now() > deadline) {
        outcomes[generation.status] = (outcomes[generation.status] ?? 0) + 1;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  report.generation_burst = {
    ...summary(burst),
    accepted: ids.length,
    outcomes,
    all_accepted_succeeded: ids.length > 0 && outcomes.succeeded === ids.length,
    seconds_until_all_done: round((performance.now() - started) / 1000),
  };

  // 3. Backpressure: nothing consumes `generate` here, so the queue fills at DEPTH.
  const overflow = await autocannon({
    url: `${full.base}/generations`,
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify({ prompt: 'x', candidates: 1 }),
    connections: 8,
    amount: 200,
    timeout: 10,
  });
  const refused: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    const response = await fetch(`${full.base}/generations`, {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ prompt: 'x', candidates: 1 }),
    });
    await response.arrayBuffer();
    if (response.status === 503) refused.push(performance.now() - t);
  }
  refused.sort((a, b) => a - b);
  report.backpressure = {
    ...summary(overflow),
    accepted: overflow.statusCodeStats['202']?.count ?? 0,
    refused_503: overflow.statusCodeStats['503']?.count ?? 0,
    sequential_503: refused.length,
    sequential_503_p50_ms: round(refused[Math.floor(refused.length / 2)] ?? NaN),
    sequential_503_p99_ms: round(refused[Math.min(refused.length - 1, Math.floor(refused.length * 0.99))] ?? NaN),
  };
} finally {
  await worker.stop();
  await full.close();
  await main.close();
  await engine.close();
  await rm(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(report, null, 2));
