// Image completion in the inference core, on the committed demo pack with real onnxruntime and
// sharp: the encoder inverts the decoder on generated images (within the codebook's
// reconstruction error of real scenes), and a completion keeps the input's codes exactly where
// asked; a pack without an encoder refuses completions.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { decodeTokens } from '../../src/models/decoder.js';
import { encodePixels } from '../../src/models/encoder.js';
import { createEngine, type Engine, loadPack, silentLog } from '../../src/models/index.js';
import { Pack } from '../../src/models/packs.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scenesDir = `${root}test/fixtures/scenes/`;

async function scenes(): Promise<Uint8Array> {
  const files = readdirSync(scenesDir)
    .filter((f) => f.endsWith('.png'))
    .sort();
  const all = await Promise.all(
    files.map((f) =>
      sharp(scenesDir + f)
        .removeAlpha()
        .raw()
        .toBuffer(),
    ),
  );
  return new Uint8Array(Buffer.concat(all));
}

const meanAbs = (a: Uint8Array, b: Uint8Array) => a.reduce((sum, v, i) => sum + Math.abs(v - b[i]), 0) / a.length;

describe('demo-shapes image encoder', () => {
  let pack: Pack;
  before(async () => {
    pack = new Pack(
      await loadPack(`${root}packs/demo-shapes`),
      { device: { kind: 'cpu' }, allowCpuFallback: false },
      silentLog,
    );
  });
  after(() => pack.release());

  test('encode → decode of a generated image gives back its tokens and pixels, within the codebook error', async (t) => {
    const g = pack.generating.geometry;
    const size = g.image_size as [number, number];
    const N = g.image_grid[0] * g.image_grid[1];
    const encoder = await pack.session('encoder');
    const decoder = await pack.session('decoder');
    // The codebook's reconstruction error: real scenes through encode → decode.
    const real = await scenes();
    const count = real.length / (size[0] * size[1] * 3);
    const realCodes = await encodePixels(encoder, real, count, size);
    const codebookError = meanAbs(real, (await decodeTokens(decoder, realCodes, count, N)).pixels);
    // Generated images: what the decoder draws from codes (here the scenes' own), encoded again.
    const drawn = (await decodeTokens(decoder, realCodes, count, N)).pixels;
    const again = await encodePixels(encoder, drawn, count, size);
    const same = again.filter((code, i) => code === realCodes[i]).length / again.length;
    const redrawnError = meanAbs(drawn, (await decodeTokens(decoder, again, count, N)).pixels);
    t.diagnostic(
      `codebook error ${codebookError.toFixed(2)} levels; a drawn image: ${(100 * same).toFixed(1)}% of its tokens back, ${redrawnError.toFixed(2)} levels`,
    );
    assert.ok(same >= 0.9, `${same} of the tokens come back`);
    assert.ok(redrawnError < codebookError, `${redrawnError} levels against the codebook's ${codebookError}`);
  });
});

describe('completions through the engine', () => {
  let engine: Engine;
  let pixels: Uint8Array;
  before(async () => {
    engine = await createEngine({ modelsDir: `${root}packs`, logger: silentLog, clipBatch: 8 });
    pixels = new Uint8Array(await sharp(`${scenesDir}heldout-05.png`).removeAlpha().raw().toBuffer());
  });
  after(() => engine.close());

  test('kept cells carry the input image’s codes in every candidate; the others are sampled', async () => {
    const pack = new Pack(
      await loadPack(`${root}packs/demo-shapes`),
      { device: { kind: 'cpu' }, allowCpuFallback: false },
      silentLog,
    );
    const codes = await encodePixels(await pack.session('encoder'), pixels, 1, [64, 64]);
    await pack.release();
    // A mask's shape: everything kept but a 3×3 block of cells in the lower right.
    const keepCells = new Uint8Array(64).fill(1);
    for (const r of [4, 5, 6]) for (const c of [4, 5, 6]) keepCells[r * 8 + c] = 0;
    const result = await engine.runChunk({
      model: 'demo-shapes',
      parts: [
        { key: 'c', prompt: 'a red circle', seed: 3, first: 0, count: 6, n: 6, completion: { pixels, keepCells } },
      ],
    });
    const [outcome] = result.parts;
    assert.ok(outcome.ok);
    assert.equal(outcome.images.length, 6);
    const sampled = new Set<string>();
    for (const image of outcome.images) {
      image.tokens.forEach((token, i) => {
        if (keepCells[i]) assert.equal(token, codes[i], `candidate ${image.candidate}, kept cell ${i}`);
      });
      sampled.add(Array.from(image.tokens.filter((_, i) => !keepCells[i])).join(','));
    }
    assert.ok(sampled.size > 1, 'the regenerated cells differ between candidates');
  });

  test('rankBy image scores against the input image and needs no prompt; without a completion it is refused', async () => {
    const keepCells = new Uint8Array(64).fill(1, 0, 32);
    const result = await engine.runChunk({
      model: 'demo-shapes',
      parts: [
        { key: 'v', prompt: '', seed: 5, first: 0, count: 4, n: 4, rankBy: 'image', completion: { pixels, keepCells } },
        { key: 'no-image', prompt: '', seed: 5, first: 0, count: 1, n: 1, rankBy: 'image' },
        { key: 'no-prompt', prompt: '', seed: 5, first: 0, count: 1, n: 1, completion: { pixels, keepCells } },
      ],
    });
    const [variation, noImage, noPrompt] = result.parts;
    assert.ok(variation.ok);
    assert.equal(variation.promptTokens, 0);
    const [input, ...drawn] = await engine.embedImages(
      await Promise.all(
        [pixels, ...variation.images.map((image) => image.pixels)].map((raw) =>
          sharp(raw, { raw: { width: 64, height: 64, channels: 3 } })
            .png()
            .toBuffer(),
        ),
      ),
      'demo-shapes',
    );
    const cosine = (a: Float32Array, b: Float32Array) => a.reduce((sum, v, i) => sum + v * b[i], 0);
    const ratios = variation.images.map((image, i) => image.score / cosine(drawn[i], input));
    for (const ratio of ratios) assert.ok(Math.abs(ratio / ratios[0] - 1) < 1e-3, `score / likeness ${ratios}`);
    assert.ok(!noImage.ok && /^rankBy: image ranks against a completion/.test(noImage.error.message));
    assert.ok(!noPrompt.ok && /^prompt must be a non-empty string/.test(noPrompt.error.message));
  });

  test('a pack without an encoder refuses a completion by name, and still generates', async () => {
    const result = await engine.runChunk({
      model: 'micro-dalle1',
      parts: [
        {
          key: 'c',
          prompt: 'a red circle',
          seed: 3,
          first: 0,
          count: 1,
          n: 1,
          completion: { pixels: new Uint8Array(256 * 256 * 3), keepCells: new Uint8Array(1024).fill(1) },
        },
        { key: 'plain', prompt: 'a red circle', seed: 3, first: 0, count: 1, n: 1 },
      ],
    });
    const [refused, plain] = result.parts;
    assert.ok(!refused.ok);
    assert.equal(refused.error.code, 'validation_failed');
    assert.match(refused.error.message, /^image: model micro-dalle1 has no image encoder/);
    assert.ok(plain.ok && plain.images.length === 1);
  });
});
