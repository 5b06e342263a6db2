// CLIP preprocessing with real sharp: orientation, alpha, crop, normalisation, bad images.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { InvalidImageError } from '../../src/models/index.js';
import {
  DEFAULT_MAX_IMAGE_PIXELS,
  preprocessEncoded,
  preprocessRaw,
  type Preprocess,
} from '../../src/models/preprocess.js';

const plain = (size: number, resize: Preprocess['resize']): Preprocess => ({
  size,
  resize,
  interpolation: 'bilinear',
  mean: [0, 0, 0],
  std: [1, 1, 1],
});

async function run(bytes: Uint8Array, p: Preprocess, maxPixels = DEFAULT_MAX_IMAGE_PIXELS): Promise<Float32Array> {
  const out = new Float32Array(3 * p.size * p.size);
  await preprocessEncoded(bytes, p, 0, maxPixels, out, 0);
  return out;
}

/** RGB (0–255) of the preprocessed pixel at (row, col), from channel-first 0–1 floats. */
function rgbAt(x: Float32Array, size: number, row: number, col: number): number[] {
  return [0, 1, 2].map((c) => Math.round(x[c * size * size + row * size + col] * 255));
}

async function stripes(width: number, height: number, colours: [number, number, number][]): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(colours[Math.floor((x * colours.length) / width)], (y * width + x) * 3);
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

const RED: [number, number, number] = [220, 30, 30];
const GREEN: [number, number, number] = [30, 160, 50];
const BLUE: [number, number, number] = [30, 70, 220];

test('EXIF orientation is applied before resizing', async () => {
  // Left half red, right half blue, tagged "rotate 90° clockwise to display": red ends on top.
  const tagged = await sharp(await stripes(40, 20, [RED, BLUE]))
    .withMetadata({ orientation: 6 })
    .jpeg({ quality: 100 })
    .toBuffer();
  const x = await run(tagged, plain(16, 'squash'));
  const top = rgbAt(x, 16, 2, 8);
  const bottom = rgbAt(x, 16, 13, 8);
  assert.ok(top[0] > 180 && top[2] < 80, `top ${top}`);
  assert.ok(bottom[2] > 180 && bottom[0] < 80, `bottom ${bottom}`);
});

test('transparent pixels are flattened onto white', async () => {
  const clear = await sharp({
    create: { width: 8, height: 8, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
  })
    .png()
    .toBuffer();
  const x = await run(clear, plain(8, 'squash'));
  assert.ok(x.every((v) => Math.abs(v - 1) < 1e-6));
});

test('shortest_edge scales the short side and keeps the centre; squash keeps everything', async () => {
  const image = await stripes(60, 20, [RED, GREEN, BLUE]);
  const cropped = await run(image, plain(20, 'shortest_edge'));
  for (const col of [0, 10, 19]) assert.deepEqual(rgbAt(cropped, 20, 10, col), GREEN);
  const squashed = await run(image, plain(20, 'squash'));
  assert.deepEqual(rgbAt(squashed, 20, 10, 0), RED);
  assert.deepEqual(rgbAt(squashed, 20, 10, 19), BLUE);
});

test('mean and std are applied per channel, channel-first; greyscale becomes RGB', async () => {
  const grey = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .greyscale()
    .png()
    .toBuffer();
  const p: Preprocess = {
    size: 4,
    resize: 'squash',
    interpolation: 'bicubic',
    mean: [0.5, 0.25, 0],
    std: [0.5, 0.25, 1],
  };
  const x = await run(grey, p);
  const expected = [0, 1, 2].map((c) => (128 / 255 - p.mean[c]) / p.std[c]);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 16; i++) assert.ok(Math.abs(x[c * 16 + i] - expected[c]) < 1e-5);
  }
});

test('raw decoder pixels take the same path as encoded images', async () => {
  const png = await stripes(16, 16, [RED, BLUE]);
  const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const p = plain(8, 'squash');
  const fromRaw = new Float32Array(3 * 64);
  await preprocessRaw({ width: 16, height: 16, pixels: data }, p, fromRaw, 0);
  assert.deepEqual(fromRaw, await run(png, p));
});

async function rejectsAsInvalidImage(bytes: Uint8Array, pattern: RegExp, maxPixels?: number) {
  await assert.rejects(run(bytes, plain(8, 'squash'), maxPixels), (error: unknown) => {
    assert.ok(error instanceof InvalidImageError, String(error));
    assert.equal(error.code, 'invalid_image');
    assert.equal(error.index, 0);
    assert.match(error.message, pattern);
    return true;
  });
}

test('undecodable, empty, truncated and oversized images are InvalidImageError', async () => {
  await rejectsAsInvalidImage(Buffer.from('definitely not an image'), /image 0: .*unsupported image format/i);
  await rejectsAsInvalidImage(new Uint8Array(0), /image 0:/);
  const png = await stripes(64, 64, [RED, GREEN]);
  await rejectsAsInvalidImage(png.subarray(0, png.length - 20), /image 0:/);
  // A PNG whose header says 0 × 0.
  const zero = Buffer.from(png);
  zero.writeUInt32BE(0, 16);
  zero.writeUInt32BE(0, 20);
  await rejectsAsInvalidImage(zero, /image 0:/);
  await rejectsAsInvalidImage(png, /pixel limit/i, 1000);
});
