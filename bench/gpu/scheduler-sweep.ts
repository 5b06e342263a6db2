// Prepared for the GPU machine (bench/gpu/README.md), bundled by bundle.sh; runs on the CPU too:
//   node .gpu-bundle/dist/scheduler-sweep.mjs --root . --device cuda
//        [--pack micro-dalle1 --rows 16,64,256,1024,4096 --jobs 6 --candidates 256 --batch 512]
// 1. Sampler batch sweep: the pack's sample_loop graph at each row count (DALL·E 1 geometry on
//    micro-dalle1), tokens/s per batch, best of 2 runs after a warm-up.
// 2. The scheduler in process: `jobs` generations with different prompts and settings through
//    the engine's mixed-chunk call, batches of `batch` rows: jobs/s, batches, mean fill; and one
//    of them alone, which must give the same tokens, ranks and scores (within 1e-6).
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine, loadPack, parseDevice, type DeviceName, silentLog } from '../../src/models/index.js';
import { Pack } from '../../src/models/packs.js';
import { generatorText } from '../../src/models/tokenizers.js';
import type { GenerateResult } from '../../src/models/types.js';
import { type BatchStats, GenerationScheduler, type ScheduledGeneration } from '../../src/models/scheduler.js';
import { timed } from '../timing.js';
import { timeSampleLoop } from './sample-loop-timing.js';

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    pack: { type: 'string', default: 'micro-dalle1' },
    rows: { type: 'string', default: '16,64,256,1024,4096' },
    jobs: { type: 'string', default: '6' },
    candidates: { type: 'string', default: '256' },
    batch: { type: 'string', default: '512' },
    root: { type: 'string', default: fileURLToPath(new URL('../../', import.meta.url)) },
  },
});
const root = values.root.endsWith('/') ? values.root : `${values.root}/`;
const device = parseDevice(values.device);
const log = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

async function sweep(): Promise<void> {
  const settings = { device, allowCpuFallback: false, probePlacement: device.kind === 'cuda' };
  const pack = new Pack(await loadPack(`${root}packs/${values.pack}`), settings, silentLog);
  const m = pack.generating;
  const sampleLoop = await pack.session('sample_loop');
  const text = generatorText(
    await pack.tokenizer('generator'),
    'a red circle',
    m.geometry.text_length,
    m.generator.text_pad_id,
  );
  for (const rows of values.rows.split(',').map(Number)) {
    const { ms, tokensPerS } = await timeSampleLoop(sampleLoop, m, text.ids, rows);
    log({ sweep: values.pack, device: values.device, rows, ms: Math.round(ms), tokens_per_s: Math.round(tokensPerS) });
  }
  log({ providers: pack.providers });
  await pack.release();
}

function jobs(count: number, candidates: number): Omit<ScheduledGeneration, 'signal'>[] {
  const prompts = ['a red circle', 'a blue square', 'a green cross', 'a yellow triangle'];
  return Array.from({ length: count }, (_, i) => ({
    model: values.pack,
    prompt: prompts[i % prompts.length],
    seed: 100 + i,
    candidates,
    n: 4,
    topK: [32, 8, 64][i % 3],
    temperature: [1, 0.8][i % 2],
    topP: [1, 0.9][i % 2],
  }));
}

function same(a: GenerateResult, b: GenerateResult): boolean {
  return a.images.every((image, i) => {
    const other = b.images[i];
    const tokens = image.tokens.every((t, k) => t === other.tokens[k]);
    return tokens && image.candidate === other.candidate && Math.abs(image.score - other.score) <= 1e-6;
  });
}

async function scheduler(): Promise<void> {
  const engine = await createEngine({
    modelsDir: `${root}packs`,
    device: values.device as DeviceName,
    logger: silentLog,
  });
  const batches: BatchStats[] = [];
  const batchCandidates = Number(values.batch);
  const make = () => new GenerationScheduler(engine, { batchCandidates, onBatch: (b) => batches.push(b) });
  const submit = (s: GenerationScheduler, job: Omit<ScheduledGeneration, 'signal'>) =>
    s.submit({ ...job, signal: new AbortController().signal });
  const all = jobs(Number(values.jobs), Number(values.candidates));
  const alone = await submit(make(), all[0]);
  batches.length = 0;
  const s = make();
  const [results, ms] = await timed(() => Promise.all(all.map((job) => submit(s, job))));
  const fill = batches.reduce((sum, b) => sum + b.rows / b.capacity, 0) / batches.length;
  log({
    scheduler: values.pack,
    device: values.device,
    jobs: all.length,
    candidates: Number(values.candidates),
    batch: batchCandidates,
    seconds: Math.round(ms) / 1000,
    jobs_per_s: Math.round((all.length / (ms / 1000)) * 100) / 100,
    batches: batches.length,
    mean_jobs_per_batch: Math.round((batches.reduce((sum, b) => sum + b.jobs, 0) / batches.length) * 10) / 10,
    mean_fill: Math.round(fill * 1000) / 1000,
    same_alone_and_mixed: same(alone, results[0]),
  });
  await engine.close();
  if (!same(alone, results[0])) process.exitCode = 1;
}

await sweep();
await scheduler();
