// A cancel answered 202 always ends canceled, and one that comes too late is a 409: the
// generation's record decides (src/service/lifecycle.ts), the worker's commit ends canceled once
// a cancel is recorded and a cancel after the commit finds it finished. Cancels are sent while
// images are being stored (through the real object store, from inside its put) and at varied
// moments against many small generations.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generationPrefix, imageKey } from '../../src/contracts/jobs.js';
import type { ObjectStore } from '../../src/storage/index.js';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';
import { until } from './faults-harness.js';

describe('cancel against the last stage', () => {
  let h: Harness;
  /** The answer to the cancel sent from inside the store's first put of each generation. */
  const cancelDuringStore = new Map<string, Promise<number>>();

  before(async () => {
    h = await startHarness({ worker: false });
    const inner = h.services.store;
    const store: ObjectStore = {
      ...inner,
      async put(key, body, contentType) {
        const id = key.split('/')[1];
        if (id && !cancelDuringStore.has(id)) {
          const answer = fetch(`${h.baseUrl}/generations/${id}/cancel`, { method: 'POST' }).then((r) => r.status);
          cancelDuringStore.set(id, answer);
          await answer;
        }
        return inner.put(key, body, contentType);
      },
    };
    await h.startWorker({}, { store });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('a cancel sent while the images are being stored ends canceled', async () => {
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'store then cancel', candidates: 2 }));
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 120_000);
    const answer = await cancelDuringStore.get(accepted.id);
    assert.equal(answer, 202);
    assert.equal(done.status, 'canceled');
    assert.deepEqual(done.images, []);
    // The images written before the cancel was seen are removed with the attempt.
    await until(
      'the canceled generation keeps no images',
      async () => (await h.services.store.get(imageKey(accepted.id, 1, 1, 'png'))) === null,
      10_000,
    );
  });
});

describe('cancels at varied moments', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('every 202 ends canceled; every 409 ends succeeded', async () => {
    const outcomes: { delayMs: number; cancel: number; status: string }[] = [];
    for (let round = 0; round < 24; round += 1) {
      const accepted = await json(
        await post(h.baseUrl, '/generations', { prompt: `race ${round}`, candidates: 1, n: 1 }),
      );
      // From at once to past the end of a one-candidate generation.
      const delayMs = (round % 8) * 40;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      const cancel = await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' });
      const done = await waitFor(h.baseUrl, accepted.id, terminal, 120_000);
      outcomes.push({ delayMs, cancel: cancel.status, status: done.status });
      if (cancel.status === 202) assert.equal(done.status, 'canceled', JSON.stringify(outcomes.at(-1)));
      else {
        assert.equal(cancel.status, 409);
        assert.equal((await json(cancel)).code, 'generation_finished');
        assert.equal(done.status, 'succeeded', JSON.stringify(outcomes.at(-1)));
      }
    }
  });
});

describe('a canceled generation keeps no images an earlier attempt left', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ worker: false });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('canceled while queued: the API removes them', async () => {
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'left behind', candidates: 2 }));
    const key = `${generationPrefix(accepted.id)}a1-1.png`;
    // What a worker killed while storing leaves before its job goes back to the queue.
    await h.services.store.put(key, new Uint8Array([1, 2, 3]), 'image/png');
    const cancel = await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    assert.equal(await h.services.store.get(key), null, 'the API removed the images');
  });

  test('a cancel recorded while its worker was dead: the worker that picks the job up removes them', async () => {
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'left by the dead', candidates: 2 }));
    const lifecycle = h.services.generations.lifecycle;
    // What a worker killed while storing leaves: its attempt begun, some images written.
    assert.deepEqual(await lifecycle.start(accepted.id), { outcome: 'run', attempt: 1 });
    const key = imageKey(accepted.id, 1, 1, 'png');
    await h.services.store.put(key, new Uint8Array([1, 2, 3]), 'image/png');
    // The cancel a client sent while the killed worker still held the job (its lock not yet lapsed).
    const cancel = await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    assert.equal((await json(cancel)).status, 'processing', 'it ends canceled once a worker takes it up');
    await h.startWorker();
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 60_000);
    assert.equal(done.status, 'canceled');
    await until('the worker removed the images', async () => (await h.services.store.get(key)) === null, 10_000);
  });
});
