// How a pack's batches fit in a memory budget (worker.ts packBudget): a share of it for the
// images decoded at once, the rest for rows, both within the rows limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { packBudget } from '../../src/worker/worker.js';

const MB = 2 ** 20;

test('decoding takes at most a quarter of the budget, the rows the rest', () => {
  // minDALL-E's figures: 330 MB a row, 140 MB an image decoded, 8 GiB.
  const fit = packBudget({ rowBytes: 330 * MB, decodeImageBytes: 140 * MB }, 8192 * MB, 32);
  assert.deepEqual(fit, { rows: 18, decodeImages: 14 });
  assert.ok(fit!.rows * 330 + fit!.decodeImages! * 140 <= 8192);
});

test('one image is decoded at a time when even one takes more than a quarter', () => {
  assert.deepEqual(packBudget({ rowBytes: 10 * MB, decodeImageBytes: 60 * MB }, 100 * MB, 32), {
    rows: 4,
    decodeImages: 1,
  });
});

test('both stay within the rows limit', () => {
  assert.deepEqual(packBudget({ rowBytes: MB, decodeImageBytes: MB }, 1000 * MB, 8), { rows: 8, decodeImages: 8 });
});

test('a pack whose decoder memory is unknown is budgeted on its rows alone', () => {
  assert.deepEqual(packBudget({ rowBytes: 3 * MB, decodeImageBytes: null }, 10 * MB, 32), { rows: 3 });
});

test('nothing fits when one row and one decoded image exceed the budget', () => {
  assert.equal(packBudget({ rowBytes: 5 * MB, decodeImageBytes: 6 * MB }, 10 * MB, 32), null);
  assert.equal(packBudget({ rowBytes: 11 * MB, decodeImageBytes: null }, 10 * MB, 32), null);
});
