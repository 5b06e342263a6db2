// bench:api's references, in a process of their own (nothing else shares its CPU time):
//  - the engine's classify throughput in process, built from the same config as the worker's
//    (device, CPU_THREADS), in batches of `batch` requests one after another;
//  - BullMQ's own `add` on the generate queue, `concurrency` in flight (what an enqueue costs
//    with no HTTP in front).
// On stdio: `{"ready":true}` once the engine is loaded and warm; then one JSON command a line,
// `{"op":"classify","requests":N,"batch":B}` or `{"op":"add","jobs":N,"concurrency":C}`,
// each answered by one JSON line `{"requests","seconds","rps"}`. Ends when stdin closes.
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import type { GenerateJobData } from '../src/contracts/jobs.js';
import { createEngine } from '../src/models/index.js';
import { Queues } from '../src/queue/queues.js';

const { values } = parseArgs({ options: { image: { type: 'string' }, labels: { type: 'string' } } });
if (!values.image || !values.labels) throw new Error('--image (a file) and --labels (comma-separated) are required');
const config = loadConfig(process.env);
const engine = await createEngine({
  modelsDir: config.modelsDir,
  defaultPack: config.defaultModel,
  device: config.device,
  cpuThreads: config.cpuThreads,
  cpuSpinWait: config.cpuSpinWait,
  checksumCacheDir: config.checksumCacheDir,
  maxImagePixels: config.imageMaxPixels,
  logger: pino({ level: 'silent' }),
});
const request = { images: [new Uint8Array(await readFile(values.image))], labels: values.labels.split(',') };
let queues: Queues | undefined;

async function classify(requests: number, batch: number): Promise<void> {
  for (let done = 0; done < requests; done += batch) {
    const outcomes = await engine.classify(Array.from({ length: Math.min(batch, requests - done) }, () => request));
    const failed = outcomes.find((outcome) => !outcome.ok);
    if (failed) throw new Error(`in-process classify failed: ${JSON.stringify(failed)}`);
  }
}

async function add(jobs: number, concurrency: number): Promise<void> {
  queues ??= new Queues(config);
  const queue = queues.get('generate');
  const data: GenerateJobData = {
    input: { prompt: 'a red circle', candidates: 4, n: 1, seed: 1, output_format: 'png', webhook_events_filter: [] },
    created_at: new Date().toISOString(),
    // As the API's jobs are: a worker drops them (they have no record) rather than adopting them.
    recorded: true,
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < jobs) await queue.add('generate', data);
    }),
  );
}

// Warm: the first batches pay for allocations and onnxruntime's first runs.
await classify(3 * config.classifyBatchMax, config.classifyBatchMax);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as
    { op: 'classify'; requests: number; batch: number } | { op: 'add'; jobs: number; concurrency: number };
  const started = performance.now();
  if (command.op === 'classify') await classify(command.requests, command.batch);
  else await add(command.jobs, command.concurrency);
  const seconds = (performance.now() - started) / 1000;
  const requests = command.op === 'classify' ? command.requests : command.jobs;
  process.stdout.write(`${JSON.stringify({ requests, seconds, rps: requests / seconds })}\n`);
}
await queues?.close();
await engine.close();
