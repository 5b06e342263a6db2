// The webhook receiver down for a while: deliveries are retried with backoff and arrive once
// it is back. A receiver that keeps failing ends in the dead letter GET /generations/:id shows.
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { type Harness, freePort, json, post, startHarness, terminal, waitFor } from './api-harness.js';
import { type Service, spawnService, until, waitReadyz } from './faults-harness.js';
import { serviceKeys } from '../../src/service/redis-keys.js';

const BACKOFF_MS = 150;
const ATTEMPTS = 6;

interface Attempt {
  at: number;
  status: number;
  body: any;
}

/** A loopback receiver answering each request with the status `answer(body)` gives. */
async function receiver(
  port: number,
  answer: (body: any) => number | Promise<number>,
  attempts: Attempt[],
): Promise<Server> {
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const parsed = JSON.parse(body);
      const at = Date.now();
      void Promise.resolve(answer(parsed)).then((status) => {
        attempts.push({ at, status, body: parsed });
        response.writeHead(status).end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

describe('fault: webhook receiver down', () => {
  let h: Harness;
  let worker: Service;
  const servers: Server[] = [];

  before(async () => {
    const env = {
      WEBHOOK_BACKOFF_MS: String(BACKOFF_MS),
      WEBHOOK_ATTEMPTS: String(ATTEMPTS),
      OUTBOUND_ALLOW: '127.0.0.1',
    };
    h = await startHarness({ worker: false, env });
    worker = spawnService('src/worker/main.ts', { ...h.env, CPU_THREADS: '1', LOG_LEVEL: 'warn' });
    await waitReadyz(h.baseUrl, 200);
  });
  after(async () => {
    for (const server of servers) server.close();
    await worker?.stop();
    await h.close();
  });

  test('refused, then 503, then up: delivered once, after retries spaced by the backoff', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/hook`;
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'hold the hook',
        candidates: 2,
        n: 1,
        webhook: url,
        webhook_events_filter: ['completed'],
      }),
    );
    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    assert.equal(done.status, 'succeeded');
    // Nothing listens yet: connections are refused and the job backs off.
    const webhooks = h.services.queues.get('webhooks');
    await until(
      'two refused attempts',
      async () => ((await webhooks.getJob(`${accepted.id}-completed`))?.attemptsMade ?? 0) >= 2,
      15_000,
      20,
    );

    const attempts: Attempt[] = [];
    let unavailable = 1;
    servers.push(await receiver(port, () => (unavailable-- > 0 ? 503 : 204), attempts));
    await until('the delivery', () => attempts.some((attempt) => attempt.status === 204), 15_000, 20);
    // Once the job is completed no attempt can follow.
    await until(
      'the webhook job completed',
      async () => (await (await webhooks.getJob(`${accepted.id}-completed`))?.getState()) === 'completed',
      15_000,
      20,
    );
    assert.deepEqual(
      attempts.map((attempt) => attempt.status),
      [503, 204],
      'one 503, then delivered once',
    );
    assert.ok(attempts[1].at - attempts[0].at >= BACKOFF_MS, 'the retry waited for the backoff');
    assert.equal(attempts[1].body.event, 'completed');
    assert.equal(attempts[1].body.id, accepted.id);
    assert.equal(attempts[1].body.status, 'succeeded');
    const job = await webhooks.getJob(`${accepted.id}-completed`);
    assert.equal(await job?.getState(), 'completed');
    assert.ok((job?.attemptsMade ?? 0) >= 3, `attempts: ${job?.attemptsMade}`);
    assert.equal((await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`))).webhook, null, 'no dead letter');
  });

  test('a receiver that always answers 503 ends in a dead letter after every attempt', async () => {
    const attempts: Attempt[] = [];
    const port = await freePort();
    servers.push(await receiver(port, () => 503, attempts));
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'never heard',
        candidates: 2,
        n: 1,
        webhook: `http://127.0.0.1:${port}/hook`,
        webhook_events_filter: ['completed'],
      }),
    );
    const failed = await waitFor(h.baseUrl, accepted.id, (g) => g.webhook !== null, 30_000);
    assert.equal(failed.status, 'succeeded', 'the generation itself succeeded');
    assert.deepEqual(failed.webhook, {
      status: 'failed',
      event: 'completed',
      attempts: ATTEMPTS,
      last_error: `webhook receiver http://127.0.0.1:${port} answered 503`,
    });
    assert.equal(attempts.length, ATTEMPTS);
    for (let i = 1; i < attempts.length; i += 1)
      assert.ok(attempts[i].at - attempts[i - 1].at >= BACKOFF_MS, `gap ${i}`);
    // Exponential: the last gap is well beyond the first.
    assert.ok(attempts[ATTEMPTS - 1].at - attempts[ATTEMPTS - 2].at > 4 * BACKOFF_MS);
    assert.equal(
      await (await h.services.queues.get('webhooks').getJob(`${accepted.id}-completed`))?.getState(),
      'failed',
    );
  });

  test('a webhook whose last attempt fails inside the service is shown given up on too', async () => {
    const attempts: Attempt[] = [];
    const port = await freePort();
    const keys = serviceKeys(h.config.queuePrefix);
    // The first delivery is refused, and meanwhile its event leaves the log: the retry then
    // fails inside the service (UnrecoverableError), never reaching the receiver.
    servers.push(
      await receiver(
        port,
        async (event: { id: string }) => {
          await h.services.queues.redis.del(keys.eventIds(event.id));
          return 503;
        },
        attempts,
      ),
    );
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'lost event',
        candidates: 2,
        n: 1,
        webhook: `http://127.0.0.1:${port}/hook`,
        webhook_events_filter: ['completed'],
      }),
    );
    const failed = await waitFor(h.baseUrl, accepted.id, (g) => g.webhook !== null, 30_000);
    assert.equal(failed.status, 'succeeded');
    assert.equal(attempts.length, 1, 'the retry never reached the receiver');
    assert.deepEqual(failed.webhook, {
      status: 'failed',
      event: 'completed',
      attempts: 2,
      last_error: `event ${accepted.id}-completed is no longer in the log of generation ${accepted.id}`,
    });
  });

  test('a 4xx answer is final at once: a dead letter after one attempt', async () => {
    const attempts: Attempt[] = [];
    const port = await freePort();
    servers.push(await receiver(port, () => 410, attempts));
    const accepted = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'gone away',
        candidates: 2,
        n: 1,
        webhook: `http://127.0.0.1:${port}/hook`,
        webhook_events_filter: ['completed'],
      }),
    );
    const failed = await waitFor(h.baseUrl, accepted.id, (g) => g.webhook !== null, 30_000);
    assert.deepEqual(failed.webhook, {
      status: 'failed',
      event: 'completed',
      attempts: 1,
      last_error: `webhook receiver http://127.0.0.1:${port} answered 410`,
    });
    assert.equal(attempts.length, 1);
  });
});
