// Prepared for the GPU machine (bench/gpu/README.md), bundled by bundle.sh; runs on the CPU too:
//   node .gpu-bundle/dist/sampler-full.mjs --dir .gpu-bundle/mindalle-full --device cuda [--rows 1,4,16,64]
// minDALL-E's sample_loop graph at full size (42 layers, width 1536, 256 tokens a row) on one
// session: its creation time, then tokens/s at each row count (best of 2 runs after a warm-up)
// and the GPU's used memory after each (nvidia-smi), as JSON lines. `--dir` holds the graph,
// the pack's manifest.json (for the geometry) and generator.weights (mindalle_full_weights.py);
// the rest of the pack (decoder, CLIP) is not needed, so the manifest's checksums are not read.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDevice, silentLog } from '../../src/models/index.js';
import type { GeneratingManifest } from '../../src/models/manifest.js';
import { createSession } from '../../src/models/providers.js';
import { timed } from '../timing.js';
import { timeSampleLoop } from './sample-loop-timing.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '.gpu-bundle/mindalle-full' },
    device: { type: 'string', default: 'cuda' },
    rows: { type: 'string', default: '1,4,16,64' },
  },
});
const device = parseDevice(values.device);
const log = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

function gpuMemoryUsedMiB(): number | null {
  if (device.kind !== 'cuda') return null;
  const out = execFileSync('nvidia-smi', [
    '--query-gpu=memory.used',
    '--format=csv,noheader,nounits',
    '-i',
    String(device.deviceId),
  ]);
  return Number(out.toString().trim());
}

const m = JSON.parse(await readFile(join(values.dir, 'manifest.json'), 'utf8')) as GeneratingManifest;
const before = gpuMemoryUsedMiB();
const settings = { device, allowCpuFallback: false };
const graph = join(values.dir, m.generator.graphs.sample_loop!);
const [created, loadMs] = await timed(() => createSession(graph, settings, silentLog, 'mindalle-full/sample_loop'));
log({
  graph,
  provider: created.provider,
  load_ms: Math.round(loadMs),
  gpu_used_mib: { before, after_load: gpuMemoryUsedMiB() },
});
// Any prompt: the graph's cost does not depend on the text ids.
const textIds = new BigInt64Array(m.geometry.text_length).fill(BigInt(m.generator.text_pad_id));
for (const rows of values.rows.split(',').map(Number)) {
  const { ms, tokensPerS } = await timeSampleLoop(created.session, m, textIds, rows);
  log({
    rows,
    ms: Math.round(ms),
    ms_per_candidate: Math.round(ms / rows),
    tokens_per_s: Math.round(tokensPerS),
    gpu_used_mib: gpuMemoryUsedMiB(),
  });
}
await created.session.release();
