// The scheduler in the worker, through HTTP + queue: generations with different prompts and
// settings share batches (the worker's /metrics says so), each ends with its own images, and
// one generation's storage failure fails only that one.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createObjectStore, type ObjectStore } from '../../src/storage/index.js';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

describe('generation scheduler in the worker', () => {
  let h: Harness;
  let metricsPort: number;
  const failFor = new Set<string>();
  before(async () => {
    h = await startHarness({ worker: false, env: { GENERATE_ATTEMPTS: '1', GENERATE_BATCH_CANDIDATES: '8' } });
    const real = createObjectStore(h.config.storage);
    // The real folder store, failing the writes of the generations named in failFor.
    const store: ObjectStore = {
      ...real,
      async put(key, body, contentType) {
        if ([...failFor].some((id) => key.includes(id))) throw new Error('disk full');
        await real.put(key, body, contentType);
      },
    };
    metricsPort = (await h.startWorker({ GENERATE_MAX_ACTIVE: '4' }, { store })).metricsPort;
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('mixed generations each succeed with their own images; a storage failure fails only its own', async () => {
    const bodies = [
      { prompt: 'a red circle', candidates: 24, n: 2, seed: 1 },
      { prompt: 'a blue square', candidates: 16, n: 3, seed: 2, top_k: 4, temperature: 1.2 },
      { prompt: 'a green cross', candidates: 24, n: 1, seed: 3, top_p: 0.8 },
      { prompt: 'a yellow triangle', candidates: 24, n: 2, seed: 4 },
    ];
    const ids: string[] = [];
    for (const body of bodies) ids.push((await json(await post(h.baseUrl, '/generations', body))).id);
    failFor.add(ids[3]);
    const done = await Promise.all(ids.map((id) => waitFor(h.baseUrl, id, terminal, 120_000)));
    assert.deepEqual(
      done.map((g) => g.status),
      ['succeeded', 'succeeded', 'succeeded', 'failed'],
    );
    assert.equal(done[3].error?.code, 'storage_failed');
    assert.deepEqual(
      done.slice(0, 3).map((g) => g.images.length),
      [2, 3, 1],
    );
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    for (const name of ['batch_rows', 'batch_jobs', 'batch_fill_ratio', 'first_batch_seconds']) {
      assert.match(metrics, new RegExp(`dalle_generation_${name}_count [1-9]`), name);
    }
    // Some batch held rows of more than one generation: fewer than all batches had one.
    const single = Number(/dalle_generation_batch_jobs_bucket\{le="1"\} (\d+)/.exec(metrics)?.[1]);
    const batches = Number(/dalle_generation_batch_jobs_count (\d+)/.exec(metrics)?.[1]);
    assert.ok(single < batches, `${single} of ${batches} batches held one generation`);
  });
});
