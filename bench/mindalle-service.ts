// tsx bench/mindalle-service.ts --models-dir DIR --model NAME [--candidates 32] [--n 4] [--timeout-min 180]
// One pack through the whole service on the CPU (bench/mindalle-full.sh runs it for the float32
// and the int8 pack): a redis-server of its own, the API (src/api/main.ts) and the worker
// (src/worker/main.ts) as processes of their own, images in a temp folder. The worker keeps its
// defaults (memory budget, batch size, threads) except an empty checksum cache of its own, so
// that its start-up is a first start's: every pack file hashed. Measured: the worker's start-up
// until /readyz answers 200, the rows per batch the scheduler chose (GET /models and the worker's
// histogram) and the images it decodes at once, one POST /generations followed on its event
// stream (the first progress event comes once the first batch is sampled, decoded and scored),
// its times by the server's clock
// and metrics (sampling per candidate: the batches' sampling time over the candidates), the
// images it stored (fetched: 200 and PNG), and the worker process's peak resident memory
// (VmHWM of the node process), how much it grew past its start-up against what the memory budget
// let a batch hold (rows × row_bytes + images decoded at once × decode_image_bytes). Prints one
// JSON line.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Generation, GenerationAccepted, ModelList } from '../src/contracts/schemas.js';
import { freePort, json, loopbackEnv, post } from '../test/integration/api-harness.js';
import {
  type PrivateRedis,
  type Service,
  privateRedis,
  spawnService,
  until,
} from '../test/integration/faults-harness.js';
import { openEventStream } from '../test/integration/sse-client.js';

const { values } = parseArgs({
  options: {
    'models-dir': { type: 'string' },
    model: { type: 'string' },
    candidates: { type: 'string', default: '32' },
    n: { type: 'string', default: '4' },
    prompt: { type: 'string', default: 'a painting of a red apple on the table' },
    // A 1.3B generator on 2 busy cores: a float32 generation of 32 candidates can take an hour.
    'timeout-min': { type: 'string', default: '180' },
  },
});
if (!values['models-dir'] || !values.model) throw new Error('--models-dir and --model are required');
const model = values.model;
const candidates = Number(values.candidates);
const keep = Number(values.n);
const timeoutMs = Number(values['timeout-min']) * 60_000;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const seconds = (ms: number) => Number((ms / 1000).toFixed(2));
const gib = (bytes: number) => Number((bytes / 2 ** 30).toFixed(2));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** VmHWM and VmRSS of a process, in GiB; it must be the worker's node process itself. */
async function memoryOf(pid: number, entry: string) {
  const command = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  if (!command.some((arg) => arg.endsWith(entry)) || !/node/.test(command[0]))
    throw new Error(`pid ${pid} runs ${command.join(' ')}, not node ${entry}`);
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const gib = (field: string) => {
    const kib = Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    return Number((kib / 2 ** 20).toFixed(2));
  };
  return { peak_rss_gib: gib('VmHWM'), rss_gib: gib('VmRSS') };
}

/** The worker's histogram of rows per generation batch: batches, rows, and batches per bucket. */
async function batchRows(metricsUrl: string) {
  const text = await (await fetch(metricsUrl)).text();
  const metric = 'dalle_generation_batch_rows';
  const number = (suffix: string) => Number(new RegExp(`^${metric}_${suffix} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  // Cumulative buckets: each one's own count is its figure less the one below it.
  const buckets = [...text.matchAll(new RegExp(`^${metric}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm'))].map(
    ([, le, count]) => ({ le, count: Number(count) }),
  );
  const perBucket: Record<string, number> = {};
  buckets.forEach(({ le, count }, i) => {
    const own = count - (i > 0 ? buckets[i - 1].count : 0);
    if (own > 0) perBucket[i > 0 ? `${Number(buckets[i - 1].le) + 1}-${le}` : `<=${le}`] = own;
  });
  return { batches: number('count'), rows: number('sum'), batches_by_rows: perBucket };
}

/** Each image fetched from its URL: its status, type and whether its bytes begin as a PNG's. */
async function fetchImages(generation: Generation) {
  return Promise.all(
    generation.images.map(async (image) => {
      const response = await fetch(image.url);
      const bytes = Buffer.from(await response.arrayBuffer());
      return {
        rank: image.rank,
        status: response.status,
        content_type: response.headers.get('content-type'),
        bytes: bytes.length,
        png: bytes.subarray(0, 8).equals(PNG_SIGNATURE),
        size: `${image.width}x${image.height}`,
      };
    }),
  );
}

/** Follows the event stream to the terminal event: the time from POST's answer to the first progress event. */
async function follow(url: string, answeredAt: number) {
  const stream = await openEventStream(url);
  if (stream.status !== 200) throw new Error(`${url} answered ${stream.status}`);
  const deadline = setTimeout(() => stream.close(), timeoutMs);
  let firstProgressMs: number | undefined;
  let progressEvents = 0;
  try {
    for await (const frame of stream.frames) {
      if (frame.event === 'progress') {
        progressEvents += 1;
        firstProgressMs ??= performance.now() - answeredAt;
      }
      if (frame.event === 'completed') return { firstProgressMs, progressEvents };
    }
  } finally {
    clearTimeout(deadline);
    stream.close();
  }
  throw new Error(`the event stream ended without a completed event (timeout ${values['timeout-min']} min?)`);
}

const dir = await mkdtemp(join(tmpdir(), 'bench-mindalle-service-'));
const storageDir = join(dir, 'images');
const checksumCacheDir = join(dir, 'verified-files');
await mkdir(storageDir);
let redis: PrivateRedis | undefined;
const services: Service[] = [];
try {
  redis = await privateRedis(dir, { persist: false });
  await redis.start();
  const port = await freePort();
  const metricsUrl = `http://127.0.0.1:${await freePort()}/metrics`;
  const env = {
    ...loopbackEnv(port, storageDir, 'bench-mindalle'),
    REDIS_URL: redis.url,
    MODELS_DIR: values['models-dir'],
    DEFAULT_MODEL: model,
    CHECKSUM_CACHE_DIR: checksumCacheDir,
    WORKER_METRICS_PORT: new URL(metricsUrl).port,
    LOG_LEVEL: 'warn',
  };
  const base = `http://127.0.0.1:${port}`;
  const api = spawnService('src/api/main.ts', env);
  services.push(api);
  await until('the API', async () => (await fetch(`${base}/healthz`)).ok, 60_000, 200);

  const workerEntry = 'src/worker/main.ts';
  const workerSpawned = performance.now();
  const worker = spawnService(workerEntry, env);
  services.push(worker);
  // Polled here rather than by waitReadyz: a worker that fails to start exits, and the wait ends with it.
  for (const deadline = Date.now() + timeoutMs; (await fetch(`${base}/readyz`)).status !== 200; await sleep(200)) {
    if (worker.child.exitCode !== null || worker.child.signalCode !== null)
      throw new Error(
        `the worker exited (${worker.child.exitCode ?? worker.child.signalCode}) before /readyz said ready`,
      );
    if (Date.now() > deadline) throw new Error(`/readyz not ready after ${values['timeout-min']} min`);
  }
  const workerStartupMs = performance.now() - workerSpawned;
  const afterStartup = await memoryOf(worker.child.pid!, workerEntry);

  // The worker publishes its packs just after its queues' workers connect, which /readyz sees.
  const listed = await until(`GET /models listing ${model}`, async () =>
    (await json(await fetch(`${base}/models`), ModelList)).data.find((m) => m.name === model && m.generation),
  );
  if (!listed.generation) throw new Error(`${model} does not generate`);

  const posted = await post(base, '/generations', { prompt: values.prompt, candidates, n: keep, model, seed: 1 });
  const answeredAt = performance.now();
  if (posted.status !== 202) throw new Error(`POST /generations answered ${posted.status}: ${await posted.text()}`);
  const accepted = await json(posted, GenerationAccepted);
  const events = await follow(new URL(accepted.urls.stream, base).href, answeredAt);
  const generation = await json(await fetch(new URL(accepted.urls.get, base)), Generation);
  if (generation.status !== 'succeeded' || !generation.metrics || !generation.completed_at)
    throw new Error(`generation ${generation.status}: ${JSON.stringify(generation.error)}`);
  const images = await fetchImages(generation);
  const workerMemory = {
    after_startup: afterStartup,
    after_generation: await memoryOf(worker.child.pid!, workerEntry),
  };
  const m = generation.metrics;
  console.log(
    JSON.stringify({
      model,
      weights: listed.weights,
      candidates,
      n: keep,
      worker_startup_s: seconds(workerStartupMs),
      row_bytes: listed.generation.row_bytes,
      decode_image_bytes: listed.generation.decode_image_bytes,
      max_batch_rows: listed.generation.max_batch_rows,
      decode_batch_images: listed.generation.decode_batch_images,
      // What the budget let a batch hold, against what the worker grew by past its start-up.
      budgeted_gib: gib(
        (listed.generation.max_batch_rows ?? 0) * (listed.generation.row_bytes ?? 0) +
          (listed.generation.decode_batch_images ?? 0) * (listed.generation.decode_image_bytes ?? 0),
      ),
      grown_gib: Number((workerMemory.after_generation.peak_rss_gib - afterStartup.rss_gib).toFixed(2)),
      batch_rows: await batchRows(metricsUrl),
      first_progress_s: events.firstProgressMs === undefined ? null : seconds(events.firstProgressMs),
      progress_events: events.progressEvents,
      total_s: seconds(Date.parse(generation.completed_at) - Date.parse(generation.created_at)),
      sample_s_per_candidate: Number((m.sample_ms / candidates / 1000).toFixed(3)),
      metrics_ms: m,
      images,
      images_ok: images.length === keep && images.every((image) => image.status === 200 && image.png),
      worker_memory: workerMemory,
    }),
  );
} catch (error) {
  for (const [name, service] of [
    ['API', services[0]],
    ['worker', services[1]],
  ] as const) {
    if (service) process.stderr.write(`${name} output:\n${service.output().slice(-4000)}\n`);
  }
  throw error;
} finally {
  // The worker first: the API outliving it is harmless, the reverse leaves a worker retrying.
  for (const service of services.reverse()) {
    const kill = setTimeout(() => void service.stop('SIGKILL'), 30_000);
    await service.stop('SIGTERM');
    clearTimeout(kill);
  }
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
}
