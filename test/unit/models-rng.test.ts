// The counter-based generator: each value depends on (seed, step) only, lies in [0, 1) on
// the float32 grid, and looks uniform.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { candidateSeed, fillUniforms, isUint32, uniformAt } from '../../src/models/rng.js';

test('candidate seeds are unsigned 32-bit, reproducible and distinct', () => {
  const seeds = Array.from({ length: 4096 }, (_, i) => candidateSeed(42, i));
  assert.ok(seeds.every(isUint32));
  assert.deepEqual(
    seeds.slice(0, 8),
    Array.from({ length: 8 }, (_, i) => candidateSeed(42, i)),
  );
  assert.equal(new Set(seeds).size, seeds.length);
  assert.notEqual(candidateSeed(42, 0), candidateSeed(43, 0));
});

test('a draw depends on its seed and step only, not on how many were drawn before', () => {
  const seed = candidateSeed(7, 3);
  const all = new Float32Array(100);
  fillUniforms(seed, 100, all);
  for (const step of [0, 1, 50, 99]) assert.equal(all[step], uniformAt(seed, step));
});

test('draws lie in [0, 1), are exact in float32 and spread evenly over 16 bins', () => {
  const bins = new Array<number>(16).fill(0);
  const draws = 64_000;
  for (let i = 0; i < draws; i++) {
    const u = uniformAt(candidateSeed(1, i >> 6), i & 63);
    assert.ok(u >= 0 && u < 1);
    assert.equal(Math.fround(u), u);
    bins[Math.floor(u * 16)]++;
  }
  const expected = draws / 16;
  const chiSquare = bins.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
  // 15 degrees of freedom: 37.7 is the 0.999 quantile.
  assert.ok(chiSquare < 37.7, `chi-square ${chiSquare.toFixed(1)}`);
});
