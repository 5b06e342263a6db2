// Checks a pack with onnxruntime-node: schema and checksums, then that the sample_loop
// graph draws the same tokens as prefill + step + the contract's sampling rule on the host.
// Usage: node training/check_onnx.mjs packs/demo-shapes [--steps N]
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import Ajv2020 from 'ajv/dist/2020.js';

const packDir = process.argv[2];
const manifest = JSON.parse(readFileSync(join(packDir, 'manifest.json'), 'utf8'));
const schema = JSON.parse(readFileSync(new URL('../packs/manifest.schema.json', import.meta.url), 'utf8'));

function check(condition, message) {
  if (!condition) throw new Error(`${packDir}: ${message}`);
}

function checkManifest() {
  const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
  check(validate(manifest), `manifest invalid: ${JSON.stringify(validate.errors)}`);
  for (const [name, entry] of Object.entries(manifest.files)) {
    const bytes = readFileSync(join(packDir, name));
    check(bytes.length === entry.bytes, `${name} size`);
    check(createHash('sha256').update(bytes).digest('hex') === entry.sha256, `${name} sha256`);
  }
}

// The contract's sampling rule for one row of logits.
export function sampleRow(logits, u, topK, temperature, topP) {
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, topK);
  const scaled = order.map((i) => logits[i] / temperature);
  const max = scaled[0];
  const exps = scaled.map((z) => Math.exp(z - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  let probs = exps.map((e) => e / sum);
  if (topP < 1) {
    let before = 0;
    probs = probs.map((p) => { const kept = before < topP ? p : 0; before += p; return kept; });
  }
  const cumulative = [];
  probs.reduce((acc, p, j) => (cumulative[j] = acc + p), 0);
  const threshold = u * cumulative[cumulative.length - 1];
  const j = cumulative.findIndex((c) => c > threshold);
  return order[j === -1 ? order.length - 1 : j];
}

function uniformsFor(batch, n, seed) {
  let state = seed >>> 0;
  return Float32Array.from({ length: batch * n }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  });
}

async function session(file) {
  return ort.InferenceSession.create(join(packDir, file));
}

// Row b samples with settings[b]; a schema-1 loop takes one setting for the whole batch.
async function hostSample(text, uniforms, batch, n, settings) {
  const { codebook_size: k } = manifest.geometry;
  const prefill = await session(manifest.generator.graphs.prefill);
  const step = await session(manifest.generator.graphs.step);
  let out = await prefill.run({ text_tokens: text });
  const tokens = new BigInt64Array(batch * n);
  for (let i = 0; i < n; i++) {
    const logits = out.logits.data;
    const picked = new BigInt64Array(batch);
    for (let b = 0; b < batch; b++) {
      const row = Array.from(logits.subarray(b * k, (b + 1) * k));
      const { topK, temperature, topP } = settings[b];
      picked[b] = BigInt(sampleRow(row, uniforms[b * n + i], topK, temperature, topP));
      tokens[b * n + i] = picked[b];
    }
    if (i + 1 < n) out = await step.run({ image_token: new ort.Tensor('int64', picked, [batch, 1]), past_kv: out.present_kv });
  }
  return tokens;
}

function settingInputs(settings) {
  const rows = manifest.schema_version >= 2 ? settings : settings.slice(0, 1);
  return {
    top_k: new ort.Tensor('int64', BigInt64Array.from(rows, (s) => BigInt(s.topK)), [rows.length]),
    temperature: new ort.Tensor('float32', Float32Array.from(rows, (s) => s.temperature), [rows.length]),
    top_p: new ort.Tensor('float32', Float32Array.from(rows, (s) => s.topP), [rows.length]),
  };
}

// Rows with different prompts (and, from schema 2, different settings) in one run.
async function checkSampleLoop(settings) {
  const { text_length: t, image_grid: [rows, cols] } = manifest.geometry;
  const n = rows * cols;
  const batch = settings.length;
  const text = new ort.Tensor('int64', BigInt64Array.from({ length: batch * t }, (_, i) => BigInt((i * (7 + Math.floor(i / t))) % 40)), [batch, t]);
  const uniforms = uniformsFor(batch, n, 1234);
  const host = await hostSample(text, uniforms, batch, n, settings);
  const loop = await session(manifest.generator.graphs.sample_loop);
  // From schema 4 the loop takes kept tokens; -1 everywhere keeps none.
  const keep = loop.inputNames.includes('keep') ? { keep: new ort.Tensor('int64', new BigInt64Array(batch * n).fill(-1n), [batch, n]) } : {};
  const out = await loop.run({ text_tokens: text, uniforms: new ort.Tensor('float32', uniforms, [batch, n]), ...settingInputs(settings), ...keep });
  const got = out.image_tokens.data;
  let same = 0;
  for (let i = 0; i < got.length; i++) same += got[i] === host[i] ? 1 : 0;
  const label = settings.map((s) => `${s.topK}/${s.temperature}/${s.topP}`).join(', ');
  check(same === got.length, `sample_loop matched host sampling on ${same}/${got.length} tokens (top_k/temperature/top_p ${label})`);
  console.log(`sample_loop == prefill+step+rule: ${got.length} tokens, ${batch} rows, top_k/temperature/top_p ${label}`);
}

async function checkDecoderAndClip() {
  const { image_grid: [rows, cols], image_size: [h, w], codebook_size: k } = manifest.geometry;
  const decoder = await session(manifest.decoder.graph);
  const tokens = BigInt64Array.from({ length: 3 * rows * cols }, (_, i) => BigInt((i * 13) % k));
  const { pixels } = await decoder.run({ image_tokens: new ort.Tensor('int64', tokens, [3, rows * cols]) });
  check(pixels.type === 'uint8' && pixels.dims.join() === [3, h, w, 3].join(), `decoder output ${pixels.type} ${pixels.dims}`);
  const { size } = manifest.clip.preprocess;
  const image = await session(manifest.clip.graphs.image);
  const { image_embeds: e } = await image.run({ pixel_values: new ort.Tensor('float32', new Float32Array(3 * 3 * size * size), [3, 3, size, size]) });
  check(e.dims.join() === [3, manifest.clip.embed_dim].join(), `image_embeds ${e.dims}`);
  const c = manifest.clip.context_length;
  const ids = BigInt64Array.from({ length: 2 * c }, (_, i) => BigInt(i % c === 0 ? manifest.clip.bos_id : i % c === 3 ? manifest.clip.eos_id : 5));
  const text = await session(manifest.clip.graphs.text);
  const { text_embeds: te } = await text.run({ input_ids: new ort.Tensor('int64', ids, [2, c]) });
  check(te.dims.join() === [2, manifest.clip.embed_dim].join(), `text_embeds ${te.dims}`);
  console.log('decoder and CLIP graphs run at batch 3/2 with the contract shapes');
}

checkManifest();
console.log(`${manifest.name}: manifest valid, ${Object.keys(manifest.files).length} files match their sha256`);
await checkDecoderAndClip();
if (manifest.generator.graphs.sample_loop) {
  const defaults = { topK: manifest.generator.sampling_defaults.top_k, temperature: 1.0, topP: 1.0 };
  const nucleus = { topK: 16, temperature: 0.7, topP: 0.8 };
  await checkSampleLoop([defaults, defaults]);
  await checkSampleLoop([nucleus, nucleus]);
  if (manifest.schema_version >= 2) await checkSampleLoop([nucleus, defaults, { topK: 3, temperature: 1.3, topP: 1.0 }]);
}
