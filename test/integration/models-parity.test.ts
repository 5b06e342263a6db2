// onnxruntime through the inference core against the PyTorch reference fixtures
// (training/eval/reference.py): tokens, prefill and step logits, decoder pixels, encoder codes,
// CLIP embeddings.
// Tolerances come from each fixture: 1e-3 absolute on logits and embeddings, 1 level on pixels.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadPack, silentLog } from '../../src/models/index.js';
import { Clip, l2normalize } from '../../src/models/clip.js';
import { decodeTokens } from '../../src/models/decoder.js';
import { encodePixels } from '../../src/models/encoder.js';
import { Pack } from '../../src/models/packs.js';
import { clipText, generatorText } from '../../src/models/tokenizers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = `${root}test/fixtures/reference/`;

interface Reference {
  files: Record<string, string>;
  tolerance: { logits: number; embeds: number; pixels: number };
  generator: {
    prompts: string[];
    text_tokens: number[][];
    prefill_logits: number[][];
    step_tokens: number[][];
    step_logits: number[][][];
  };
  decoder: { image_tokens: number[]; png: string }[];
  /** Packs with an encoder graph: the codes PyTorch's encoder gives these images. */
  encoder?: { image_tokens: number[]; png: string }[];
  clip_image: { png: string; image_embeds: number[] }[];
  clip_text: { text: string; input_ids: number[]; text_embeds: number[] }[];
}

function maxDiff(got: ArrayLike<number>, want: number[]): number {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  return worst;
}

const int64 = (rows: number[][]) =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0].length]);

for (const name of ['demo-shapes', 'micro-dalle1']) {
  describe(`${name} matches the PyTorch reference`, () => {
    let pack: Pack;
    let ref: Reference;
    before(async () => {
      pack = new Pack(
        await loadPack(`${root}packs/${name}`),
        { device: { kind: 'cpu' }, allowCpuFallback: false },
        silentLog,
      );
      ref = JSON.parse(await readFile(`${fixtures}${name}.json`, 'utf8')) as Reference;
    });
    after(() => pack.release());

    test('the fixture describes the committed files', () => {
      for (const [file, sha256] of Object.entries(ref.files))
        assert.equal(pack.manifest.files[file]?.sha256, sha256, file);
    });

    test('prompt tokens, prefill logits and step logits along a fixed path', async (t) => {
      const m = pack.generating;
      const tokenizer = await pack.tokenizer('generator');
      const g = ref.generator;
      g.prompts.forEach((prompt, i) => {
        assert.deepEqual(
          Array.from(generatorText(tokenizer, prompt, m.geometry.text_length, m.generator.text_pad_id).ids, Number),
          g.text_tokens[i],
        );
      });
      let out = await (await pack.session('prefill')).run({ text_tokens: int64(g.text_tokens) });
      const diffs = [maxDiff(out.logits.data as Float32Array, g.prefill_logits.flat())];
      const step = await pack.session('step');
      for (let k = 0; k < g.step_logits.length; k++) {
        out = await step.run({ image_token: int64(g.step_tokens.map((row) => [row[k]])), past_kv: out.present_kv });
        diffs.push(maxDiff(out.logits.data as Float32Array, g.step_logits[k].flat()));
      }
      t.diagnostic(`max |onnx - torch| logits: ${diffs.map((d) => d.toExponential(1)).join(', ')}`);
      assert.ok(Math.max(...diffs) <= ref.tolerance.logits);
    });

    test('decoder pixels', async () => {
      const decoder = await pack.session('decoder');
      const N = ref.decoder[0].image_tokens.length;
      for (const entry of ref.decoder) {
        const decoded = await decodeTokens(decoder, Int32Array.from(entry.image_tokens), 1, N);
        const want = await sharp(fixtures + entry.png)
          .removeAlpha()
          .raw()
          .toBuffer();
        assert.ok(maxDiff(decoded.pixels, Array.from(want)) <= ref.tolerance.pixels, entry.png);
      }
    });

    test('encoder codes: the same as PyTorch on the same images (or neither has an encoder)', async () => {
      if (!pack.hasGraph('encoder')) {
        assert.equal(ref.encoder, undefined, `${name}: encoder codes in the fixture, no encoder graph in the pack`);
        return;
      }
      assert.ok(ref.encoder, 'the fixture holds the encoder reference');
      const encoder = await pack.session('encoder');
      const size = pack.generating.geometry.image_size as [number, number];
      for (const entry of ref.encoder) {
        const pixels = await sharp(fixtures + entry.png)
          .removeAlpha()
          .raw()
          .toBuffer();
        assert.deepEqual(Array.from(await encodePixels(encoder, new Uint8Array(pixels), 1, size)), entry.image_tokens);
      }
    });

    test('CLIP image embeddings, through the sharp preprocessing', async (t) => {
      const clip = new Clip(pack, 8, 1e8);
      const images = await Promise.all(ref.clip_image.map((e) => readFile(fixtures + e.png)));
      const pixels = await clip.preprocess(images);
      const size = pack.manifest.clip.preprocess.size;
      const raw = await (
        await pack.session('clip_image')
      ).run({ pixel_values: new ort.Tensor('float32', pixels, [images.length, 3, size, size]) });
      const embedded = await clip.embedPixels(pixels, images.length);
      const E = pack.manifest.clip.embed_dim;
      ref.clip_image.forEach((entry, i) => {
        const unnormalised = maxDiff(
          (raw.image_embeds.data as Float32Array).subarray(i * E, (i + 1) * E),
          entry.image_embeds,
        );
        const normalised = maxDiff(embedded[i], Array.from(l2normalize(Float32Array.from(entry.image_embeds))));
        t.diagnostic(
          `${entry.png}: max diff ${unnormalised.toExponential(1)} (normalised ${normalised.toExponential(1)})`,
        );
        assert.ok(unnormalised <= ref.tolerance.embeds && normalised <= ref.tolerance.embeds);
      });
    });

    test('CLIP text ids and embeddings', async () => {
      const clip = new Clip(pack, 8, 1e8);
      const c = pack.manifest.clip;
      const tokenizer = await pack.tokenizer('clip');
      const layout = { contextLength: c.context_length, bosId: c.bos_id, eosId: c.eos_id, padId: c.pad_id };
      const embedded = await clip.embedTexts(ref.clip_text.map((e) => e.text));
      ref.clip_text.forEach((entry, i) => {
        assert.deepEqual(Array.from(clipText(tokenizer, entry.text, layout), Number), entry.input_ids);
        assert.ok(
          maxDiff(embedded[i], Array.from(l2normalize(Float32Array.from(entry.text_embeds)))) <= ref.tolerance.embeds,
          entry.text,
        );
      });
    });
  });
}
