// npm run bench:spin [-- --rounds 5 --batch 6 --gaps 0,10 --threads 2 --requests 600]
// What CPU_SPIN_WAIT costs: the engine's classify of the demo pack, once with onnxruntime's CPU
// threads spinning between runs (CPU_SPIN_WAIT=true, onnxruntime's own default) and once
// sleeping (the service's default), at a worker's pace: batches of `batch` requests with `gap`
// ms between them (a worker at 16 clients took batches of about 6), and back to back (gap 0).
// Both engines live in this process and take turns, the order alternating per round; each
// reading is this process's CPU time (every thread) and the wall time of the runs alone, per
// request. Prints min / median / max over the rounds and the ratio of the medians.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine, type Engine, silentLog } from '../src/models/index.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    batch: { type: 'string', default: '6' },
    gaps: { type: 'string', default: '0,10' },
    threads: { type: 'string', default: '2' },
    requests: { type: 'string', default: '600' },
  },
});
const rounds = Number(values.rounds);
const batch = Number(values.batch);
const requests = Number(values.requests);
const gaps = values.gaps.split(',').map(Number);
const cpuThreads = Number(values.threads);

const image = new Uint8Array(await readFile(`${root}test/fixtures/scenes/heldout-01.png`));
const request = { images: [image], labels: ['a red square', 'a blue circle', 'a green triangle'] };
const open = (cpuSpinWait: boolean) =>
  createEngine({ modelsDir: `${root}packs`, defaultPack: 'demo-shapes', cpuThreads, cpuSpinWait, logger: silentLog });
const engines: Record<'spinning' | 'sleeping', Engine> = { spinning: await open(true), sleeping: await open(false) };

interface Reading {
  cpuMs: number;
  runMs: number;
}

async function paced(engine: Engine, gapMs: number): Promise<Reading> {
  const cpu = process.cpuUsage();
  let runMs = 0;
  for (let done = 0; done < requests; done += batch) {
    const start = performance.now();
    const outcomes = await engine.classify(Array.from({ length: batch }, () => request));
    runMs += performance.now() - start;
    if (!outcomes.every((outcome) => outcome.ok)) throw new Error('classify failed');
    if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  const used = process.cpuUsage(cpu);
  return { cpuMs: (used.user + used.system) / 1000 / requests, runMs: runMs / requests };
}

const spread = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return { min: sorted[0] ?? NaN, median: sorted[Math.floor(sorted.length / 2)] ?? NaN, max: sorted.at(-1) ?? NaN };
};
const show = (xs: number[]) => {
  const { min, median, max } = spread(xs);
  return `${min.toFixed(2)} / ${median.toFixed(2)} / ${max.toFixed(2)}`;
};

for (const engine of Object.values(engines)) await paced(engine, 0); // warm: first runs allocate
console.log(
  `classify on demo-shapes, ${cpuThreads} CPU threads, batches of ${batch}, ${requests} requests a reading, ${rounds} rounds; load average ${(await import('node:os')).loadavg()[0]?.toFixed(1)}`,
);
console.log(
  '| gap between batches | threads between runs | CPU ms per request, min / median / max | run ms per request |',
);
console.log('| --- | --- | --- | --- |');
for (const gapMs of gaps) {
  const readings: Record<keyof typeof engines, Reading[]> = { spinning: [], sleeping: [] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (['spinning', 'sleeping'] as const) : (['sleeping', 'spinning'] as const);
    for (const name of order) readings[name].push(await paced(engines[name], gapMs));
  }
  for (const name of ['spinning', 'sleeping'] as const) {
    const cpu = readings[name].map((r) => r.cpuMs);
    const run = readings[name].map((r) => r.runMs);
    console.log(`| ${gapMs} ms | ${name} | ${show(cpu)} | ${show(run)} |`);
  }
  const ratio =
    spread(readings.spinning.map((r) => r.cpuMs)).median / spread(readings.sleeping.map((r) => r.cpuMs)).median;
  console.log(`| ${gapMs} ms | spinning / sleeping, CPU (medians) | ${ratio.toFixed(2)}× | |`);
}
await Promise.all(Object.values(engines).map((engine) => engine.close()));
