// npm run bench:clip [-- --device cpu|cuda|cuda:N --threads N --rounds N --python /usr/bin/python3 --root DIR]
// A real-size CLIP: ViT-B/32 with seeded random weights in OpenAI's layout, exported into a
// pack by training/export/openai_clip_pack.py (training/eval/bench_openai_clip.py builds it and measures
// PyTorch on the same weights and device), and its int8 copy (python3 -m training.quantize).
// Then, in interleaved rounds (the order alternating), each pack through onnxruntime-node against
// transformers.js on the same ONNX files and the same onnxruntime-node (bench/transformers-js.ts):
// image embeddings from PNG bytes, each library preprocessing its own way, and image and text
// embeddings from prepared tensors, by batch size; PyTorch beside them; how far int8's embeddings
// move from float32's; and zero-shot classification through the engine (decode, preprocess,
// 7 templates per label). The int8 pack and transformers.js run on the CPU only.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { createEngine, loadPack, parseDevice, type DeviceName, type PackInfo, silentLog } from '../src/models/index.js';
import { CLIP_GRAPHS, Pack } from '../src/models/packs.js';
import { preprocessEncoded, DEFAULT_MAX_IMAGE_PIXELS } from '../src/models/preprocess.js';
import { clipText } from '../src/models/tokenizers.js';
import { runPythonReference } from './python-reference.js';
import { bestMs, fmt, ROUNDS, timed } from './timing.js';
import * as tjs from './transformers-js.js';

const BATCHES = [1, 8, 32];
const LARGEST = Math.max(...BATCHES);
const LABELS = ['cat', 'dog', 'red square', 'car', 'tree'];
/** The issue's goal: the int8 pack at least this many times transformers.js's rate, at every batch. */
const GOAL = 1.5;

const { values } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    threads: { type: 'string' },
    rounds: { type: 'string', default: String(ROUNDS) },
    python: { type: 'string', default: '/usr/bin/python3' },
    root: { type: 'string', default: fileURLToPath(new URL('../', import.meta.url)) },
  },
});
const root = values.root.endsWith('/') ? values.root : `${values.root}/`;
const device = parseDevice(values.device);
const cpu = device.kind === 'cpu';
const cpuThreads = values.threads ? Number(values.threads) : undefined;
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds ${values.rounds}: a whole number ≥ 1`);

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

async function quantize(src: string, out: string): Promise<void> {
  await promisify(execFile)(values.python, ['-m', 'training.quantize', src, '--out', out], {
    cwd: root,
    env: { ...process.env, PYTHONPATH: root },
  });
}

/**
 * Distinct 640×480 PNGs, under 1 MB each as photos are: per image and channel a colour wave
 * of its own level, contrast, direction and frequency, plus a little noise (seeded: the same every run).
 */
async function pngs(count: number): Promise<Buffer[]> {
  const [width, height] = [640, 480];
  let seed = 1;
  const random = () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  return Promise.all(
    Array.from({ length: count }, () => {
      const waves = Array.from({ length: 3 }, () => ({
        level: 40 + 170 * random(),
        amplitude: 20 + 60 * random(),
        fx: (random() - 0.5) / 8,
        fy: (random() - 0.5) / 8,
        phase: 6.3 * random(),
      }));
      const raw = Buffer.alloc(width * height * 3);
      for (let i = 0; i < width * height; i++) {
        const [x, y] = [i % width, Math.floor(i / width)];
        waves.forEach((w, c) => {
          raw[i * 3 + c] = w.level + w.amplitude * Math.sin(w.fx * x + w.fy * y + w.phase) + 12 * random();
        });
      }
      return sharp(raw, { raw: { width, height, channels: 3 } })
        .png()
        .toBuffer();
    }),
  );
}

/** Embeddings [batch × E] of the first `batch` inputs. */
type Run = (batch: number) => Promise<Float32Array>;
interface Row {
  label: string;
  run: Run;
}
interface Group {
  title: string;
  unit: string;
  rows: Row[];
  /** PyTorch's rate by batch, measured before the rounds; absent for end to end. */
  pytorch?: Record<string, number>;
}

/** Calls per reading: batch 1 is repeated so that no reading is a single short call. */
const callsFor = (batch: number) => Math.max(1, Math.round(8 / batch));

/**
 * Items per second of every row at every batch, one reading per round: within a round each batch
 * runs every row of its group back to back, in an order that alternates between rounds, so that a
 * shared machine's noise falls on all of them. A first call of each row and batch, not timed,
 * gives the largest batch's embeddings for the quality lines.
 */
async function measure(groups: Group[]): Promise<{
  rates: Map<Row, Record<number, number[]>>;
  outputs: Map<Row, Float32Array>;
}> {
  const rates = new Map<Row, Record<number, number[]>>();
  const outputs = new Map<Row, Float32Array>();
  for (const group of groups) {
    for (const row of group.rows) {
      rates.set(row, Object.fromEntries(BATCHES.map((b) => [b, []])));
      for (const batch of BATCHES) {
        const out = await row.run(batch);
        if (batch === LARGEST) outputs.set(row, out);
      }
    }
  }
  for (let round = 0; round < rounds; round++) {
    for (const group of groups) {
      for (const batch of BATCHES) {
        const order = round % 2 === 0 ? group.rows : [...group.rows].reverse();
        for (const row of order) {
          const calls = callsFor(batch);
          const [, ms] = await timed(async () => {
            for (let i = 0; i < calls; i++) await row.run(batch);
          });
          rates.get(row)![batch].push((calls * batch) / (ms / 1000));
        }
      }
    }
    console.log(`round ${round + 1} of ${rounds} done, load average ${loadavg()[0].toFixed(1)}`);
  }
  return { rates, outputs };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const spread = (xs: number[], f: (x: number) => string) =>
  `${f(Math.min(...xs))} / ${f(median(xs))} / ${f(Math.max(...xs))}`;
const times = (x: number) => `${x.toFixed(2)}×`;

/** The mean row of [n × E] embeddings. */
function meanRow(e: Float32Array, width: number): Float32Array<ArrayBufferLike> {
  const mean = new Float32Array(width);
  for (let i = 0; i < e.length; i++) mean[i % width] += e[i] / (e.length / width);
  return mean;
}

/** Cosine of each pair of rows of two [n × E] embeddings, `centre` taken from both first: min and mean. */
function cosines(
  a: Float32Array,
  b: Float32Array,
  width: number,
  centre: Float32Array<ArrayBufferLike> = new Float32Array(width),
): { min: number; mean: number } {
  const all: number[] = [];
  for (let r = 0; r < a.length / width; r++) {
    let [ab, aa, bb] = [0, 0, 0];
    for (let i = 0; i < width; i++) {
      const [x, y] = [a[r * width + i] - centre[i], b[r * width + i] - centre[i]];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    all.push(ab / Math.sqrt(aa * bb));
  }
  return { min: Math.min(...all), mean: all.reduce((s, x) => s + x, 0) / all.length };
}
const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
const cosineText = ({ min, mean }: { min: number; mean: number }) => `min ${min.toFixed(4)}, mean ${mean.toFixed(4)}`;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-clip-'));
  try {
    console.log(`load average at the start: ${load()}`);
    const [reference, buildMs] = await timed(() => buildPack(dir));
    console.log(
      `ViT-B/32 (random weights) built and exported in ${(buildMs / 1000).toFixed(1)} s (export ${reference.export_s} s)`,
    );
    const floatInfo = await loadPack(join(dir, 'packs', reference.pack));
    let int8Info: PackInfo | undefined;
    if (cpu) {
      const [, quantizeMs] = await timed(() => quantize(floatInfo.dir, join(dir, 'packs', `${reference.pack}-int8`)));
      int8Info = await loadPack(join(dir, 'packs', `${reference.pack}-int8`));
      console.log(`int8 copy (python3 -m training.quantize) in ${(quantizeMs / 1000).toFixed(1)} s`);
    } else {
      console.log('on CUDA: float32 only (int8 is the CPU format; transformers.js is measured on the CPU)');
    }

    const settings = { device, allowCpuFallback: false, cpuThreads, probePlacement: device.kind === 'cuda' };
    const packs = [floatInfo, ...(int8Info ? [int8Info] : [])].map((info) => new Pack(info, settings, silentLog));
    const [, loadMs] = await timed(async () => {
      for (const pack of packs) await pack.createAll(CLIP_GRAPHS);
    });
    const clip = floatInfo.manifest.clip;
    const { size } = clip.preprocess;
    const context = clip.context_length;
    console.log(
      `packs ${packs.map((p) => p.name).join(', ')}: checksums, sessions and tokenizers in ${(loadMs / 1000).toFixed(1)} s; onnxruntime-node ${ort.env.versions.common}; providers ${JSON.stringify(packs[0].providers)}`,
    );

    const engine = await createEngine({
      modelsDir: join(dir, 'packs'),
      device: values.device as DeviceName,
      cpuThreads,
      logger: silentLog,
    });

    // The same inputs for everyone: PNGs; pixels the pack's way; ids the pack's way (which the
    // library's tokenizer is checked to give too).
    const images = await pngs(LARGEST);
    const stride = 3 * size * size;
    const pixels = new Float32Array(LARGEST * stride);
    await Promise.all(
      images.map((png, i) => preprocessEncoded(png, clip.preprocess, i, DEFAULT_MAX_IMAGE_PIXELS, pixels, i * stride)),
    );
    const texts = LABELS.flatMap((label) => clip.templates.map((t) => t.replace('{}', label))).slice(0, LARGEST);
    const tokenizer = await packs[0].tokenizer('clip');
    const layout = { contextLength: context, bosId: clip.bos_id, eosId: clip.eos_id, padId: clip.pad_id };
    const ids = new BigInt64Array(LARGEST * context);
    texts.forEach((text, i) => ids.set(clipText(tokenizer, text, layout), i * context));

    const ours = (pack: Pack) => ({
      image: async (batch: number) => {
        const input = new ort.Tensor('float32', pixels.subarray(0, batch * stride), [batch, 3, size, size]);
        const out = await (await pack.session('clip_image')).run({ pixel_values: input });
        return out.image_embeds.data as Float32Array;
      },
      text: async (batch: number) => {
        const input = new ort.Tensor('int64', ids.subarray(0, batch * context), [batch, context]);
        const out = await (await pack.session('clip_text')).run({ input_ids: input });
        return out.text_embeds.data as Float32Array;
      },
      encoded: async (batch: number) => {
        const embeddings = await engine.embedImages(images.slice(0, batch), pack.name);
        const flat = new Float32Array(batch * clip.embed_dim);
        embeddings.forEach((e, i) => flat.set(e, i * clip.embed_dim));
        return flat;
      },
    });
    const [float32, int8] = packs.map(ours);
    const groups: Group[] = [
      { title: 'image, PNG → embedding', unit: 'images/s', rows: [] },
      { title: 'image, prepared tensor', unit: 'images/s', rows: [], pytorch: reference.images_per_s },
      { title: 'text, prepared ids', unit: 'texts/s', rows: [], pytorch: reference.texts_per_s },
    ];
    const kinds = ['encoded', 'image', 'text'] as const;
    kinds.forEach((kind, g) => groups[g].rows.push({ label: 'dalle-serve float32', run: float32[kind] }));
    if (int8) kinds.forEach((kind, g) => groups[g].rows.push({ label: 'dalle-serve int8', run: int8[kind] }));

    let peer: tjs.TransformersJs | undefined;
    if (cpu && int8Info) {
      const folder = join(dir, 'transformers-js');
      await tjs.writeModelFolder(folder, floatInfo, int8Info);
      const [lib, tjsMs] = await timed(() => tjs.loadTransformersJs(folder, cpuThreads));
      peer = lib;
      const same = tjs.tokenize(lib, texts, context).every((id, i) => id === ids[i]);
      // A text past the context: the pack cuts its tokens and keeps the end token, whose position
      // an OpenAI-layout text graph reads the embedding from.
      const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
      const keepsEnd = tjs.tokenize(lib, [long], context).includes(BigInt(clip.eos_id));
      console.log(
        `transformers.js ${lib.library.env.version}: folder and 4 sessions in ${(tjsMs / 1000).toFixed(1)} s; its tokenizer gives ${same ? 'the same ids as the pack' : 'OTHER ids than the pack'} for the ${texts.length} texts; a text past ${context} tokens it cuts ${keepsEnd ? 'keeping' : 'WITHOUT'} the end token (the pack keeps it)`,
      );
      for (const weights of ['fp32', 'int8'] as const) {
        const name = `transformers.js, ${weights === 'fp32' ? 'float32' : 'int8'} files`;
        groups[0].rows.push({ label: name, run: (b) => tjs.embedEncoded(lib, weights, images.slice(0, b)) });
        groups[1].rows.push({
          label: name,
          run: (b) => tjs.imageEmbeds(lib, weights, pixels.subarray(0, b * stride), [b, 3, size, size]),
        });
        groups[2].rows.push({
          label: name,
          run: (b) => tjs.textEmbeds(lib, weights, ids.subarray(0, b * context), [b, context]),
        });
      }
    }

    const { rates, outputs } = await measure(groups);
    report(groups, rates);

    const out = (g: number, label: string): Float32Array => {
      const found = groups[g].rows.find((r) => r.label === label);
      const embeddings = found && outputs.get(found);
      if (!embeddings) throw new Error(`no ${label} in ${groups[g].title}`);
      return embeddings;
    };
    const E = clip.embed_dim;
    // Random weights send every image to nearly the same embedding, so each cosine is also given
    // centred (float32's mean embedding of the inputs taken from both), and beside it, for scale,
    // float32 against the next input's embedding.
    const compare = (a: Float32Array, b: Float32Array, base: Float32Array) =>
      `${cosineText(cosines(a, b, E))} (centred ${cosineText(cosines(a, b, E, meanRow(base, E)))})`;
    const next = (e: Float32Array) => compare(e.subarray(0, e.length - E), e.subarray(E), e);
    if (int8) {
      const pair = (g: number) =>
        compare(out(g, 'dalle-serve int8'), out(g, 'dalle-serve float32'), out(g, 'dalle-serve float32'));
      console.log(
        `int8 against float32, cosine of the same input's embeddings (random weights, not a trained ViT-B/32's activations): ${LARGEST} PNGs ${pair(0)}; ${LARGEST} texts ${pair(2)}`,
      );
      console.log(
        `for scale, float32 against the next input's embedding: PNGs ${next(out(0, 'dalle-serve float32'))}; texts ${next(out(2, 'dalle-serve float32'))}`,
      );
    }
    if (peer) {
      const same = (g: number, weights: string) =>
        compare(
          out(g, `transformers.js, ${weights} files`),
          out(g, `dalle-serve ${weights}`),
          out(g, `dalle-serve ${weights}`),
        );
      console.log(
        `transformers.js against dalle-serve, cosine: same pixels ${same(1, 'float32')}, int8 files ${same(1, 'int8')}; same ids ${same(2, 'float32')}; from the PNGs, each preprocessing its own way, ${same(0, 'float32')}`,
      );
    }

    const photo = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#c03030' } })
      .jpeg()
      .toBuffer();
    for (const pack of packs) {
      const classify = () => engine.classify([{ images: [photo], labels: LABELS, model: pack.name }]);
      const [, coldMs] = await timed(classify);
      const warmMs = await bestMs(classify);
      console.log(
        `zero-shot on ${pack.name}, one 640×480 JPEG, ${LABELS.length} labels × 7 templates: ${coldMs.toFixed(0)} ms with the labels new, ${warmMs.toFixed(0)} ms once cached`,
      );
    }
    await engine.close();
    for (const pack of packs) await pack.release();
    console.log(`PyTorch reference: ${JSON.stringify(reference)}`);
    console.log(`load average at the end: ${load()}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The table: each row's rates, min / median / max of the rounds; ratios per round; the goal. */
function report(groups: Group[], rates: Map<Row, Record<number, number[]>>): void {
  const cells = (xs: (b: number) => string) => BATCHES.map(xs).join(' | ');
  const lines = [
    `| ${rounds} rounds, min / median / max | ${BATCHES.map((b) => `batch ${b}`).join(' | ')} |`,
    `| --- | ${BATCHES.map(() => '---').join(' | ')} |`,
  ];
  const goals: string[] = [];
  for (const group of groups) {
    const find = (label: string) => group.rows.find((r) => r.label === label);
    for (const row of group.rows) {
      lines.push(`| ${group.title}: ${row.label}, ${group.unit} | ${cells((b) => spread(rates.get(row)![b], fmt))} |`);
    }
    if (group.pytorch) {
      const torch = group.pytorch;
      lines.push(`| ${group.title}: PyTorch, best of 3 before the rounds | ${cells((b) => fmt(torch[b]))} |`);
      for (const label of ['dalle-serve float32', 'dalle-serve int8']) {
        const ours = find(label);
        if (ours) {
          const ratio = (b: number) => times(median(rates.get(ours)![b]) / torch[b]);
          lines.push(`| ${group.title}: ${label} / PyTorch (median round) | ${cells(ratio)} |`);
        }
      }
    }
    const pairs = [
      ['dalle-serve int8', 'transformers.js, float32 files'],
      ['dalle-serve int8', 'transformers.js, int8 files'],
      ['dalle-serve float32', 'transformers.js, float32 files'],
    ];
    for (const [a, b] of pairs) {
      const [ours, theirs] = [find(a), find(b)];
      if (!ours || !theirs) continue;
      const perRound = (batch: number) => rates.get(ours)![batch].map((x, r) => x / rates.get(theirs)![batch][r]);
      lines.push(`| ${group.title}: ${a} / ${b}, per round | ${cells((batch) => spread(perRound(batch), times))} |`);
      if (a === 'dalle-serve int8' && b === 'transformers.js, float32 files') {
        const medians = BATCHES.map((batch) => median(perRound(batch)));
        const met = medians.every((m) => m >= GOAL);
        goals.push(
          `${group.title}: ${medians.map(times).join(' / ')} at batch ${BATCHES.join(' / ')} (median round): ${met ? 'met' : 'missed'}`,
        );
      }
    }
  }
  console.log(lines.join('\n'));
  if (goals.length) {
    console.log(`goal (issue #30): the int8 pack ≥ ${GOAL}× transformers.js on the float32 files at every batch`);
    for (const goal of goals) console.log(`  ${goal}`);
  }
}

main().catch((error: Error) => {
  console.error(error);
  process.exitCode = 1;
});
