import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BestN } from '../../src/models/rerank.js';

test('keeps the best n by score, ties broken by candidate index, whatever the arrival order', () => {
  const offers = [
    { candidate: 4, score: 0.5 },
    { candidate: 1, score: 0.9 },
    { candidate: 3, score: 0.7 },
    { candidate: 0, score: 0.7 },
    { candidate: 2, score: 0.1 },
    { candidate: 5, score: 0.7 },
  ];
  const expected = [1, 0, 3, 5];
  for (const order of [offers, [...offers].reverse(), [...offers].sort((a, b) => a.candidate - b.candidate)]) {
    const best = new BestN<{ candidate: number; score: number }>(4);
    order.forEach((o) => best.offer(o));
    assert.deepEqual(
      best.result().map((o) => o.candidate),
      expected,
    );
  }
});

test('wouldKeep says whether an offer can still enter', () => {
  const best = new BestN<{ candidate: number; score: number }>(2);
  best.offer({ candidate: 0, score: 1 });
  best.offer({ candidate: 1, score: 2 });
  assert.equal(best.wouldKeep({ candidate: 2, score: 1 }), false);
  assert.equal(best.wouldKeep({ candidate: 2, score: 1.5 }), true);
});
