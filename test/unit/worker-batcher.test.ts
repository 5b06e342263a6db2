// The worker's classify batcher against a made-up engine: an idle engine runs at once, what
// arrives while it is busy forms the next batch (each job's requests together), a job larger
// than a batch is split, a request the engine refuses fails alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClassifyOutcome, ClassifyRequest, Engine } from '../../src/models/types.js';
import { ClassifyBatcher } from '../../src/worker/batcher.js';

/** An engine whose classify calls wait until `release` and record the labels of each batch. */
function fakeEngine() {
  const batches: string[][] = [];
  const waiting: (() => void)[] = [];
  const engine = {
    classify: async (requests: ClassifyRequest[]): Promise<ClassifyOutcome[]> => {
      batches.push(requests.map((request) => request.labels[0]));
      await new Promise<void>((resolve) => waiting.push(resolve));
      if (requests.some((request) => request.labels[0] === 'throws')) throw new Error('refused');
      return requests.map((request) => ({ ok: true, results: [[{ label: request.labels[0], score: 1 }]] }));
    },
  } as unknown as Engine;
  /** Lets the running call finish, once it has started. */
  const release = async () => {
    while (waiting.length === 0) await new Promise((resolve) => setImmediate(resolve));
    waiting.shift()?.();
  };
  return { engine, batches, release };
}

const requests = (...names: string[]): ClassifyRequest[] =>
  names.map((name) => ({ images: [new Uint8Array(1)], labels: [name, 'other'] }));

test('an idle engine runs at once; what arrives while it is busy goes next, jobs whole', async () => {
  const { engine, batches, release } = fakeEngine();
  const batcher = new ClassifyBatcher(engine, { maxBatch: 4, maxWaitMs: 0 });
  const first = batcher.submit(requests('a'));
  assert.deepEqual(batches, [['a']], 'no wait for a fuller batch');
  const second = batcher.submit(requests('b', 'c'));
  const third = batcher.submit(requests('d', 'e'));
  const fourth = batcher.submit(requests('f'));
  await release();
  await first;
  // b, c and d, e fit (4); f alone would fit too, but d, e came before it and fill the batch.
  await release();
  await Promise.all([second, third]);
  await release();
  const [outcome] = await fourth;
  assert.deepEqual(batches, [['a'], ['b', 'c', 'd', 'e'], ['f']]);
  assert.deepEqual(outcome, { status: 'fulfilled', value: { ok: true, results: [[{ label: 'f', score: 1 }]] } });
});

test('a job larger than a batch is split; an engine failure fails only the request that caused it', async () => {
  const { engine, batches, release } = fakeEngine();
  const batcher = new ClassifyBatcher(engine, { maxBatch: 2, maxWaitMs: 0 });
  const running = batcher.submit(requests('a'));
  const big = batcher.submit(requests('b', 'throws', 'd'));
  for (let i = 0; i < 5; i++) await release();
  await running;
  const settled = await big;
  assert.deepEqual(
    settled.map((outcome) => outcome.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  // The failing batch is retried one request at a time.
  assert.deepEqual(batches, [['a'], ['b', 'throws'], ['b'], ['throws'], ['d']]);
});

test('with CLASSIFY_BATCH_WAIT_MS an idle engine waits for a fuller batch', async () => {
  const { engine, batches, release } = fakeEngine();
  const batcher = new ClassifyBatcher(engine, { maxBatch: 3, maxWaitMs: 60_000 });
  const outcomes = [batcher.submit(requests('a')), batcher.submit(requests('b'))];
  assert.deepEqual(batches, [], 'waiting');
  outcomes.push(batcher.submit(requests('c')));
  assert.deepEqual(batches, [['a', 'b', 'c']], 'full: sent');
  await release();
  await Promise.all(outcomes);
});
