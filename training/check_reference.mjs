// Compares a pack's graphs under onnxruntime-node with the PyTorch reference fixture.
// Usage: node training/check_reference.mjs packs/demo-shapes [test/fixtures/reference] [--device cuda[:N]]
// On CUDA the fixture's tolerances are scaled by CUDA_TOLERANCE_SCALE: its MatMuls may use
// TF32, whose 10-bit mantissa is far coarser than the CPU's float32.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import sharp from 'sharp';

const CUDA_TOLERANCE_SCALE = 20;
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { device: { type: 'string', default: 'cpu' } },
});
const [packDir, fixtureDir = 'test/fixtures/reference'] = positionals;
const cuda = /^cuda(:\d+)?$/.exec(values.device);
if (!cuda && values.device !== 'cpu') throw new Error(`--device must be cpu, cuda or cuda:N, not ${values.device}`);
const executionProviders = cuda ? [{ name: 'cuda', deviceId: Number(cuda[1]?.slice(1) ?? 0) }] : ['cpu'];
const scale = cuda ? CUDA_TOLERANCE_SCALE : 1;
const manifest = JSON.parse(readFileSync(join(packDir, 'manifest.json'), 'utf8'));
const ref = JSON.parse(readFileSync(join(fixtureDir, `${manifest.name}.json`), 'utf8'));
for (const key of Object.keys(ref.tolerance)) ref.tolerance[key] *= scale;
console.log(
  `onnxruntime-node ${ort.env.versions.common} on ${values.device}; tolerances ${JSON.stringify(ref.tolerance)}`,
);
const session = (file) => ort.InferenceSession.create(join(packDir, file), { executionProviders });
const int64 = (rows) =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

function maxDiff(got, want, what, tolerance) {
  const flat = want.flat(2);
  let worst = 0;
  flat.forEach((w, i) => {
    worst = Math.max(worst, Math.abs(got[i] - w));
  });
  console.log(`${what}: max |onnx - torch| = ${worst.toExponential(2)}`);
  if (!(worst <= tolerance)) throw new Error(`${what} differs by ${worst} (tolerance ${tolerance})`);
}

for (const [file, sha] of Object.entries(ref.files)) {
  if (manifest.files[file]?.sha256 !== sha) throw new Error(`fixture is stale for ${file}`);
}
const g = ref.generator;
const prefill = await session(manifest.generator.graphs.prefill);
const step = await session(manifest.generator.graphs.step);
let out = await prefill.run({ text_tokens: int64(g.text_tokens) });
maxDiff(out.logits.data, g.prefill_logits, 'prefill logits', ref.tolerance.logits);
for (let k = 0; k < g.step_logits.length; k++) {
  out = await step.run({ image_token: int64(g.step_tokens.map((row) => [row[k]])), past_kv: out.present_kv });
  maxDiff(out.logits.data, g.step_logits[k], `step ${k} logits`, ref.tolerance.logits);
}
const decoder = await session(manifest.decoder.graph);
for (const entry of ref.decoder) {
  const { pixels } = await decoder.run({ image_tokens: int64([entry.image_tokens]) });
  const want = await sharp(join(fixtureDir, entry.png)).raw().toBuffer();
  maxDiff(pixels.data, [Array.from(want)], `decoder ${entry.png}`, ref.tolerance.pixels);
}
const { mean, std, size } = manifest.clip.preprocess;
const image = await session(manifest.clip.graphs.image);
for (const entry of ref.clip_image) {
  const rgb = await sharp(join(fixtureDir, entry.png)).removeAlpha().raw().toBuffer();
  const x = new Float32Array(3 * size * size);
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) x[c * size * size + i] = (rgb[i * 3 + c] / 255 - mean[c]) / std[c];
  }
  const { image_embeds } = await image.run({ pixel_values: new ort.Tensor('float32', x, [1, 3, size, size]) });
  maxDiff(image_embeds.data, [entry.image_embeds], `clip image ${entry.png}`, ref.tolerance.embeds);
}
const text = await session(manifest.clip.graphs.text);
for (const entry of ref.clip_text) {
  const { text_embeds } = await text.run({ input_ids: int64([entry.input_ids]) });
  maxDiff(text_embeds.data, [entry.text_embeds], `clip text "${entry.text}"`, ref.tolerance.embeds);
}
console.log(`${manifest.name}: onnxruntime matches the PyTorch reference`);
