// tsx bench/loop-memory.ts PACK_DIR [--threads N] [--rows 2] [--runs 1] [--graph sample_loop|kv_step]
// Resident memory of a pack's sampling session (sample_loop, or kv_step run by the engine's
// sampler with its key/value buffers), created as the engine creates it on the CPU, against the
// bytes of the weights it reads (the graph and its external-data files): after creation and after
// each of `runs` runs of `rows` images (onnxruntime's arena settles higher after a few, as in a
// worker that runs batch after batch). One JSON line. A process holds only this session, so the
// difference from `baselineMiB` (the process before it) is the session's.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { silentLog } from '../src/models/index.js';
import { createSession } from '../src/models/providers.js';
import { rowsOf, sampleChunkKv } from '../src/models/sampler.js';
import { timed } from './timing.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string' },
    rows: { type: 'string', default: '2' },
    runs: { type: 'string', default: '1' },
    graph: { type: 'string', default: 'sample_loop' },
  },
});
const [packDir] = positionals;
if (!packDir)
  throw new Error(
    'usage: tsx bench/loop-memory.ts PACK_DIR [--threads N] [--rows 2] [--runs 1] [--graph sample_loop|kv_step]',
  );
const manifest = JSON.parse(readFileSync(join(packDir, 'manifest.json'), 'utf8'));
if (values.graph !== 'sample_loop' && values.graph !== 'kv_step') throw new Error('--graph: sample_loop or kv_step');
const loop: string = manifest.generator.graphs[values.graph];
if (!loop) throw new Error(`this pack has no ${values.graph} graph`);
// The graph and every file it points into (generator.weights and the like); the manifest lists them.
const weightFiles = Object.keys(manifest.files).filter((f) => f === loop || /\.weights$/.test(f));
const weightBytes = weightFiles.reduce((sum, f) => sum + statSync(join(packDir, f)).size, 0);
const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
const rss = () => process.memoryUsage().rss;

const baseline = rss();
const [{ session }, createMs] = await timed(() =>
  createSession(
    join(packDir, loop),
    {
      device: { kind: 'cpu' },
      allowCpuFallback: false,
      ...(values.threads ? { cpuThreads: Number(values.threads) } : {}),
    },
    silentLog,
    values.graph,
  ),
);
const created = rss();
const rows = Number(values.rows);
const { text_length: textLength, image_grid: grid } = manifest.geometry;
const tokens = grid[0] * grid[1];
const int64 = (n: number, value: number) => new ort.Tensor('int64', new BigInt64Array(n).fill(BigInt(value)), [n]);
const feeds = {
  text_tokens: new ort.Tensor('int64', new BigInt64Array(rows * textLength), [rows, textLength]),
  uniforms: new ort.Tensor('float32', new Float32Array(rows * tokens).fill(0.5), [rows, tokens]),
  top_k: int64(rows, manifest.generator.sampling_defaults.top_k),
  temperature: new ort.Tensor('float32', new Float32Array(rows).fill(1), [rows]),
  top_p: new ort.Tensor('float32', new Float32Array(rows).fill(1), [rows]),
  // No token kept: every position sampled (a graph from before schema 4 takes no `keep`).
  ...(session.inputNames.includes('keep')
    ? { keep: new ort.Tensor('int64', new BigInt64Array(rows * tokens).fill(-1n), [rows, tokens]) }
    : {}),
};
// kv_step through the engine's sampler: the same rows, its buffers held in this process.
const kvChunk = {
  rows: rowsOf(
    new BigInt64Array(textLength),
    Array.from({ length: rows }, (_, i) => i),
    { topK: manifest.generator.sampling_defaults.top_k, temperature: 1, topP: 1 },
  ),
  imageTokens: tokens,
  codebookSize: manifest.geometry.codebook_size,
  checkpoint() {},
};
const runsMs: number[] = [];
const afterRunsMiB: number[] = [];
for (let run = 0; run < Number(values.runs); run += 1) {
  const [, ms] = await timed<unknown>(() =>
    values.graph === 'kv_step' ? sampleChunkKv({ kvStep: session }, kvChunk) : session.run(feeds),
  );
  runsMs.push(Math.round(ms));
  afterRunsMiB.push(mib(rss()));
}
console.log(
  JSON.stringify({
    pack: manifest.name,
    graph: values.graph,
    weightFiles,
    weightMiB: mib(weightBytes),
    baselineMiB: mib(baseline),
    createMs: Math.round(createMs),
    afterCreateMiB: mib(created),
    sessionMiB: mib(created - baseline),
    sessionPerWeight: Number(((created - baseline) / weightBytes).toFixed(2)),
    rows,
    runMs: runsMs[0],
    afterRunMiB: afterRunsMiB[0],
    ...(runsMs.length > 1 ? { runsMs, afterRunsMiB } : {}),
    peakMiB: mib(process.resourceUsage().maxRSS * 1024),
  }),
);
await session.release();
