// Webhooks from a generation arrive at a loopback receiver, signed so that the
// standardwebhooks library verifies them; a receiver failing for a while gets retries.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import {
  type Harness,
  type WebhookReceiver,
  WEBHOOK_SECRET,
  closeSharedEngine,
  json,
  post,
  startHarness,
  startWebhookReceiver,
  terminal,
  waitFor,
} from './api-harness.js';

describe('webhooks', () => {
  let h: Harness;
  let receiver: WebhookReceiver;
  let receiverUrl: string;
  let deliveries: WebhookReceiver['deliveries'];

  before(async () => {
    h = await startHarness({ env: { PROGRESS_EVENT_INTERVAL_MS: '0' } });
    receiver = await startWebhookReceiver();
    ({ url: receiverUrl, deliveries } = receiver);
  });
  after(async () => {
    await receiver.close();
    await h.close();
    await closeSharedEngine();
  });

  async function eventsFor(id: string, until: (events: any[]) => boolean): Promise<any[]> {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const events = deliveries.map((d) => JSON.parse(d.body)).filter((body) => body.id === id);
      if (until(events)) return events;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`webhooks for ${id} did not arrive`);
  }

  test('start, progress and completed arrive signed; completed carries the finished generation', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a webhook circle', candidates: 4, n: 2, webhook: receiverUrl }),
    );
    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    const events = await eventsFor(accepted.id, (list) => list.some((e) => e.event === 'completed'));
    const names = events.map((e) => e.event);
    assert.ok(names.includes('start'), names.join());
    assert.ok(names.includes('progress'), names.join());
    assert.equal(names.filter((name) => name === 'completed').length, 1);

    const verifier = new Webhook(WEBHOOK_SECRET);
    for (const delivery of deliveries) {
      const headers = Object.fromEntries(
        ['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => [name, String(delivery.headers[name])]),
      );
      assert.doesNotThrow(() => verifier.verify(delivery.body, headers));
      assert.throws(
        () => verifier.verify(delivery.body.replace('}', ' }'), headers),
        'a changed body fails verification',
      );
    }
    const completed = events.find((e) => e.event === 'completed');
    assert.equal(completed.status, 'succeeded');
    assert.equal(completed.images.length, 2);
    assert.deepEqual(
      completed.images.map((i: any) => i.rank),
      done.images.map((i: any) => i.rank),
    );
    assert.equal((await fetch(completed.images[0].url)).status, 200);
    const ids = deliveries.map((d) => d.headers['webhook-id']);
    assert.equal(new Set(ids).size, ids.length, 'each event has its own webhook-id');
  });

  test('webhook_events_filter limits the events; a failing receiver gets retries', async () => {
    receiver.failNext(2);
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'only the end',
        candidates: 2,
        n: 1,
        webhook: receiverUrl,
        webhook_events_filter: ['completed'],
      }),
    );
    const events = await eventsFor(accepted.id, (list) => list.length > 0);
    // A start or progress event would have been queued before `completed` was: none was.
    const queued = await h.services.queues
      .get('webhooks')
      .getJobs(['completed', 'failed', 'waiting', 'active', 'delayed']);
    assert.deepEqual(
      queued.filter((job) => job.data.generation_id === accepted.id).map((job) => job.id),
      [`${accepted.id}-completed`],
    );
    assert.deepEqual(
      events.map((e) => e.event),
      ['completed'],
    );
    assert.equal(events[0].status, 'succeeded');
    assert.equal(receiver.failuresLeft, 0, 'the two failed attempts happened before the delivery');
  });

  test('a generation canceled while queued sends completed with status canceled, once', async () => {
    const generate = h.services.queues.get('generate');
    await generate.pause();
    try {
      const { id } = await json(
        await post(h.baseUrl, '/generations', { prompt: 'never runs', candidates: 1, webhook: receiverUrl }),
      );
      assert.equal((await fetch(`${h.baseUrl}/generations/${id}/cancel`, { method: 'POST' })).status, 202);
      await eventsFor(id, (list) => list.some((e) => e.event === 'completed'));
      // The worker that takes the job up finds the generation finished and runs nothing.
      await generate.resume();
      for (const deadline = Date.now() + 30_000; (await generate.getJobState(id)) !== 'completed';) {
        assert.ok(Date.now() < deadline, 'the job was taken up');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const events = await eventsFor(id, () => true);
      assert.deepEqual(
        events.map((e) => [e.event, e.status]),
        [['completed', 'canceled']],
      );
    } finally {
      await generate.resume();
    }
  });
});
