// How a pack's batches fit in a memory budget (worker.ts packBudget): a share of it for the
// images decoded at once, the rest for rows, both within the rows limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packBudget } from '../../src/worker/worker.js';

const MB = 2 ** 20;

test('decoding takes at most a quarter of the budget, the rows the rest', () => {
  // minDALL-E's figures: 472 MiB a row, 128 MiB an image decoded, 8 GiB.
  const fit = packBudget({ rowBytes: 472 * MB, decodeImageBytes: 128 * MB }, 8192 * MB, 32);
  assert.deepEqual(fit, { rows: 13, decodeImages: 13 });
  assert.ok(fit!.rows * 472 + 16 * 128 <= 8192, 'the rows fit beside the 16 images a quarter holds');
});

test('one image is decoded at a time when even one takes more than a quarter', () => {
  assert.deepEqual(packBudget({ rowBytes: 10 * MB, decodeImageBytes: 60 * MB }, 100 * MB, 32), {
    rows: 4,
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
