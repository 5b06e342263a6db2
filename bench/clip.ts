// npm run bench:clip [-- --device cpu|cuda|cuda:N --threads N --python /usr/bin/python3 --root DIR]
// A real-size CLIP: ViT-B/32 with seeded random weights in OpenAI's layout, exported into a
// pack by training/export/openai_clip_pack.py (training/eval/bench_openai_clip.py builds it and measures
// PyTorch on the same weights and device). Then onnxruntime-node on that pack: image- and
// text-encoder throughput by batch size, zero-shot classification through the engine
// (decode, preprocess, 7 templates per label), and the ratios against PyTorch.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { createEngine, loadPack, parseDevice, type DeviceName, silentLog } from '../src/models/index.js';
import { CLIP_GRAPHS, Pack } from '../src/models/packs.js';
import { runPythonReference } from './python-reference.js';
import { bestMs, fmt, timed } from './timing.js';

const BATCHES = [1, 8, 32];
const LABELS = ['cat', 'dog', 'red square', 'car', 'tree'];

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    python: { type: 'string', default: '/usr/bin/python3' },
    root: { type: 'string', default: fileURLToPath(new URL('../', import.meta.url)) },
  },
});
const root = values.root.endsWith('/') ? values.root : `${values.root}/`;
const device = parseDevice(values.device);
const cpuThreads = values.threads ? Number(values.threads) : undefined;

interface Reference {
  pack: string;
  export_s: number;
  images_per_s: Record<string, number>;
  texts_per_s: Record<string, number>;
  [key: string]: unknown;
}

async function buildPack(dir: string): Promise<Reference> {
  return (
    await runPythonReference<Reference>(
      { python: values.python, root, device, cpuThreads },
      'training.eval.bench_openai_clip',
      [dir],
    )
  ).result;
}

/** Items per second through one session, for each batch size: best of the rounds, about 1 s each. */
async function perSecond(
  session: ort.InferenceSession,
  feed: (batch: number) => Record<string, ort.Tensor>,
): Promise<Record<string, number>> {
  const rates: Record<string, number> = {};
  for (const batch of BATCHES) {
    const inputs = feed(batch);
    const [, once] = await timed(() => session.run(inputs));
    const runs = Math.max(2, Math.ceil(1000 / Math.max(once, 1)));
    const ms = await bestMs(async () => {
      for (let i = 0; i < runs; i++) await session.run(inputs);
    });
    rates[batch] = (runs * batch) / (ms / 1000);
  }
  return rates;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-clip-'));
  try {
    const [reference, buildMs] = await timed(() => buildPack(dir));
    console.log(
      `ViT-B/32 (random weights) built and exported in ${(buildMs / 1000).toFixed(1)} s (export ${reference.export_s} s)`,
    );
    const packDir = join(dir, 'packs', reference.pack);
    const settings = { device, allowCpuFallback: false, cpuThreads, probePlacement: device.kind === 'cuda' };
    const pack = new Pack(await loadPack(packDir), settings, silentLog);
    const [, loadMs] = await timed(() => pack.createAll(CLIP_GRAPHS));
    const { size, mean } = pack.manifest.clip.preprocess;
    const context = pack.manifest.clip.context_length;
    console.log(
      `pack ${pack.name}: checksums, sessions and tokenizer in ${(loadMs / 1000).toFixed(1)} s; onnxruntime-node ${ort.env.versions.common}; providers ${JSON.stringify(pack.providers)}`,
    );

    const images = await perSecond(await pack.session('clip_image'), (batch) => ({
      pixel_values: new ort.Tensor(
        'float32',
        Float32Array.from({ length: batch * 3 * size * size }, (_, i) => Math.sin(i) - mean[0]),
        [batch, 3, size, size],
      ),
    }));
    const texts = await perSecond(await pack.session('clip_text'), (batch) => {
      const ids = new BigInt64Array(batch * context);
      for (let b = 0; b < batch; b++) {
        ids[b * context] = BigInt(pack.manifest.clip.bos_id);
        for (let i = 1; i < 9; i++) ids[b * context + i] = BigInt(i);
        ids[b * context + 9] = BigInt(pack.manifest.clip.eos_id);
      }
      return { input_ids: new ort.Tensor('int64', ids, [batch, context]) };
    });
    await pack.release();
    console.log(`image encoder: ${BATCHES.map((b) => `batch ${b} ${fmt(images[b])} images/s`).join(', ')}`);
    console.log(`text encoder: ${BATCHES.map((b) => `batch ${b} ${fmt(texts[b])} texts/s`).join(', ')}`);

    const engine = await createEngine({
      modelsDir: join(dir, 'packs'),
      device: values.device as DeviceName,
      cpuThreads,
      logger: silentLog,
    });
    const photo = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#c03030' } })
      .jpeg()
      .toBuffer();
    const classify = () => engine.classify([{ images: [photo], labels: LABELS }]);
    const [, coldMs] = await timed(classify);
    const warmMs = await bestMs(classify);
    await engine.close();
    console.log(
      `zero-shot, one 640×480 JPEG, ${LABELS.length} labels × 7 templates: ${coldMs.toFixed(0)} ms with the labels new, ${warmMs.toFixed(0)} ms once cached`,
    );

    console.log(`PyTorch reference: ${JSON.stringify(reference)}`);
    for (const b of BATCHES) {
      console.log(
        `ratio batch ${b} (onnxruntime / PyTorch): images ${(images[b] / reference.images_per_s[b]).toFixed(2)}x, texts ${(texts[b] / reference.texts_per_s[b]).toFixed(2)}x`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: Error) => {
  console.error(error);
  process.exitCode = 1;
});
