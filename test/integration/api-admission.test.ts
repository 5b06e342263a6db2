// Queue depth is a hard limit even when requests race: the count of queued jobs and the
// booking of a place happen in one Redis step, so concurrent clients cannot all slip in.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { withQueuePlace } from '../../src/queue/depth.js';
import { type Harness, json, post, startHarness } from './api-harness.js';
import { GenerationAccepted } from '../../src/contracts/schemas.js';

const RACERS = 16;

describe('queue depth under concurrent requests', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      worker: false,
      env: { WEBHOOK_SECRET: '', GENERATE_MAX_QUEUED: '4', CLASSIFY_MAX_QUEUED: '2', CLASSIFY_TIMEOUT_MS: '1500' },
    });
  });
  after(() => h.close());

  test(`${RACERS} simultaneous generations against a depth of 4: exactly 4 are accepted, all pollable`, async () => {
    const responses = await Promise.all(
      Array.from({ length: RACERS }, (_, i) => post(h.baseUrl, '/generations', { prompt: `race ${i}`, candidates: 1 })),
    );
    const statuses = responses.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 202).length, 4, statuses.join(','));
    assert.equal(statuses.filter((s) => s === 503).length, RACERS - 4, statuses.join(','));
    for (const response of responses.filter((r) => r.status === 503)) {
      assert.equal((await json(response)).code, 'queue_full');
      assert.equal(response.headers.get('retry-after'), '5');
    }
    const accepted = await Promise.all(
      responses.filter((r) => r.status === 202).map((r) => json(r, GenerationAccepted)),
    );
    for (const { id } of accepted)
      assert.equal((await json(await fetch(`${h.baseUrl}/generations/${id}`))).status, 'queued');
    assert.equal(await h.services.queues.get('generate').getWaitingCount(), 4);
  });

  test('a refused request leaves no booking behind: a place freed by a cancel can be taken', async () => {
    const listed = await json(await fetch(`${h.baseUrl}/generations?status=queued`));
    assert.equal((await post(h.baseUrl, '/generations', { prompt: 'still full', candidates: 1 })).status, 503);
    await h.services.queues.get('generate').remove(listed.data[0].id);
    assert.equal(
      (await post(h.baseUrl, '/generations', { prompt: 'takes the freed place', candidates: 1 })).status,
      202,
    );
    assert.equal((await post(h.baseUrl, '/generations', { prompt: 'full again', candidates: 1 })).status, 503);
  });

  test('classify requests race for the classify queue the same way', async () => {
    const image = {
      base64: (
        await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
          .png()
          .toBuffer()
      ).toString('base64'),
    };
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => post(h.baseUrl, '/clip/classify', { image, labels: ['a', 'b'] })),
    );
    const codes = await Promise.all(responses.map(async (r) => (await json(r)).code));
    // No worker: the two admitted wait out their timeout; the rest are refused at once.
    assert.equal(codes.filter((c) => c === 'timeout').length, 2, codes.join(','));
    assert.equal(codes.filter((c) => c === 'queue_full').length, 6, codes.join(','));
  });

  test('a job already added is counted once while its booking is still being released', async () => {
    const queue = h.services.queues.get('generate');
    await queue.obliterate({ force: true });
    const place = { queue, maxQueued: 2, retryAfterSeconds: 5 };
    const redis = h.services.queues.redis;
    const data = { input: { prompt: 'booked' }, created_at: new Date().toISOString(), owner: 'anonymous' } as never;
    // The first job is in the queue and its booking not yet released when the second asks:
    // one of two places is taken, so the second gets the other, and a third is refused.
    await withQueuePlace(redis, place, 'first', async () => {
      await queue.add('generate', data, { jobId: 'first' });
      await withQueuePlace(redis, place, 'second', () => queue.add('generate', data, { jobId: 'second' }));
    });
    await assert.rejects(
      withQueuePlace(redis, place, 'third', () => queue.add('generate', data, { jobId: 'third' })),
      (error: Error & { code?: string }) => error.code === 'queue_full',
    );
    assert.equal(await queue.getWaitingCount(), 2);
  });
});
