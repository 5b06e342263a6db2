// Image completions through HTTP end to end (real Redis, BullMQ, worker, onnxruntime, sharp,
// storage): POST /generations with an image and keep_rows or a mask keeps the input's cells and
// says which; bad images and masks are 400s naming the field.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { Generation, GenerationAccepted, ModelList, Problem } from '../../src/contracts/schemas.js';
import { decodeTokens } from '../../src/models/decoder.js';
import { encodePixels } from '../../src/models/encoder.js';
import { loadPack, silentLog } from '../../src/models/index.js';
import { Pack } from '../../src/models/packs.js';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scene = readFileSync(`${root}test/fixtures/scenes/heldout-01.png`);
const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
// Both together under the cap set below; a mask of noise is larger than it alone.
const CAP = 40_000;

/** A 64×64 RGBA PNG whose pixels are transparent where `clear(x, y)`. */
function maskPng(clear: (x: number, y: number) => boolean, size = 64): Promise<Buffer> {
  const data = Buffer.alloc(size * size * 4, 255);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) if (clear(x, y)) data[(y * size + x) * 4 + 3] = 0;
  return sharp(data, { raw: { width: size, height: size, channels: 4 } })
    .png()
    .toBuffer();
}

async function rgb(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await sharp(bytes).removeAlpha().raw().toBuffer());
}

/** Mean absolute difference over pixel rows [from, to) of two 64×64 RGB images. */
function rowsDiff(a: Uint8Array, b: Uint8Array, from: number, to: number): number {
  let sum = 0;
  for (let i = from * 64 * 3; i < to * 64 * 3; i++) sum += Math.abs(a[i] - b[i]);
  return sum / ((to - from) * 64 * 3);
}

describe('image completions', () => {
  let h: Harness;
  let roundTrip: Uint8Array;
  before(async () => {
    h = await startHarness({ env: { CLIP_REQUEST_MAX_IMAGE_BYTES: String(CAP) } });
    // The input as the codebook gives it back: encode → decode with the pack's own graphs.
    const pack = new Pack(
      await loadPack(`${root}packs/demo-shapes`),
      { device: { kind: 'cpu' }, allowCpuFallback: false },
      silentLog,
    );
    const codes = await encodePixels(await pack.session('encoder'), await rgb(scene), 1, [64, 64]);
    roundTrip = (await decodeTokens(await pack.session('decoder'), codes, 1, 64)).pixels;
    await pack.release();
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  async function images(done: Generation): Promise<Uint8Array[]> {
    return Promise.all(
      done.images.map(async (image) => rgb(new Uint8Array(await (await fetch(image.url)).arrayBuffer()))),
    );
  }

  test('GET /models says which models complete images', async () => {
    const models = await json(await fetch(`${h.baseUrl}/models`), ModelList);
    const completes = Object.fromEntries(models.data.map((m) => [m.name, m.generation?.completes]));
    assert.deepEqual(completes, { 'demo-shapes': true, 'micro-dalle1': false });
  });

  test('keep_rows keeps the top rows: the kept region decodes to the input’s encode → decode', async (t) => {
    const response = await post(h.baseUrl, '/generations', {
      prompt: 'a red circle above a blue square',
      image: { base64: base64(scene) },
      keep_rows: 4,
      candidates: 6,
      n: 3,
      seed: 11,
    });
    assert.equal(response.status, 202);
    const accepted = await json(response, GenerationAccepted);
    const expected = {
      grid: [8, 8],
      image_size: [64, 64],
      keep_rows: 4,
      kept_cells: 32,
      kept: [...Array(4).fill('########'), ...Array(4).fill('........')],
    };
    assert.deepEqual(accepted.completion, expected);
    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.input.completion, expected);
    // The terminal event carries it too (events and webhooks render the same view).
    const events = await (await fetch(`${h.baseUrl}/generations/${accepted.id}/events`)).text();
    const completed = JSON.parse(/event: completed\ndata: (.*)\n/.exec(events)![1]);
    assert.deepEqual(completed.input.completion, expected);

    const codebookError = rowsDiff(await rgb(scene), roundTrip, 0, 64);
    for (const [i, pixels] of (await images(done)).entries()) {
      // The decoder looks three cells around each, so the first row of cells sees kept cells only.
      assert.ok(rowsDiff(pixels, roundTrip, 0, 8) <= 0.5, `image ${i}: the first row of cells is the input's`);
      const kept = rowsDiff(pixels, roundTrip, 0, 32);
      const below = rowsDiff(pixels, roundTrip, 32, 64);
      t.diagnostic(
        `image ${i}: kept half ${kept.toFixed(2)}, regenerated half ${below.toFixed(2)} levels from the input's encode → decode; codebook error ${codebookError.toFixed(2)}`,
      );
      assert.ok(kept < codebookError, `image ${i}: kept half off by ${kept}, the codebook's error is ${codebookError}`);
    }
  });

  test('a mask regenerates the cells its transparent pixels touch, as a multipart upload too', async () => {
    // Transparent pixels in the lower right: x ≥ 40, y ≥ 44 touch cells of rows 5–7, columns 5–7.
    const mask = await maskPng((x, y) => x >= 40 && y >= 44);
    const form = new FormData();
    form.append('prompt', 'a green triangle');
    form.append('image', new Blob([scene]), 'scene.png');
    form.append('mask', new Blob([mask]), 'mask.png');
    form.append('candidates', '4');
    form.append('n', '2');
    const response = await fetch(`${h.baseUrl}/generations`, { method: 'POST', body: form });
    assert.equal(response.status, 202, await response.clone().text());
    const accepted = await json(response, GenerationAccepted);
    assert.equal(accepted.completion?.keep_rows, null);
    assert.equal(accepted.completion?.kept_cells, 64 - 9);
    assert.deepEqual(accepted.completion?.kept, [...Array(5).fill('########'), ...Array(3).fill('#####...')]);
    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  });

  test('a mask has the size the image is shown at, after its EXIF orientation, and is read that way', async () => {
    // Stored 64 wide and 32 high, shown (EXIF orientation 6: turned a quarter) 32 wide and 64 high.
    const photo = await sharp(scene).resize(64, 32, { fit: 'fill' }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const send = (mask: Buffer) => {
      const form = new FormData();
      form.append('prompt', 'a green triangle');
      form.append('image', new Blob([photo]), 'photo.jpg');
      form.append('mask', new Blob([mask]), 'mask.png');
      form.append('candidates', '2');
      form.append('n', '1');
      return fetch(`${h.baseUrl}/generations`, { method: 'POST', body: form });
    };
    const shownMask = (clear: (x: number, y: number) => boolean) => {
      const data = Buffer.alloc(32 * 64 * 4, 255);
      for (let y = 0; y < 64; y++) for (let x = 0; x < 32; x++) if (clear(x, y)) data[(y * 32 + x) * 4 + 3] = 0;
      return sharp(data, { raw: { width: 32, height: 64, channels: 4 } })
        .png()
        .toBuffer();
    };
    // The bottom quarter as shown: grid rows 6 and 7.
    const accepted = await send(await shownMask((_, y) => y >= 48));
    assert.equal(accepted.status, 202, await accepted.clone().text());
    const { completion } = await json(accepted, GenerationAccepted);
    assert.deepEqual(completion?.kept, [...Array(6).fill('########'), ...Array(2).fill('........')]);
    // A mask of the stored size is not the image's size as shown.
    const stored = await send(
      await maskPng((x, y) => x >= 32 && y >= 16, 64).then((m) => sharp(m).resize(64, 32).png().toBuffer()),
    );
    assert.equal(stored.status, 400);
    const problem = await json(stored, Problem);
    assert.equal(problem.code, 'invalid_mask');
    assert.match(problem.detail ?? '', /32×64/);
  });

  test('bad requests are 400s naming the field', async () => {
    const opaque = await sharp({ create: { width: 64, height: 64, channels: 4, background: '#ff000080' } })
      .png()
      .toBuffer();
    const small = await maskPng(() => true, 32);
    const noise = await sharp(randomBytes(128 * 128 * 4), { raw: { width: 128, height: 128, channels: 4 } })
      .png()
      .toBuffer();
    const truncated = scene.subarray(0, 120);
    const good = { base64: base64(scene) };
    const cases: [string, Record<string, unknown>, number, string, string][] = [
      ['keep_rows without an image', { keep_rows: 2 }, 400, 'validation_failed', 'image'],
      ['rank_by image without an image', { rank_by: 'image' }, 400, 'validation_failed', 'image'],
      ['an image with neither keep_rows nor mask', { image: good }, 400, 'validation_failed', 'keep_rows'],
      ['both keep_rows and mask', { image: good, keep_rows: 2, mask: good }, 400, 'validation_failed', 'keep_rows'],
      ['keep_rows past the grid', { image: good, keep_rows: 8 }, 400, 'validation_failed', 'keep_rows'],
      [
        'not an image',
        { image: { base64: base64(Buffer.from('hello')) }, keep_rows: 2 },
        400,
        'unsupported_image_format',
        'image.base64',
      ],
      ['a broken image', { image: { base64: base64(truncated) }, keep_rows: 2 }, 400, 'invalid_image', 'image'],
      ['a mask of another size', { image: good, mask: { base64: base64(small) } }, 400, 'invalid_mask', 'mask'],
      ['a mask with no transparency', { image: good, mask: { base64: base64(opaque) } }, 400, 'invalid_mask', 'mask'],
      [
        'image and mask too large together',
        { image: good, mask: { base64: base64(noise) } },
        413,
        'images_too_large',
        'mask',
      ],
      [
        'a model without an encoder',
        { image: good, keep_rows: 2, model: 'micro-dalle1' },
        400,
        'completion_unsupported',
        'image',
      ],
    ];
    assert.ok(noise.byteLength > CAP - scene.byteLength, `the noise mask is ${noise.byteLength} bytes`);
    for (const [what, fields, status, code, field] of cases) {
      const response = await post(h.baseUrl, '/generations', { prompt: 'a red circle', ...fields });
      assert.equal(response.status, status, what);
      const problem = await json(response, Problem);
      assert.equal(problem.code, code, `${what}: ${problem.detail}`);
      assert.deepEqual(
        problem.errors?.map((e) => e.field),
        [field],
        `${what}: ${problem.detail}`,
      );
    }
  });
});
