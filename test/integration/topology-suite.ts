// The service on a Redis Cluster or behind Sentinel, started for real on loopback (one test
// file each: redis-cluster.test.ts, redis-sentinel.test.ts): the core of what it promises
// (generate with a webhook and its event stream, idempotent retries, cancel, classify) holds,
// and a generation running while a replica is promoted, or while its master is killed,
// succeeds, the same API and worker going on without a restart.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Redis } from 'ioredis';
import sharp from 'sharp';
import { ClassifyResponse, GenerationAccepted } from '../../src/contracts/schemas.js';
import { queueKeyPrefix } from '../../src/queue/queues.js';
import { createRedis, keySlot as slotOf, waitForReplicas, writeMark } from '../../src/queue/redis.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import {
  type Harness,
  type WebhookReceiver,
  closeSharedEngine,
  json,
  post,
  startHarness,
  startWebhookReceiver,
  terminal,
  waitFor,
} from './api-harness.js';
import { type RedisTopologyHarness, startRedisTopology } from './redis-topologies.js';
import { collectEvents, openEventStream } from './sse-client.js';

const red = () =>
  sharp({ create: { width: 32, height: 32, channels: 3, background: '#d02020' } })
    .png()
    .toBuffer();

/** The key layout a Cluster needs; pure, so the Cluster's file runs it. */
export function keyLayoutTests(): void {
  test('each queue and the keys of ours a script uses with it share a slot; the queues do not', () => {
    const keys = serviceKeys('dalle');
    const generate = queueKeyPrefix('dalle', 'generate');
    const classify = queueKeyPrefix('dalle', 'classify');
    const generationKeys = [
      `${generate}:generate:wait`,
      `${generate}:generate:01J0000000`,
      keys.generation('01J0000000'),
      keys.events('01J0000000'),
      keys.eventIds('01J0000000'),
      keys.webhookOutbox,
      keys.openGenerations,
      keys.storageGarbage,
      keys.generationIndex,
      keys.ownerGenerations('key-1'),
      keys.idempotency('abc'),
    ];
    assert.equal(new Set(generationKeys.map(slotOf)).size, 1, 'a generation and its queue: one slot');
    const clipKeys = [`${classify}:classify:wait`, keys.clipPlaces, keys.requests('key-1', 29_000_000)];
    assert.equal(new Set(clipKeys.map(slotOf)).size, 1, 'a CLIP request, its rate counters and its queue: one slot');
    const queues = ['generate', 'classify', 'webhooks'] as const;
    const slots = queues.map((queue) => slotOf(`${queueKeyPrefix('dalle', queue)}:${queue}:wait`));
    assert.equal(new Set(slots).size, queues.length, 'one slot per queue');
  });
}

export function topologySuite(kind: 'cluster' | 'sentinel'): void {
  describe(`on Redis ${kind === 'cluster' ? 'Cluster' : 'Sentinel'}`, () => {
    let dir: string;
    let topology: RedisTopologyHarness;
    let h: Harness;
    let receiver: WebhookReceiver;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `dalle-${kind}-`));
      topology = await startRedisTopology(kind, dir);
      h = await startHarness({
        env: {
          ...topology.env,
          PROGRESS_EVENT_INTERVAL_MS: '20',
          SAMPLE_BATCH: '8',
          // A job whose lock was lost with a master is taken up again within seconds.
          LOCK_DURATION_MS: '5000',
          STALLED_INTERVAL_MS: '2000',
        },
      });
      receiver = await startWebhookReceiver();
    });
    after(async () => {
      // A teardown that hangs says which step and what it holds open, not only that the file timed out.
      let step = 'the webhook receiver';
      const watchdog = setInterval(() => {
        console.error(`# teardown still closing ${step}: ${process.getActiveResourcesInfo().join(', ')}`);
      }, 20_000).unref();
      await receiver?.close();
      step = 'the harness';
      await h?.close();
      step = `the ${kind}`;
      await topology?.stop();
      clearInterval(watchdog);
      await rm(dir, { recursive: true, force: true });
      await closeSharedEngine();
    });

    /** A generation to the end, its events streamed; what the poll, the stream and the webhook said. */
    async function generate(prompt: string) {
      const accepted = await json(
        await post(h.baseUrl, '/generations', { prompt, candidates: 8, n: 2, webhook: receiver.url }),
        GenerationAccepted,
      );
      const stream = await openEventStream(accepted.urls.stream);
      const streamed = collectEvents(stream);
      const done = await waitFor(h.baseUrl, accepted.id, terminal, 30_000).finally(() =>
        // The stream ends by itself after the last event; dropped if the generation never ends.
        setTimeout(() => stream.close(), 10_000).unref(),
      );
      const events = await streamed;
      return { accepted, events, done };
    }

    test('a generation succeeds with its images, its events streamed and its webhook delivered', async () => {
      const { accepted, events, done } = await generate('a red circle');
      assert.equal(done.status, 'succeeded');
      assert.equal(done.images.length, 2);
      for (const image of done.images) assert.equal((await fetch(image.url)).status, 200);
      // A stream opened after the start still ends with the outcome.
      assert.equal(events.at(-1)?.event, 'completed');
      const delivered = await waitForDelivery(receiver, accepted.id);
      assert.equal(JSON.parse(delivered).status, 'succeeded');
    });

    test('a retried POST with the same Idempotency-Key is the same generation', async () => {
      const body = { prompt: 'a blue square', candidates: 4, n: 1 };
      const key = `retry-${kind}`;
      const first = await json(await post(h.baseUrl, '/generations', body, { 'idempotency-key': key }));
      const second = await json(await post(h.baseUrl, '/generations', body, { 'idempotency-key': key }));
      assert.equal(second.id, first.id);
      assert.equal((await waitFor(h.baseUrl, first.id, terminal)).status, 'succeeded');
    });

    test('cancel ends a running generation canceled', async () => {
      const accepted = await json(
        await post(h.baseUrl, '/generations', { prompt: 'a long one', candidates: 512, n: 1 }),
        GenerationAccepted,
      );
      await waitFor(h.baseUrl, accepted.id, (g) => g.status === 'processing' && g.progress !== null);
      assert.equal((await fetch(accepted.urls.cancel, { method: 'POST' })).status, 202);
      const done = await waitFor(h.baseUrl, accepted.id, terminal, 30_000);
      assert.equal(done.status, 'canceled');
      assert.deepEqual(done.images, []);
    });

    if (kind === 'cluster') {
      test("the slots the service computes are the Cluster's own", async () => {
        const keys = serviceKeys(h.config.queuePrefix);
        for (const key of [keys.generation('01J0000000'), keys.clipPlaces, keys.modelsEntries, 'no-tag']) {
          assert.equal(slotOf(key), await topology.keySlot?.(key), key);
        }
      });
    }

    test('classify answers through the classify queue', async () => {
      const response = await post(h.baseUrl, '/clip/classify', {
        image: { base64: (await red()).toString('base64') },
        labels: ['a red square', 'a green square'],
      });
      assert.equal(response.status, 200);
      const [result] = (await json(response, ClassifyResponse)).results;
      assert.deepEqual(result?.labels.map((entry) => entry.label).sort(), ['a green square', 'a red square']);
    });

    /**
     * POSTs as a careful client does: a 503 (a replica did not confirm in time, the master is
     * moving) is retried with the same Idempotency-Key until the generation is accepted.
     */
    async function accept(body: object, key: string) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const response = await post(h.baseUrl, '/generations', body, { 'idempotency-key': key });
        if (response.status !== 503 || Date.now() > deadline) return json(response, GenerationAccepted);
        await response.arrayBuffer();
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }

    if (kind === 'sentinel')
      test('a client whose connect attempt a failover announcement closes connects again', async () => {
        const client = createRedis(h.config.redis, 'commands', { connectionName: 'dalle-serve:probe' }) as Redis;
        client.on('error', () => {});
        try {
          assert.equal(await client.ping(), 'PONG');
          // What ioredis's failover detector does when the sentinels announce a new master: it
          // closes the connector. Here it comes while the client asks the sentinels where the
          // master is, the window a killed master opens.
          const { connector } = client as unknown as { connector: { disconnect(): void } };
          client.once('connecting', () => connector.disconnect());
          // (events.once would reject on the 'error' the failed attempt emits.)
          const ended = new Promise((resolve) => client.once('end', resolve));
          client.disconnect(true);
          await ended;
          await Promise.race([
            new Promise((resolve) => client.once('ready', resolve)),
            new Promise((_, reject) => setTimeout(() => reject(new Error(`still ${client.status}`)), 10_000)),
          ]);
          assert.equal(await client.ping(), 'PONG');
        } finally {
          client.disconnect();
        }
      });

    if (kind === 'sentinel')
      test('a write counts as held by a replica only on the socket it went through', async () => {
        const client = createRedis(h.config.redis, 'commands', { connectionName: 'dalle-serve:probe' }) as Redis;
        client.on('error', () => {});
        const key = `${h.config.queuePrefix}probe:written`;
        try {
          await client.set(key, 'first');
          const written = writeMark(client, key);
          assert.equal(await waitForReplicas(client, key, 1, 5000, written), 1);
          await client.set(key, 'second');
          const second = writeMark(client, key);
          // As a failover announcement does: the client connects again, maybe to a new master
          // that lacks the write. WAIT on the new socket would answer at once, whatever became of it.
          const ready = new Promise((resolve) => client.once('ready', resolve));
          client.disconnect(true);
          await ready;
          assert.equal(await waitForReplicas(client, key, 1, 5000, second), 0, 'in doubt');
          await client.set(key, 'third');
          assert.equal(await waitForReplicas(client, key, 1, 5000, writeMark(client, key)), 1);
        } finally {
          client.disconnect();
        }
      });

    for (const fault of ['failover', 'killMaster'] as const) {
      const what = fault === 'failover' ? 'a replica is promoted' : 'its master is killed and replaced';
      test(`while ${what}, the running generation succeeds and the same API and worker go on`, async () => {
        const generateKey = `${queueKeyPrefix(h.config.queuePrefix, 'generate')}:generate:wait`;
        const running = await accept({ prompt: 'a red circle', candidates: 256, n: 2 }, `${fault}-running`);
        const started = await waitFor(h.baseUrl, running.id, (g) => g.status !== 'queued');
        assert.equal(started.status, 'processing', 'the fault comes while it runs');
        await topology[fault](generateKey);
        const ran = await waitFor(h.baseUrl, running.id, terminal, 60_000);
        assert.equal(ran.status, 'succeeded', JSON.stringify(ran.error));
        assert.equal(ran.images.length, 2);
        for (const image of ran.images) assert.equal((await fetch(image.url)).status, 200);

        const after = await accept({ prompt: 'a green triangle', candidates: 8, n: 2 }, `${fault}-after`);
        const done = await waitFor(h.baseUrl, after.id, terminal, 60_000);
        assert.equal(done.status, 'succeeded');
        const classified = await post(h.baseUrl, '/clip/classify', {
          image: { base64: (await red()).toString('base64') },
          labels: ['a red square', 'a green square'],
        });
        assert.equal(classified.status, 200);
      });
    }
  });
}

async function waitForDelivery(receiver: WebhookReceiver, id: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const delivery = receiver.deliveries.find((d) => d.body.includes(id) && d.body.includes('"event":"completed"'));
    if (delivery) return delivery.body;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no completed webhook for ${id}`);
}
