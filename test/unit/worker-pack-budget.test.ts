// How a pack's batches fit in a memory budget (worker.ts packBudget): a share of it for the
// images decoded at once, the rest for rows, both within the rows limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packBudget } from '../../src/worker/worker.js';

const MB = 2 ** 20;

test('decoding takes at most a quarter of the budget, the rows the rest', () => {
  // About minDALL-E's figures: 1,580 MiB a row (the arena's growth counted), 128 MiB an image decoded, 16 GiB.
  const fit = packBudget({ rowBytes: 1580 * MB, decodeImageBytes: 128 * MB }, 16384 * MB, 32);
  assert.deepEqual(fit, { rows: 7, decodeImages: 7 });
  assert.ok(fit!.rows * 1580 + 32 * 128 <= 16384, 'the rows fit beside the 32 images a quarter holds');
});

test('one image is decoded at a time when even one takes more than a quarter', () => {
  assert.deepEqual(packBudget({ rowBytes: 10 * MB, decodeImageBytes: 60 * MB }, 100 * MB, 32), {
    rows: 4,
    decodeImages: 1,
  });
});

test('the images decoded at once leave room for one row', () => {
  // A quarter of 100 MiB holds 12 images of 2 MiB, but then no 90 MiB row would fit: it is
  // budgeted beside 5 (and a batch of one row decodes one).
  assert.deepEqual(packBudget({ rowBytes: 90 * MB, decodeImageBytes: 2 * MB }, 100 * MB, 32), {
    rows: 1,
    decodeImages: 1,
  });
});

test('both stay within the rows limit, and the images within the rows', () => {
  assert.deepEqual(packBudget({ rowBytes: MB, decodeImageBytes: MB }, 1000 * MB, 8), { rows: 8, decodeImages: 8 });
  assert.deepEqual(packBudget({ rowBytes: 30 * MB, decodeImageBytes: MB }, 100 * MB, 32), {
    rows: 2,
    decodeImages: 2,
  });
});

test('a pack whose decoder memory is unknown is budgeted on its rows alone', () => {
  assert.deepEqual(packBudget({ rowBytes: 3 * MB, decodeImageBytes: null }, 10 * MB, 32), { rows: 3 });
});

test('nothing fits when one row and one decoded image exceed the budget', () => {
  assert.equal(packBudget({ rowBytes: 5 * MB, decodeImageBytes: 6 * MB }, 10 * MB, 32), null);
  assert.equal(packBudget({ rowBytes: 11 * MB, decodeImageBytes: null }, 10 * MB, 32), null);
});
