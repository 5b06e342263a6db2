// npm run bench:api [-- --rounds 3 --clients 16,64 --requests 1000 --enqueue 1000 --private-redis --json]
// POST /clip/classify through HTTP + queue + worker against the engine's classify in process,
// every part in a process of its own so that their CPU can be told apart: the API
// (src/api/main.ts), the worker (src/worker/main.ts, classify only), the load generator
// (bench/api-clients.ts: N keep-alive clients) and the reference (bench/api-reference.ts: the
// engine alone, batches of CLASSIFY_BATCH_MAX one after another, as the worker's engine at its
// best). Each round measures, for each client count, the reference and then the HTTP path, so
// the two alternate and each ratio is of neighbours; every reading is bracketed by each
// process's CPU time (/proc/<pid>/stat), Redis's (INFO cpu) and its command counts (INFO
// commandstats, commands inside scripts included), divided by the requests. Printed: min /
// median / max over the rounds, beside the goals of issue 25 (judged on the median round).
// Then, once: POST /generations (no generate worker, so jobs only queue) against BullMQ's `add`.
// The 512-candidate generation end to end that this bench ran before is left to bench:scheduler
// (its "small behind big" runs one through HTTP) and bench:load (a burst followed to its end).
// Uses REDIS_URL (default 127.0.0.1:6379), or with --private-redis a redis-server of its own,
// under a random QUEUE_PREFIX removed at the end.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import { REDIS_URL, freePort, loopbackEnv, removeQueues } from '../test/integration/api-harness.js';
import {
  type PrivateRedis,
  type Service,
  privateRedis,
  spawnService,
  until,
} from '../test/integration/faults-harness.js';
import {
  type ClientsResult,
  type Enqueue,
  type Reading,
  type ReferenceResult,
  type Round,
  printTable,
} from './api-table.js';
import {
  type LineChild,
  callsBetween,
  loadAverage,
  mainThreadCpuMs,
  processCpuMs,
  redisSample,
  spawnLineChild,
} from './api-meters.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '16,64' },
    requests: { type: 'string', default: '1000' },
    enqueue: { type: 'string', default: '1000' },
    'private-redis': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(values.rounds);
const CLIENTS = values.clients.split(',').map(Number);
const REQUESTS = Number(values.requests);
const ENQUEUE = Number(values.enqueue);
const LABELS = ['circle', 'square', 'triangle', 'star', 'cross'];
/** After the last answer, work a round left behind (image deletes, job removals) is still its. */
const SETTLE_MS = 250;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const startLoad = loadAverage();
const dir = await mkdtemp(join(tmpdir(), 'bench-api-'));
let redis: PrivateRedis | undefined;
if (values['private-redis']) {
  redis = await privateRedis(dir, { persist: false });
  await redis.start();
}
const port = await freePort();
const env = {
  ...loopbackEnv(port, dir, 'bench-api'),
  REDIS_URL: redis?.url ?? REDIS_URL,
  MODELS_DIR: process.env.MODELS_DIR ?? 'packs',
  LOG_LEVEL: 'warn',
  CLASSIFY_MAX_QUEUED: String(4 * Math.max(...CLIENTS)),
  GENERATE_MAX_QUEUED: String(4 * ENQUEUE + 1000),
};
const config = loadConfig(env);
const admin = new Redis(env.REDIS_URL);
const info = String(await admin.call('INFO', 'clients'));
const otherClients = Number(/^connected_clients:(\d+)/m.exec(info)?.[1] ?? 1) - 1;
const image = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c03030' } })
  .png()
  .toBuffer();
const files = { image: join(dir, 'image.png'), classify: join(dir, 'classify.json'), generate: join(dir, 'gen.json') };
await writeFile(files.image, image);
const classifyBody = JSON.stringify({ image: { base64: image.toString('base64') }, labels: LABELS });
await writeFile(files.classify, classifyBody);
await writeFile(files.generate, JSON.stringify({ prompt: 'a red circle', candidates: 4, n: 1 }));
const base = `http://127.0.0.1:${port}`;

const api: Service = spawnService('src/api/main.ts', env);
const metricsUrl = `http://127.0.0.1:${await freePort()}/metrics`;
const worker: Service = spawnService('src/worker/main.ts', {
  ...env,
  WORKER_QUEUES: 'classify',
  WORKER_METRICS_PORT: new URL(metricsUrl).port,
});
const reference: LineChild = spawnLineChild(
  'bench/api-reference.ts',
  ['--image', files.image, '--labels', LABELS.join(',')],
  env,
);
const report: { classify?: Record<number, Round[]>; enqueue?: Enqueue; conditions?: object } = {};

/** `run` bracketed by the CPU time `cpu` reads (ms, by name) and Redis's counts, per request. */
async function metered<R extends { requests: number }>(
  cpu: Record<string, () => number>,
  run: () => Promise<R>,
  settleMs = 0,
): Promise<Reading<R>> {
  const before = Object.fromEntries(Object.entries(cpu).map(([name, read]) => [name, read()]));
  const redisBefore = await redisSample(admin);
  const result = await run();
  await sleep(settleMs);
  const cpuMs = Object.fromEntries(
    Object.entries(cpu).map(([name, read]) => [name, (read() - before[name]) / result.requests]),
  );
  const redisAfter = await redisSample(admin);
  const calls = [...callsBetween(redisBefore, redisAfter)].sort((a, b) => b[1] - a[1]);
  return {
    ...result,
    cpu_ms: { ...cpuMs, redis: (redisAfter.cpuMs - redisBefore.cpuMs) / result.requests },
    commands: calls.reduce((sum, [, count]) => sum + count, 0) / result.requests,
    top_commands: Object.fromEntries(calls.slice(0, 6).map(([name, count]) => [name, count / result.requests])),
  };
}

/** The load generator at `clients`, in a process of its own for one reading. */
async function overHttp(path: string, body: string, clients: number, requests: number, status: number) {
  const args = ['--url', `${base}${path}`, '--body', body, '--clients', String(clients)];
  const generator = spawnLineChild(
    'bench/api-clients.ts',
    [...args, '--requests', String(requests), '--status', String(status)],
    {},
  );
  try {
    await generator.next(); // warm: every connection open
    const cpu = {
      api: () => processCpuMs(api.child.pid!),
      worker: () => processCpuMs(worker.child.pid!),
      worker_main: () => mainThreadCpuMs(worker.child.pid!),
      clients: () => processCpuMs(generator.pid),
    };
    const batchesBefore = await workerBatches();
    const reading = await metered(cpu, async () => (generator.send('go'), generator.next<ClientsResult>()), SETTLE_MS);
    const batchesAfter = await workerBatches();
    reading.worker_batch = (batchesAfter.sum - batchesBefore.sum) / (batchesAfter.count - batchesBefore.count || 1);
    const failed = reading.requests - reading.ok;
    if (failed > 0)
      throw new Error(`${failed} of ${requests} ${path} requests failed: ${JSON.stringify(reading.failures)}`);
    return reading;
  } finally {
    await generator.end();
  }
}

/** The worker's classify batches so far (its Prometheus histogram): how many, how many requests. */
async function workerBatches(): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const read = (name: string) =>
    Number(new RegExp(`^dalle_classify_batch_size_${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? 0);
  return { sum: read('sum'), count: read('count') };
}

function inProcess(command: object) {
  return metered({ reference: () => processCpuMs(reference.pid) }, async () => {
    reference.send(command);
    return reference.next<ReferenceResult>();
  });
}

try {
  await until('the API', async () => (await fetch(`${base}/healthz`)).ok, 60_000);
  await reference.next(); // the engine loaded and warm
  // The worker has loaded its packs and published them.
  const classify = async () => {
    const headers = { 'content-type': 'application/json' };
    const response = await fetch(`${base}/clip/classify`, { method: 'POST', headers, body: classifyBody });
    await response.arrayBuffer();
    return response.ok;
  };
  await until('a classify answered by the worker', classify, 180_000, 500);

  const rounds: Record<number, Round[]> = Object.fromEntries(CLIENTS.map((clients) => [clients, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const clients of CLIENTS) {
      const ref = await inProcess({ op: 'classify', requests: REQUESTS, batch: config.classifyBatchMax });
      const http = await overHttp('/clip/classify', files.classify, clients, REQUESTS, 200);
      rounds[clients].push({ http, reference: ref, ratio: http.rps / ref.rps, load: loadAverage()[0] });
      process.stderr.write(
        `round ${round + 1}, ${clients} clients: ${http.rps.toFixed(0)} req/s over HTTP, ${ref.rps.toFixed(0)} in process\n`,
      );
    }
  }
  report.classify = rounds;

  if (ENQUEUE > 0) {
    const add = await inProcess({ op: 'add', jobs: ENQUEUE, concurrency: CLIENTS[0] });
    const http = await overHttp('/generations', files.generate, CLIENTS[0], ENQUEUE, 202);
    report.enqueue = { clients: CLIENTS[0], http, bullmq_add: add };
  }
  const conditions = {
    requests: REQUESTS,
    batch: config.classifyBatchMax,
    loadStart: startLoad,
    loadEnd: loadAverage(),
    cpus: availableParallelism(),
    redis: redis ? `of its own (${redis.url})` : `at ${env.REDIS_URL}`,
    otherRedisClients: otherClients,
  };
  report.conditions = conditions;
  printTable(rounds, report.enqueue, conditions);
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} catch (error) {
  process.stderr.write(`API output:\n${api.output().slice(-4000)}\nworker output:\n${worker.output().slice(-4000)}\n`);
  throw error;
} finally {
  await reference.end();
  await Promise.all(
    [api, worker].map((service) =>
      Promise.race([service.stop('SIGTERM'), sleep(15_000).then(() => service.stop('SIGKILL'))]),
    ),
  );
  await removeQueues(config);
  admin.disconnect();
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
}
