// Checks an exported minDALL-E pack (and optionally dVAE decoder and encoder graphs) with
// onnxruntime-node against upstream's answers (training/tests/make_upstream_fixtures.py): the pack's
// tokenizer.json gives upstream's ids, prefill and step give upstream's logits, the decoder
// upstream's pixels, the encoder upstream's codes (every one: an argmin or argmax has no tolerance).
// Usage: node training/check_upstream.mjs PACK FIXTURE.json [--dvae decoder.onnx] [--dvae-encoder encoder.onnx] [--fp16]
// (--fp16: a pack exported with float16 weights; its logits may differ by 1e-2)
// Prints one JSON line of the largest differences and the count of codes that differ; exits 1 when
// any is over its tolerance, or when the pack has no encoder.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';

const [packDir, fixturePath, ...rest] = process.argv.slice(2);
const option = (name) => (rest.includes(name) ? rest[rest.indexOf(name) + 1] : undefined);
const dvaeGraph = option('--dvae');
const dvaeEncoderGraph = option('--dvae-encoder');
const manifest = JSON.parse(readFileSync(join(packDir, 'manifest.json'), 'utf8'));
const fixture = JSON.parse(readFileSync(fixturePath, 'utf8'));
const LOGIT_TOLERANCE = rest.includes('--fp16') ? 1e-2 : 1e-3;
const PIXEL_TOLERANCE = 1;

const session = (file) => ort.InferenceSession.create(file);
const maxDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
const int64 = (rows) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
const pixelsOf = (entry) => Buffer.from(entry.base64, 'base64');
const uint8 = (entry) => new ort.Tensor('uint8', new Uint8Array(pixelsOf(entry)), entry.shape);
function differing(codes, expected) {
  const flat = expected.flat();
  return Array.from(codes, Number).filter((c, i) => c !== flat[i]).length + Math.abs(codes.length - flat.length);
}

function tokenIds(prompt, length, padId) {
  // As src/models/tokenizers.ts does: no added tokens, no specials, then the contract's padding.
  const json = JSON.parse(readFileSync(join(packDir, manifest.generator.tokenizer), 'utf8'));
  const ids = new Tokenizer({ ...json, added_tokens: [] }, {}).encode(prompt, { add_special_tokens: false }).ids;
  return [...ids.slice(0, length), ...Array(Math.max(0, length - ids.length)).fill(padId)];
}

async function main() {
  const g = manifest.geometry;
  const report = { tokenizer_mismatches: [], prefill: 0, step: 0, decoder: 0, encoder: null };
  fixture.prompts.forEach((prompt, i) => {
    const ids = tokenIds(prompt, g.text_length, manifest.generator.text_pad_id);
    if (JSON.stringify(ids) !== JSON.stringify(fixture.token_ids[i])) report.tokenizer_mismatches.push({ prompt, ids });
  });
  const texts = fixture.text_tokens_rows.map((r) => fixture.token_ids[r]);
  const prefill = await session(join(packDir, manifest.generator.graphs.prefill));
  let out = await prefill.run({ text_tokens: int64(texts) });
  report.prefill = maxDiff(Array.from(out.logits.data), fixture.prefill_logits);
  const step = await session(join(packDir, manifest.generator.graphs.step));
  let kv = out.present_kv;
  for (let k = 0; k < fixture.step_logits.length; k++) {
    out = await step.run({ image_token: int64(fixture.image_path.map((row) => [row[k]])), past_kv: kv });
    report.step = Math.max(report.step, maxDiff(Array.from(out.logits.data), fixture.step_logits[k]));
    kv = out.present_kv;
  }
  const decoder = await session(join(packDir, manifest.decoder.graph));
  const pixels = (await decoder.run({ image_tokens: int64(fixture.image_path) })).pixels.data;
  report.decoder = maxDiff(Array.from(pixels), Array.from(pixelsOf(fixture.decoder_pixels)));
  if (manifest.encoder) {
    const encoder = await session(join(packDir, manifest.encoder.graph));
    const codes = (await encoder.run({ pixels: uint8(fixture.encoder_images) })).image_tokens.data;
    report.encoder = differing(codes, fixture.encoder_codes);
  }
  if (dvaeGraph) {
    const dvae = await session(dvaeGraph);
    const dvaePixels = (await dvae.run({ image_tokens: int64(fixture.dvae_codes) })).pixels.data;
    report.dvae = maxDiff(Array.from(dvaePixels), Array.from(pixelsOf(fixture.dvae_pixels)));
  }
  if (dvaeEncoderGraph) {
    const encoder = await session(dvaeEncoderGraph);
    const codes = (await encoder.run({ pixels: uint8(fixture.dvae_encoder_images) })).image_tokens.data;
    report.dvae_encoder = differing(codes, fixture.dvae_encoder_codes);
  }
  const ok =
    report.tokenizer_mismatches.length === 0 &&
    report.prefill <= LOGIT_TOLERANCE &&
    report.step <= LOGIT_TOLERANCE &&
    report.decoder <= PIXEL_TOLERANCE &&
    report.encoder === 0 &&
    (report.dvae ?? 0) <= PIXEL_TOLERANCE &&
    (report.dvae_encoder ?? 0) === 0;
  console.log(JSON.stringify({ ok, ...report }));
  process.exit(ok ? 0 : 1);
}

await main();
