// The event log under a worker killed with SIGKILL: a retried attempt writes no event twice and
// renumbers none (each webhook-id is one event, delivered once), and a worker killed as the
// terminal event is written still ends with exactly one `completed` webhook.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type RedisClient, createRedis } from '../../src/queue/redis.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import {
  type Harness,
  type WebhookReceiver,
  json,
  post,
  startHarness,
  startWebhookReceiver,
  terminal,
  waitFor,
} from './api-harness.js';
import { type Service, spawnService, until } from './faults-harness.js';
import { collectEvents, openEventStream } from './sse-client.js';

describe('fault: the event log across a killed worker', () => {
  let h: Harness;
  let receiver: WebhookReceiver;
  let reader: RedisClient;
  const services: Service[] = [];
  const env = {
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    MAX_STALLED_COUNT: '2',
    PROGRESS_EVENT_INTERVAL_MS: '50',
  };
  const workerEnv = { SAMPLE_BATCH: '8', CPU_THREADS: '1', LOG_LEVEL: 'warn' };

  before(async () => {
    h = await startHarness({ worker: false, env });
    receiver = await startWebhookReceiver();
    reader = createRedis(h.config.redis, 'commands');
  });
  after(async () => {
    reader.disconnect();
    for (const service of services) await service.stop();
    await receiver.close();
    await h.close();
  });

  function startWorker(queues: string): Service {
    const service = spawnService('src/worker/main.ts', { ...h.env, ...workerEnv, WORKER_QUEUES: queues });
    services.push(service);
    return service;
  }

  const eventsKey = (id: string) => serviceKeys(h.config.queuePrefix).events(id);
  async function logged(id: string): Promise<{ id: string; event: string }[]> {
    const entries = await reader.xrange(eventsKey(id), '-', '+');
    return entries.map(([, fields]) => ({
      id: fields[fields.indexOf('id') + 1],
      event: fields[fields.indexOf('event') + 1],
    }));
  }
  const deliveredFor = (id: string) =>
    receiver.deliveries.filter((d) => String(d.headers['webhook-id']).startsWith(id));

  test('a retried attempt adds progress events without repeating ids; every event is delivered once', async () => {
    const webhooks = startWorker('webhooks');
    const first = startWorker('generate');
    await until('a generate worker', async () => (await h.services.queues.workerCounts()).generate === 1, 60_000);
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'a red circle on blue',
        candidates: 256,
        n: 2,
        seed: 99,
        webhook: receiver.url,
      }),
    );
    const progressBefore = await until(
      'progress events logged',
      async () => {
        const events = (await logged(accepted.id)).filter((e) => e.event === 'progress');
        return events.length >= 3 ? events : undefined;
      },
      60_000,
      20,
    );
    await first.stop('SIGKILL');
    const beforeKill = (await logged(accepted.id)).map((e) => e.id);
    assert.ok(beforeKill.length > progressBefore.length);
    startWorker('generate');
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 120_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));

    const log = await logged(accepted.id);
    const ids = log.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'no event id written twice');
    assert.deepEqual(ids.slice(0, beforeKill.length), beforeKill, 'the first attempt’s events stay as they were');
    assert.ok(log.length > beforeKill.length, 'the second attempt wrote events of its own');
    assert.equal(log.filter((e) => e.event === 'completed').length, 1);

    await until('every logged event delivered', () => deliveredFor(accepted.id).length >= log.length, 60_000);
    const delivered = deliveredFor(accepted.id).map((d) => String(d.headers['webhook-id']));
    assert.equal(new Set(delivered).size, delivered.length, 'no webhook-id delivered twice');
    assert.deepEqual([...delivered].sort(), [...ids].sort(), 'the webhooks are the log');
    await webhooks.stop('SIGKILL');
  });

  test('a worker killed as the terminal event is written: one completed webhook, the generation succeeded', async () => {
    const first = startWorker('generate,webhooks');
    await until('a generate worker', async () => (await h.services.queues.workerCounts()).generate >= 1, 60_000);
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'a blue square',
        candidates: 64,
        n: 2,
        seed: 5,
        webhook: receiver.url,
        webhook_events_filter: ['completed'],
      }),
    );
    // Blocks on the log and kills the worker the moment `completed` is in it: before, or just
    // after, the webhook job is queued, and before BullMQ has marked the job completed.
    let cursor = '0-0';
    for (let seen = false; !seen;) {
      const reply = (await reader.xread('BLOCK', 60_000, 'STREAMS', eventsKey(accepted.id), cursor)) as
        [string, [string, string[]][]][] | null;
      assert.ok(reply, 'the log grows');
      for (const [entryId, fields] of reply[0][1]) {
        cursor = entryId;
        if (fields[fields.indexOf('event') + 1] === 'completed') seen = true;
      }
    }
    await first.stop('SIGKILL');

    startWorker('generate,webhooks');
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 120_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    await until('the completed webhook', () => deliveredFor(accepted.id).length >= 1, 60_000);
    const delivered = deliveredFor(accepted.id);
    const webhookJobs = await h.services.queues
      .get('webhooks')
      .getJobs(['completed', 'waiting', 'active', 'delayed', 'failed']);
    assert.deepEqual(
      webhookJobs.map((job) => job.id).filter((id) => id?.startsWith(accepted.id)),
      [`${accepted.id}-completed`],
      'one webhook job for the generation',
    );
    assert.equal(delivered.length, 1);
    const body = JSON.parse(delivered[0].body);
    assert.deepEqual([body.event, body.status, body.images.length], ['completed', 'succeeded', 2]);
    assert.deepEqual(
      body.images.map((image: any) => image.seed),
      done.images.map((image: any) => image.seed),
    );
    // The stream agrees: its terminal event is the same event.
    const events = await collectEvents(await openEventStream(accepted.urls.stream));
    assert.deepEqual(
      events.map((e) => [e.id, e.body.status]),
      [[String(delivered[0].headers['webhook-id']), 'succeeded']],
    );
  });
});
