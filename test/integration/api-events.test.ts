// GET /generations/:id/events: the generation's event log as server-sent events, the same
// bodies as its webhooks; resumable with Last-Event-ID; a heartbeat while idle; owned like the
// rest; followed on one Redis connection per API process, which disconnects free.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { serviceKeys } from '../../src/service/redis-keys.js';
import {
  type Harness,
  type WebhookReceiver,
  closeSharedEngine,
  freePort,
  json,
  post,
  startHarness,
  startWebhookReceiver,
  waitFor,
  terminal,
} from './api-harness.js';
import { type PrivateRedis, type Service, privateRedis, spawnService, until } from './faults-harness.js';
import { collectEvents, openEventStream } from './sse-client.js';

const ALICE = { authorization: 'Bearer alice-key-0123456789abcdef' };
const BOB = { authorization: 'Bearer bob-key-0123456789abcdef01' };

async function loggedIds(h: Harness, id: string): Promise<string[]> {
  const entries = await h.services.queues.redis.xrange(serviceKeys(h.config.queuePrefix).events(id), '-', '+');
  return entries.map(([, fields]) => fields[fields.indexOf('id') + 1]);
}

describe('event stream', () => {
  let h: Harness;
  let receiver: WebhookReceiver;

  before(async () => {
    h = await startHarness({ env: { PROGRESS_EVENT_INTERVAL_MS: '20', SAMPLE_BATCH: '16' } });
    receiver = await startWebhookReceiver();
  });
  after(async () => {
    await receiver.close();
    await h.close();
    await closeSharedEngine();
  });

  test('start, progress and completed, each with an id; the same bodies as the webhooks', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'a red circle',
        candidates: 256,
        n: 2,
        seed: 7,
        webhook: receiver.url,
      }),
    );
    assert.equal(accepted.urls.stream, `${h.baseUrl}/generations/${accepted.id}/events`);
    const stream = await openEventStream(accepted.urls.stream);
    assert.equal(stream.status, 200);
    assert.match(stream.contentType ?? '', /^text\/event-stream/);
    const events = await collectEvents(stream);

    const names = events.map((e) => e.event);
    assert.equal(names[0], 'start');
    assert.equal(names.at(-1), 'completed');
    assert.equal(names.filter((name) => name === 'completed').length, 1);
    assert.ok(names.filter((name) => name === 'progress').length >= 2, names.join());
    assert.deepEqual(
      events.map((e) => e.id),
      await loggedIds(h, accepted.id),
      'every logged event, in log order, with its id',
    );
    for (const e of events) assert.equal(e.body.event, e.event);
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.body);
    assert.ok(progress.every((body) => body.status === 'processing' && body.progress.total > 0));
    const completed = events.at(-1)!.body;
    assert.equal(completed.status, 'succeeded');
    assert.equal(completed.images.length, 2);
    assert.equal(completed.urls.stream, accepted.urls.stream);

    // The webhooks read the same log: the same ids, and the same bodies but for the signed URLs.
    await until('all webhooks delivered', () => receiver.deliveries.length === events.length, 30_000);
    const hooks = new Map(receiver.deliveries.map((d) => [String(d.headers['webhook-id']), JSON.parse(d.body)]));
    for (const e of events) {
      const hook = hooks.get(e.id);
      assert.ok(hook, `webhook for ${e.id}`);
      const strip = (body: any) => ({
        ...body,
        images: body.images.map((i: any) => ({ ...i, url: 0, expires_at: 0 })),
      });
      assert.deepEqual(strip(hook), strip(e.body));
    }
    const view = await json(await fetch(accepted.urls.get));
    assert.equal(view.urls.stream, accepted.urls.stream);
  });

  test('Last-Event-ID resumes after a dropped connection: the rest and the terminal event, exactly once', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a blue square', candidates: 256, n: 2, seed: 8 }),
    );
    const first = await openEventStream(accepted.urls.stream);
    const before = await collectEvents(first, (frame) => frame.event === 'progress');
    first.close();
    assert.deepEqual(
      before.map((e) => e.event),
      ['start', 'progress'],
    );
    const second = await openEventStream(accepted.urls.stream, { lastEventId: before.at(-1)!.id });
    const rest = await collectEvents(second);
    const ids = [...before, ...rest].map((e) => e.id);
    assert.deepEqual(ids, await loggedIds(h, accepted.id), 'each event once, none missing');
    assert.equal(rest.filter((e) => e.event === 'completed').length, 1);
    assert.equal(rest.at(-1)!.event, 'completed');
  });

  test('a finished generation answers with its terminal event at once, then closes', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a green circle', candidates: 8, n: 1 }),
    );
    await waitFor(h.baseUrl, accepted.id, terminal);
    const events = await collectEvents(await openEventStream(accepted.urls.stream));
    assert.deepEqual(
      events.map((e) => [e.id, e.event, e.body.status]),
      [[`${accepted.id}-completed`, 'completed', 'succeeded']],
    );
    // Resuming from the terminal event: nothing is left to send.
    const resumed = await openEventStream(accepted.urls.stream, { lastEventId: `${accepted.id}-completed` });
    assert.deepEqual(await collectEvents(resumed), []);
  });

  test('an unknown generation is a 404 problem', async () => {
    const stream = await openEventStream(`${h.baseUrl}/generations/0190b6a6-0000-7000-8000-000000000000/events`);
    assert.equal(stream.status, 404);
    stream.close();
  });

  test('works across API processes: subscribed on another API, the worker’s progress arrives', async () => {
    const port = await freePort();
    const other: Service = spawnService('src/api/main.ts', {
      ...h.env,
      PORT: String(port),
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    });
    try {
      const otherUrl = `http://127.0.0.1:${port}`;
      await until('the second API', async () => (await fetch(`${otherUrl}/healthz`)).ok, 60_000, 200);
      const accepted = await json(
        await post(h.baseUrl, '/generations', { prompt: 'a red square', candidates: 256, n: 2 }),
      );
      const events = await collectEvents(await openEventStream(`${otherUrl}/generations/${accepted.id}/events`));
      assert.equal(events[0].event, 'start');
      assert.ok(events.some((e) => e.event === 'progress'));
      assert.equal(events.at(-1)!.body.status, 'succeeded');
    } finally {
      await other.stop('SIGTERM');
    }
  });
});

describe('event stream with API keys, while queued', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({
      worker: false,
      env: {
        API_KEYS: 'alice:alice-key-0123456789abcdef,bob:bob-key-0123456789abcdef01',
        SSE_HEARTBEAT_MS: '50',
      },
    });
  });
  after(() => h.close());

  test('another key gets 404; the owner gets heartbeats, then the terminal event of a cancel', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a red circle', candidates: 8 }, ALICE),
    );
    const denied = await openEventStream(accepted.urls.stream, { headers: BOB });
    assert.equal(denied.status, 404);
    denied.close();
    const anonymous = await openEventStream(accepted.urls.stream);
    assert.equal(anonymous.status, 401);
    anonymous.close();

    const stream = await openEventStream(accepted.urls.stream, { headers: ALICE });
    assert.equal(stream.status, 200);
    // Read by hand: breaking out of a for-await would end the stream.
    for (let heartbeats = 0; heartbeats < 2;) {
      const { value } = await stream.frames.next();
      assert.ok(value && value.data === undefined, 'nothing but heartbeats while queued');
      if (value.comment === 'heartbeat') heartbeats += 1;
    }
    const canceled = await post(h.baseUrl, `/generations/${accepted.id}/cancel`, {}, ALICE);
    assert.equal(canceled.status, 202);
    const events = await collectEvents(stream);
    assert.deepEqual(
      events.map((e) => [e.event, e.body.status]),
      [['completed', 'canceled']],
    );
  });
});

describe('event stream resources', () => {
  let redis: PrivateRedis;
  let dir: string;
  let h: Harness;
  let probe: Redis;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dalle-events-redis-'));
    redis = await privateRedis(dir);
    await redis.start();
    // A Redis of its own: CLIENT LIST then counts this test's connections only.
    h = await startHarness({ worker: false, env: { REDIS_URL: redis.url } });
    probe = new Redis(redis.url);
  });
  after(async () => {
    probe.disconnect();
    await h.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const openCount = async (baseUrl: string) => {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    return Number(/^dalle_event_streams_open (\d+)/m.exec(text)?.[1]);
  };
  const clients = async () =>
    (
      String(await probe.client('LIST'))
        .trim()
        .split('\n') as string[]
    ).length;

  test('200 streams share one reader; dropped, they free everything within 5 s', async () => {
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'a red circle', candidates: 8 }));
    const baseline = await clients();
    const streams = await Promise.all(Array.from({ length: 200 }, () => openEventStream(accepted.urls.stream)));
    assert.ok(streams.every((stream) => stream.status === 200));
    await until('200 open streams', async () => (await openCount(h.baseUrl)) === 200, 30_000);
    await until('the shared reader', async () => (await clients()) === baseline + 1, 10_000);
    for (const stream of streams) stream.close();
    const deadline = Date.now() + 5_000;
    await until('no open stream', async () => (await openCount(h.baseUrl)) === 0, 5_000, 50);
    await until(
      'Redis clients back to the baseline',
      async () => (await clients()) === baseline,
      deadline - Date.now(),
      50,
    );
  });
});
