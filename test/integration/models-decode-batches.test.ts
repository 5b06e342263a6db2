// A chunk's rows decoded a few images at a time (MixedChunk.decodeImages, what a worker's memory
// budget allows its pack's decoder): as many decoder runs as that takes, and the same images.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createEngine, type Engine, silentLog } from '../../src/models/index.js';
import type { ChunkResult, MixedChunk } from '../../src/models/types.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('decoding within a budget', () => {
  let engine: Engine;
  before(async () => {
    engine = await createEngine({ modelsDir: `${root}packs`, logger: silentLog, clipBatch: 8 });
  });
  after(() => engine.close());

  const chunk = (decodeImages?: number): MixedChunk => ({
    model: 'demo-shapes',
    parts: [
      { key: 'a', prompt: 'a red circle', seed: 11, first: 0, count: 5, n: 5 },
      { key: 'b', prompt: 'a blue square', seed: 12, first: 0, count: 3, n: 2 },
    ],
    ...(decodeImages !== undefined && { decodeImages }),
  });
  const images = (result: ChunkResult) =>
    result.parts.map((part) => {
      assert.ok(part.ok);
      return part.images.map((image) => ({ candidate: image.candidate, score: image.score, pixels: image.pixels }));
    });

  test('8 rows three images at a time take three decoder runs and give the images decoded at once', async () => {
    const atOnce = await engine.runChunk(chunk());
    const inThrees = await engine.runChunk(chunk(3));
    assert.equal(atOnce.rows, 8);
    assert.equal(atOnce.decodeRuns, 1, 'the CLIP batch (8) decodes the whole chunk');
    assert.equal(inThrees.decodeRuns, 3);
    assert.deepEqual(images(inThrees), images(atOnce));
    assert.equal((await engine.runChunk(chunk(1))).decodeRuns, 8);
  });

  test('a chunk never decodes more at once than the CLIP batch, nor less than one image', async () => {
    assert.equal((await engine.runChunk(chunk(64))).decodeRuns, 1);
    assert.equal((await engine.runChunk(chunk(0))).decodeRuns, 8);
  });
});
