// npm run bench:models [-- --device cpu|cuda|cuda:N --pack demo-shapes --threads N]
//                        [--python /usr/bin/python3] [--reference-state FILE.pt] [--root DIR]
// Engine start-up (every file hashed, or looked up in the records of files verified), sampler
// tokens per second (host loop and sample_loop graph), one 512-candidate generation
// end to end, and CLIP image-encoder images per second by batch size. Then the PyTorch
// reference (training/eval/bench_reference.py) on the same weights and device, and the ratios.
// The reference reads the pack's weights from a PyTorch state file (training.pack.weights), so
// that a Python without the onnx package runs it: --reference-state gives one (bench/gpu/README.md),
// else one is saved from the pack's graphs first.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { createEngine, loadPack, parseDevice, type DeviceName, silentLog } from '../src/models/index.js';
import { Pack } from '../src/models/packs.js';
import { candidateSeed } from '../src/models/rng.js';
import { rowsOf, sampleChunkHost, sampleChunkKv, sampleChunkLoop } from '../src/models/sampler.js';
import type { SamplerPath } from '../src/models/manifest.js';
import { generatorText } from '../src/models/tokenizers.js';
import { type PythonRun, runPythonReference, savePackState } from './python-reference.js';
import { compareInt8 } from './int8.js';
import { startupMs } from './startup.js';
import { bestMs, fmt, timed } from './timing.js';

const SAMPLER_BATCH = 64;
const CLIP_BATCHES = [1, 16, 64];

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    pack: { type: 'string', default: 'demo-shapes' },
    threads: { type: 'string' },
    candidates: { type: 'string', default: '512' },
    python: { type: 'string', default: '/usr/bin/python3' },
    'reference-state': { type: 'string' },
    // The pack's int8 copy (python3 -m training.quantize); the demo pack's is a test fixture.
    int8: { type: 'string' },
    // The repository (packs/, training/); a bundled copy of this file lives elsewhere.
    root: { type: 'string', default: fileURLToPath(new URL('../', import.meta.url)) },
  },
});
const root = values.root.endsWith('/') ? values.root : `${values.root}/`;
const device = parseDevice(values.device);
const cpuThreads = values.threads ? Number(values.threads) : undefined;
// On CUDA, one profiled run per session shows where its kernels really ran.
const settings = { device, allowCpuFallback: false, cpuThreads, probePlacement: device.kind === 'cuda' };

async function samplerTokensPerSecond(pack: Pack, path: SamplerPath): Promise<number> {
  const m = pack.generating;
  const N = m.geometry.image_grid[0] * m.geometry.image_grid[1];
  const d = m.generator.sampling_defaults;
  const sample =
    path === 'kv'
      ? sampleChunkKv.bind(null, { kvStep: await pack.session('kv_step') })
      : path === 'graph'
        ? sampleChunkLoop.bind(null, { sampleLoop: await pack.session('sample_loop') })
        : sampleChunkHost.bind(null, { prefill: await pack.session('prefill'), step: await pack.session('step') });
  const text = generatorText(
    await pack.tokenizer('generator'),
    'a red circle above a blue square',
    m.geometry.text_length,
    m.generator.text_pad_id,
  );
  const chunk = (seed: number) =>
    sample({
      rows: rowsOf(
        text.ids,
        Array.from({ length: SAMPLER_BATCH }, (_, i) => candidateSeed(seed, i)),
        { topK: d.top_k, temperature: d.temperature, topP: d.top_p ?? 1 },
      ),
      imageTokens: N,
      codebookSize: m.geometry.codebook_size,
      checkpoint() {},
    });
  await chunk(0); // warm-up: first-run allocations
  const ms = await bestMs(async (round) => {
    await chunk(2 * round + 1);
    await chunk(2 * round + 2);
  });
  return (2 * SAMPLER_BATCH * N) / (ms / 1000);
}

async function clipImagesPerSecond(pack: Pack): Promise<Record<string, number>> {
  const session = await pack.session('clip_image');
  const size = pack.manifest.clip.preprocess.size;
  const rates: Record<string, number> = {};
  for (const batch of CLIP_BATCHES) {
    const input = new ort.Tensor(
      'float32',
      Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.sin(i)),
      [batch, 3, size, size],
    );
    await session.run({ pixel_values: input });
    const runs = Math.max(3, Math.ceil(256 / batch));
    const ms = await bestMs(async () => {
      for (let i = 0; i < runs; i++) await session.run({ pixel_values: input });
    });
    rates[batch] = (runs * batch) / (ms / 1000);
  }
  return rates;
}

interface Reference {
  sampler_tokens_per_s: number;
  clip_images_per_s: Record<string, number>;
  [key: string]: unknown;
}

// Same pack, same chunk of candidates, same device and thread count as onnxruntime here.
async function pythonReference(packName: string): Promise<Reference | undefined> {
  if (!existsSync(`${root}training/eval/bench_reference.py`)) return undefined;
  const run: PythonRun = { python: values.python, root, device, cpuThreads };
  if (values['reference-state']) return referenceOn(run, packName, values['reference-state']);
  const scratch = await mkdtemp(join(tmpdir(), 'bench-reference-'));
  try {
    const state = join(scratch, `${packName}.pt`);
    await savePackState(run, `packs/${packName}`, state);
    return await referenceOn(run, packName, state);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function referenceOn(run: PythonRun, packName: string, state: string): Promise<Reference> {
  const { result, stderr } = await runPythonReference<Reference>(run, 'training.eval.bench_reference', [
    '--pack',
    `packs/${packName}`,
    '--state',
    state,
    '--candidates',
    String(2 * SAMPLER_BATCH),
    '--batch',
    String(SAMPLER_BATCH),
  ]);
  if (stderr.trim()) console.log(`PyTorch reference: ${stderr.trim()}`);
  return result;
}

async function main(): Promise<void> {
  const startup = await startupMs(`${root}packs/${values.pack}`, values.device as DeviceName, cpuThreads);
  console.log(
    `engine start-up (${values.pack}, both threads, every session): ${(startup.hashingMs / 1000).toFixed(2)} s hashing every file, ${(startup.recordedMs / 1000).toFixed(2)} s with the files' versions recorded; verifying the pack ${fmt(startup.verifyHashingMs)} ms against ${fmt(startup.verifyRecordedMs)} ms`,
  );
  const pack = new Pack(await loadPack(`${root}packs/${values.pack}`), settings, silentLog);
  await pack.createAll();
  console.log(
    `pack ${pack.name} ${pack.manifest.version}; onnxruntime-node ${ort.env.versions.common}; providers ${JSON.stringify(pack.providers)}; cpu threads ${cpuThreads ?? 'default'}`,
  );

  const host = await samplerTokensPerSecond(pack, 'host');
  const kv = pack.hasGraph('kv_step') ? await samplerTokensPerSecond(pack, 'kv') : undefined;
  const graph = pack.hasGraph('sample_loop') ? await samplerTokensPerSecond(pack, 'graph') : undefined;
  console.log(
    `sampler, batch ${SAMPLER_BATCH}: host loop ${fmt(host)} tokens/s${kv ? `, kv_step ${fmt(kv)} tokens/s` : ''}${graph ? `, sample_loop graph ${fmt(graph)} tokens/s` : ''}`,
  );
  const clip = await clipImagesPerSecond(pack);
  console.log(`CLIP image encoder: ${CLIP_BATCHES.map((b) => `batch ${b} ${fmt(clip[b])} images/s`).join(', ')}`);
  await pack.release();

  const candidates = Number(values.candidates);
  const engine = await createEngine({
    modelsDir: `${root}packs`,
    defaultPack: pack.name,
    device: values.device as DeviceName,
    cpuThreads,
    logger: pino({ level: 'warn' }),
  });
  const [result, ms] = await timed(() =>
    engine.generate({ prompt: 'a red circle above a blue square', seed: 1, candidates, n: Math.min(32, candidates) }),
  );
  await engine.close();
  const t = result.timings;
  console.log(
    `generation of ${candidates} candidates (keep ${result.images.length}, ${result.sampler} sampler): ${(ms / 1000).toFixed(2)} s — sampling ${(t.sampleMs / 1000).toFixed(2)} s, decoding ${(t.decodeMs / 1000).toFixed(2)} s, reranking ${(t.rerankMs / 1000).toFixed(2)} s`,
  );

  const int8Dir =
    values.int8 ?? (values.pack === 'demo-shapes' ? `${root}test/fixtures/packs/demo-shapes-int8` : undefined);
  if (int8Dir && existsSync(int8Dir)) {
    const c = await compareInt8(`${root}packs/${values.pack}`, int8Dir, values.device as DeviceName, 64, cpuThreads);
    const { float32, int8 } = c.secondsPerCandidate;
    console.log(
      `int8 against float32, same run, interleaved: generation of 64 candidates ${(1000 * float32).toFixed(1)} ms/candidate float32, ${(1000 * int8).toFixed(1)} ms int8 (${(float32 / int8).toFixed(2)}x); CLIP images/s at batch 64 ${fmt(c.clipImagesPerSecond.float32)} float32, ${fmt(c.clipImagesPerSecond.int8)} int8 (${(c.clipImagesPerSecond.int8 / c.clipImagesPerSecond.float32).toFixed(2)}x)`,
    );
  }

  const reference = await pythonReference(pack.name);
  if (!reference) {
    console.log('PyTorch reference: training/eval/bench_reference.py not found, no ratios');
    return;
  }
  console.log(`PyTorch reference: ${JSON.stringify(reference)}`);
  console.log(
    `ratio sampler (onnxruntime host loop / PyTorch): ${(host / reference.sampler_tokens_per_s).toFixed(2)}x${graph ? `; sample_loop graph / PyTorch: ${(graph / reference.sampler_tokens_per_s).toFixed(2)}x` : ''}`,
  );
  for (const b of CLIP_BATCHES) {
    const theirs = reference.clip_images_per_s[b];
    if (theirs)
      console.log(`ratio CLIP images/s batch ${b} (onnxruntime / PyTorch): ${(clip[b] / theirs).toFixed(2)}x`);
  }
}

main().catch((error: Error) => {
  console.error(error);
  process.exitCode = 1;
});
