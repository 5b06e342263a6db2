// The contract's sampling rule on the host, checked against a plain float64 statement of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RowScratch, sampleRow, type SamplingParams } from '../../src/models/sampling.js';

function randomLogits(size: number, seed: number): Float32Array {
  let state = seed;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Float32Array.from({ length: size }, () => (next() - 0.5) * 8);
}

// The rule as the contract words it, in float64 with a full sort.
function reference(z: Float32Array, u: number, p: SamplingParams): number {
  const order = Array.from(z.keys())
    .sort((a, b) => z[b] - z[a] || a - b)
    .slice(0, p.topK);
  const v = order.map((i) => z[i] / p.temperature);
  const exps = v.map((x) => Math.exp(x - v[0]));
  const sum = exps.reduce((a, b) => a + b, 0);
  let probs = exps.map((e) => e / sum);
  if (p.topP < 1) {
    let before = 0;
    probs = probs.map((q, j) => {
      const keep = j === 0 || before < p.topP;
      before += q;
      return keep ? q : 0;
    });
  }
  const total = probs.reduce((a, b) => a + b, 0);
  let c = 0;
  for (let j = 0; j < probs.length; j++) {
    c += probs[j];
    if (c > u * total) return order[j];
  }
  return order[order.length - 1];
}

const sample = (z: Float32Array, u: number, p: SamplingParams) =>
  sampleRow(z, 0, z.length, u, p, new RowScratch(p.topK));

test('top_k = 1 picks the argmax whatever the uniform', () => {
  const z = randomLogits(256, 1);
  const argmax = z.indexOf(Math.max(...z));
  for (const u of [0, 0.25, 0.5, 0.999999]) assert.equal(sample(z, u, { topK: 1, temperature: 1, topP: 1 }), argmax);
});

test('equal logits keep the lower index first, as ONNX TopK does', () => {
  const z = new Float32Array([1, 5, 5, 2, 5]);
  assert.equal(sample(z, 0.5, { topK: 1, temperature: 1, topP: 1 }), 1);
  // Three equal values: each takes a third of the mass, in index order.
  assert.equal(sample(z, 0.0, { topK: 3, temperature: 1, topP: 1 }), 1);
  assert.equal(sample(z, 0.5, { topK: 3, temperature: 1, topP: 1 }), 2);
  assert.equal(sample(z, 0.9, { topK: 3, temperature: 1, topP: 1 }), 4);
});

test('matches the float64 statement of the rule for small and large k, temperature and top-p', () => {
  const settings: SamplingParams[] = [
    { topK: 8, temperature: 1, topP: 1 },
    { topK: 64, temperature: 0.7, topP: 1 },
    { topK: 200, temperature: 1.3, topP: 1 },
    { topK: 50, temperature: 1, topP: 0.6 },
  ];
  let compared = 0;
  for (const [s, params] of settings.entries()) {
    for (let row = 0; row < 40; row++) {
      const z = randomLogits(512, 100 * s + row);
      for (const u of [0.013, 0.31, 0.5, 0.77, 0.96]) {
        assert.equal(sample(z, u, params), reference(z, u, params), JSON.stringify({ params, row, u }));
        compared++;
      }
    }
  }
  assert.equal(compared, 800);
});

test('only the top k tokens are ever drawn, each about as often as its probability', () => {
  const z = randomLogits(128, 9);
  const params = { topK: 5, temperature: 1, topP: 1 };
  const allowed = Array.from(z.keys())
    .sort((a, b) => z[b] - z[a])
    .slice(0, 5);
  const counts = new Map<number, number>();
  const draws = 10_000;
  for (let i = 0; i < draws; i++) {
    const token = sample(z, (i + 0.5) / draws, params);
    counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  assert.deepEqual(
    [...counts.keys()].sort((a, b) => a - b),
    [...allowed].sort((a, b) => a - b),
  );
  const top = allowed.map((i) => Math.exp(z[i] - z[allowed[0]]));
  const sum = top.reduce((a, b) => a + b, 0);
  allowed.forEach((token, j) => assert.ok(Math.abs(counts.get(token)! / draws - top[j] / sum) < 0.002));
});

test('top_p keeps the smallest prefix reaching p and always the first token', () => {
  const z = new Float32Array([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  const drawn = new Set<number>();
  for (let i = 0; i < 100; i++) drawn.add(sample(z, i / 100, { topK: 3, temperature: 1, topP: 0.7 }));
  assert.deepEqual([...drawn].sort(), [0, 1]);
  const first = new Set<number>();
  for (let i = 0; i < 100; i++) first.add(sample(z, i / 100, { topK: 3, temperature: 1, topP: 0.01 }));
  assert.deepEqual([...first], [0]);
});
