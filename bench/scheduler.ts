// npm run bench:scheduler [-- --rounds 3 --batch 32 --max-active 16]
// The generation scheduler through HTTP + queue + worker on loopback, both policies in one run:
// the scheduler (GENERATE_MAX_ACTIVE generations batched together) against one at a time
// (GENERATE_MAX_ACTIVE=1), the same batch size, the median of `rounds` rounds each:
//  - many small: 32 concurrent generations of 32 candidates, keep 4: jobs/s, p50/p95 latency,
//    mean batch fill;
//  - small behind big: one 512-candidate generation, then 8 of 16 candidates posted 0.3 s later:
//    each small one's latency as a fraction of the big one's duration.
// Latencies are the server's own (created_at → completed_at). Uses REDIS_URL under a random prefix.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { buildApp } from '../src/api/app.js';
import { createServices } from '../src/api/services.js';
import { loadConfig } from '../src/config.js';
import { createEngine, type Engine } from '../src/models/index.js';
import { startWorker } from '../src/worker/worker.js';
import { freePort, loopbackEnv, removeQueues } from '../test/integration/api-harness.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    batch: { type: 'string' },
    'max-active': { type: 'string' },
    small: { type: 'string', default: '32' },
  },
});
const ROUNDS = Number(values.rounds);
const SMALL_JOBS = Number(values.small);
const silent = pino({ level: 'silent' });
// Latencies come from the server's timestamps, so polling slowly costs no accuracy and leaves
// the CPU to the worker (32 generations polled every 100 ms would be 320 requests/s).
const POLL_MS = 500;
const PROMPTS = ['a red circle', 'a blue square', 'a green cross', 'a yellow triangle', 'a small cyan circle'];

interface Generation {
  status: string;
  created_at: string;
  completed_at: string | null;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Client {
  constructor(private readonly base: string) {}

  async post(body: object): Promise<string> {
    const response = await fetch(`${this.base}/generations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (response.status !== 202) throw new Error(`POST /generations answered ${response.status}`);
    return ((await response.json()) as { id: string }).id;
  }

  /** Polls until finished; the timing comes from the server's own timestamps. */
  async finished(id: string): Promise<{ start: number; end: number }> {
    for (const deadline = Date.now() + 900_000; Date.now() < deadline; await sleep(POLL_MS)) {
      const g = (await (await fetch(`${this.base}/generations/${id}`)).json()) as Generation;
      if (g.status === 'failed' || g.status === 'canceled') throw new Error(`generation ${id} ${g.status}`);
      if (g.status === 'succeeded') return { start: Date.parse(g.created_at), end: Date.parse(g.completed_at!) };
    }
    throw new Error(`generation ${id} did not finish`);
  }
}

const body = (i: number, candidates: number, n: number) => ({
  prompt: PROMPTS[i % PROMPTS.length],
  candidates,
  n,
  seed: i,
  // Mixed settings, as real traffic has.
  top_k: [32, 16, 8][i % 3],
  temperature: [1, 0.8][i % 2],
});

async function manySmall(client: Client) {
  const ids = await Promise.all(Array.from({ length: SMALL_JOBS }, (_, i) => client.post(body(i, 32, 4))));
  const times = await Promise.all(ids.map((id) => client.finished(id)));
  const first = Math.min(...times.map((t) => t.start));
  const last = Math.max(...times.map((t) => t.end));
  const latencies = times.map((t) => (t.end - t.start) / 1000);
  return {
    jobs_per_s: SMALL_JOBS / ((last - first) / 1000),
    p50_s: percentile(latencies, 50),
    p95_s: percentile(latencies, 95),
  };
}

async function smallBehindBig(client: Client) {
  const big = await client.post(body(100, 512, 32));
  await sleep(300);
  const smalls = await Promise.all(Array.from({ length: 8 }, (_, i) => client.post(body(i, 16, 4))));
  const bigTime = await client.finished(big);
  const duration = bigTime.end - bigTime.start;
  const fractions = (await Promise.all(smalls.map((id) => client.finished(id)))).map(
    (t) => (t.end - t.start) / duration,
  );
  return { big_s: duration / 1000, small_p50: percentile(fractions, 50), small_p95: percentile(fractions, 95) };
}

/** Mean of the worker's batch fill ratio histogram. */
async function meanFill(metrics: Awaited<ReturnType<typeof startWorker>>['metrics']): Promise<number> {
  const { values: points } = await metrics.generationBatchFill.get();
  const sum = points.find((p) => p.metricName?.endsWith('_sum'))?.value ?? 0;
  const count = points.find((p) => p.metricName?.endsWith('_count'))?.value ?? 0;
  return count > 0 ? sum / count : 0;
}

type Round = {
  many: Awaited<ReturnType<typeof manySmall>> & { fill: number };
  big: Awaited<ReturnType<typeof smallBehindBig>>;
};

async function runRound(
  env: Record<string, string>,
  engine: Engine,
  client: Client,
  maxActive: string,
): Promise<Round> {
  const config = loadConfig({ ...env, WORKER_QUEUES: 'generate', GENERATE_MAX_ACTIVE: maxActive });
  let worker = await startWorker(config, silent, { engine });
  const many = { ...(await manySmall(client)), fill: await meanFill(worker.metrics) };
  await worker.stop();
  worker = await startWorker(config, silent, { engine });
  const big = await smallBehindBig(client);
  await worker.stop();
  process.stderr.write(`GENERATE_MAX_ACTIVE=${maxActive}: ${JSON.stringify({ many, big })}\n`);
  return { many, big };
}

function summary(maxActive: string, rounds: Round[]) {
  const med = (pick: (x: Round) => number) => round(median(rounds.map(pick)));
  return {
    max_active: Number(maxActive),
    many_small: {
      jobs_per_s: med((x) => x.many.jobs_per_s),
      p50_s: med((x) => x.many.p50_s),
      p95_s: med((x) => x.many.p95_s),
      mean_batch_fill: med((x) => x.many.fill),
    },
    small_behind_big: {
      big_s: med((x) => x.big.big_s),
      small_p50_fraction: med((x) => x.big.small_p50),
      small_p95_fraction: med((x) => x.big.small_p95),
    },
  };
}

const port = await freePort();
const dir = await mkdtemp(join(tmpdir(), 'bench-scheduler-'));
const env: Record<string, string> = {
  ...loopbackEnv(port, dir, 'bench'),
  MODELS_DIR: process.env.MODELS_DIR ?? 'packs',
  ...(values.batch && { GENERATE_BATCH_CANDIDATES: values.batch }),
};
const config = loadConfig(env);
const engine = await createEngine({ modelsDir: config.modelsDir, defaultPack: 'demo-shapes', logger: silent });
const services = createServices(config);
const app = await buildApp({ services, logger: silent });
await app.listen({ port, host: '127.0.0.1' });
try {
  const client = new Client(`http://127.0.0.1:${port}`);
  const warmup = await startWorker(loadConfig({ ...env, WORKER_QUEUES: 'generate' }), silent, { engine });
  await client.finished(await client.post(body(0, 8, 1)));
  await warmup.stop();
  const maxActive = values['max-active'] ?? String(config.generateMaxActive);
  // The two policies alternate round by round, so that a shared machine's load drifts over both.
  const rounds: Record<string, Round[]> = { [maxActive]: [], '1': [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const policy of [maxActive, '1']) rounds[policy].push(await runRound(env, engine, client, policy));
  }
  const scheduler = summary(maxActive, rounds[maxActive]);
  const oneAtATime = summary('1', rounds['1']);
  const report = {
    batch_candidates: config.generateBatchCandidates,
    rounds: ROUNDS,
    scheduler,
    one_at_a_time: oneAtATime,
    many_small_jobs_per_s_ratio: round(scheduler.many_small.jobs_per_s / oneAtATime.many_small.jobs_per_s),
    goals: {
      'small_behind_big p95 <= 0.15': scheduler.small_behind_big.small_p95_fraction <= 0.15,
      'many_small jobs/s >= 0.9x one at a time':
        scheduler.many_small.jobs_per_s >= 0.9 * oneAtATime.many_small.jobs_per_s,
    },
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} finally {
  await app.close();
  await services.close();
  await engine.close();
  await removeQueues(config);
  await rm(dir, { recursive: true, force: true });
}
