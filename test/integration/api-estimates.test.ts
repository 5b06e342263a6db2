// Queue position and time left on GET /generations/:id, from the real queue and the rate the
// worker measures: one generation at a time, so the ones behind it wait in BullMQ's list.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

async function get(h: Harness, id: string) {
  return json(await fetch(`${h.baseUrl}/generations/${id}`));
}

async function submit(h: Harness, body: object): Promise<string> {
  return (await json(await post(h.baseUrl, '/generations', body))).id;
}

describe('queue position and time left', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { GENERATE_BATCH_CANDIDATES: '8' } });
    await h.startWorker({ GENERATE_MAX_ACTIVE: '1' });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('queued generations say how many are ahead and when they should end; finished ones say nothing', async () => {
    // Before any batch has run there is no rate, so no estimate is made up.
    const warmup = await submit(h, { prompt: 'a red circle', candidates: 16, n: 1 });
    assert.equal((await get(h, warmup)).eta_seconds, null);
    await waitFor(h.baseUrl, warmup, terminal, 60_000);

    const running = await submit(h, { prompt: 'a big blue square', candidates: 512, n: 1 });
    const next = await submit(h, { prompt: 'a green cross', candidates: 64, n: 1 });
    const last = await submit(h, { prompt: 'a yellow triangle', candidates: 64, n: 1 });
    await waitFor(h.baseUrl, running, (g) => g.status === 'processing', 30_000);
    // The worker publishes its rate every 2 s.
    const first = await waitFor(h.baseUrl, next, (g) => g.eta_seconds !== null || terminal(g), 10_000);
    assert.equal(first.status, 'queued', 'the 512-candidate generation still runs');
    // Read from the back of the queue to the front: the running generation only moves on between
    // reads, which shortens the later-read estimates, so the order holds at any speed; the rate the
    // worker republishes every 2 s could still change between two reads, hence a few tries.
    let runningNow: any, nextNow: any, lastNow: any;
    for (let attempt = 0; attempt < 3; attempt++) {
      lastNow = await get(h, last);
      nextNow = await get(h, next);
      runningNow = await get(h, running);
      if (lastNow.eta_seconds > nextNow.eta_seconds && nextNow.eta_seconds > runningNow.eta_seconds) break;
    }
    assert.equal(runningNow.queue_position, null);
    assert.equal(nextNow.queue_position, 0);
    assert.equal(lastNow.queue_position, 1);
    assert.ok(runningNow.eta_seconds > 0, `running: ${runningNow.eta_seconds}`);
    assert.ok(
      nextNow.eta_seconds > runningNow.eta_seconds,
      `next ${nextNow.eta_seconds} after running ${runningNow.eta_seconds}`,
    );
    assert.ok(
      lastNow.eta_seconds > nextNow.eta_seconds,
      `last ${lastNow.eta_seconds} after next ${nextNow.eta_seconds}`,
    );

    // Lists, like events and webhooks, carry no estimate: it is computed for one read.
    const listed = await json(await fetch(`${h.baseUrl}/generations?limit=5`));
    assert.ok(listed.data.every((g: { eta_seconds: unknown }) => g.eta_seconds === null));

    for (const id of [running, next, last]) {
      const done = await waitFor(h.baseUrl, id, terminal, 120_000);
      assert.equal(done.status, 'succeeded');
      assert.deepEqual([done.queue_position, done.eta_seconds], [null, null]);
    }
  });
});
