// How a pack's batches fit in a memory budget (worker.ts packBudget): each row with the room to
// decode its image, up to a quarter of the budget for images, both within the rows limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packBudget } from '../../src/worker/worker.js';

const MB = 2 ** 20;

test('a batch reserves room to decode its own images, not the 32 a quarter would hold', () => {
  // About minDALL-E's figures: 1,160 MiB a row (the arena's growth counted), 128 MiB an image decoded, 16 GiB.
  const fit = packBudget({ rowBytes: 1160 * MB, decodeImageBytes: 128 * MB }, 16384 * MB, 32);
  assert.deepEqual(fit, { rows: 12, decodeImages: 12 });
  assert.ok(fit!.rows * (1160 + 128) <= 16384, 'each row fits with its image');
  assert.ok((fit!.rows + 1) * (1160 + 128) > 16384, 'and one more would not');
});

test('past the images a quarter holds, the rows share their room', () => {
  // A quarter of 1,000 MiB holds 5 images of 50 MiB: they take 250, the other 750 hold 12 rows of 60.
  assert.deepEqual(packBudget({ rowBytes: 60 * MB, decodeImageBytes: 50 * MB }, 1000 * MB, 32), {
    rows: 12,
    decodeImages: 5,
  });
});

test('one image is decoded at a time when even one takes more than a quarter', () => {
  assert.deepEqual(packBudget({ rowBytes: 10 * MB, decodeImageBytes: 60 * MB }, 100 * MB, 32), {
    rows: 4,
    decodeImages: 1,
  });
});

test('the images decoded at once leave room for one row', () => {
  // A quarter of 100 MiB holds 12 images of 2 MiB, but then no 90 MiB row would fit: one row
  // decodes one.
  assert.deepEqual(packBudget({ rowBytes: 90 * MB, decodeImageBytes: 2 * MB }, 100 * MB, 32), {
    rows: 1,
    decodeImages: 1,
  });
});

test('both stay within the rows limit, and the images within the rows', () => {
  assert.deepEqual(packBudget({ rowBytes: MB, decodeImageBytes: MB }, 1000 * MB, 8), { rows: 8, decodeImages: 8 });
  assert.deepEqual(packBudget({ rowBytes: 30 * MB, decodeImageBytes: MB }, 100 * MB, 32), {
    rows: 3,
    decodeImages: 3,
  });
});

test('a pack whose decoder memory is unknown is budgeted on its rows alone', () => {
  assert.deepEqual(packBudget({ rowBytes: 3 * MB, decodeImageBytes: null }, 10 * MB, 32), { rows: 3 });
});

test('nothing fits when one row and one decoded image exceed the budget', () => {
  assert.equal(packBudget({ rowBytes: 5 * MB, decodeImageBytes: 6 * MB }, 10 * MB, 32), null);
  assert.equal(packBudget({ rowBytes: 11 * MB, decodeImageBytes: null }, 10 * MB, 32), null);
});
