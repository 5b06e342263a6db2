// Each way the chaos soak once broke the service's promises, forced here instead of waited for:
// the interleaving that did it is made to happen (a job add that fails after reaching Redis, an
// idempotent retry racing the request it repeats, an attempt that runs on after losing its job,
// a store that cannot delete, a job BullMQ fails behind the lifecycle's back). Real Redis,
// BullMQ, engine and store throughout; the faults are injected at the edges.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { UnrecoverableError, Worker } from 'bullmq';
import { pino } from 'pino';
import { generationPrefix, imageKey } from '../../src/contracts/jobs.js';
import type { GenerationResult } from '../../src/contracts/records.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { queueKeyPrefix } from '../../src/queue/queues.js';
import { createRedis } from '../../src/queue/redis.js';
import { normalizeGenerationInput } from '../../src/service/generations.js';
import { newGenerationId } from '../../src/service/ids.js';
import type { ObjectStore } from '../../src/storage/index.js';
import { openGenerationChecker } from '../../src/worker/upkeep.js';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';
import { until } from './faults-harness.js';

const silent = pino({ level: 'silent' });

/** The files stored under a generation's prefix, content-type sidecars left out. */
async function storedFiles(h: Harness, id: string): Promise<string[]> {
  const names = await readdir(join(h.env.STORAGE_DIR, generationPrefix(id))).catch(() => [] as string[]);
  return names.filter((name) => !name.startsWith('.')).sort();
}

describe('a job add that fails', () => {
  let h: Harness;
  let restore: () => void;

  before(async () => {
    h = await startHarness({ worker: false });
  });
  afterEach(() => restore?.());
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  /** Replaces the generate queue's add for one test. */
  function interceptAdd(add: (real: () => Promise<unknown>) => Promise<unknown>): void {
    const queue = h.services.queues.get('generate');
    const original = queue.add.bind(queue);
    queue.add = ((...args: Parameters<typeof original>) => add(() => original(...args))) as typeof queue.add;
    restore = () => {
      queue.add = original;
    };
  }

  test('after reaching Redis: the client gets 503, and the job that exists runs nothing', async () => {
    interceptAdd(async (real) => {
      await real();
      throw new Error('Connection is closed.');
    });
    const answer = await post(h.baseUrl, '/generations', { prompt: 'the answer lost', candidates: 2, n: 1 });
    assert.equal(answer.status, 503);
    restore();
    const [job] = await h.services.queues.get('generate').getJobs(['waiting']);
    assert.ok(job, 'the add did reach Redis');
    assert.equal((await fetch(`${h.baseUrl}/generations/${job.id}`)).status, 404, 'no generation was accepted');
    assert.deepEqual((await json(await fetch(`${h.baseUrl}/generations`))).data, []);

    const worker = await h.startWorker();
    await until('the job is taken up', async () => (await job.getState()) === 'completed', 60_000);
    assert.deepEqual(await storedFiles(h, String(job.id)), [], 'nothing stored for a generation nobody has');
    await worker.stop();
  });

  test('an idempotent retry waits for the request it repeats, and never replays a generation taken back', async () => {
    let releaseAdd!: () => void;
    const addGate = new Promise<void>((resolve) => (releaseAdd = resolve));
    interceptAdd(async () => {
      await addGate;
      throw new Error('Connection is closed.');
    });
    const headers = { 'idempotency-key': 'retried-while-adding' };
    const body = { prompt: 'asked twice', candidates: 1, n: 1 };
    const first = post(h.baseUrl, '/generations', body, headers);
    const recordKey = serviceKeys(h.config.queuePrefix).idempotency(
      createHash('sha256').update('anonymous\nretried-while-adding').digest('hex'),
    );
    await until('the first request holds the key', async () => (await h.services.queues.redis.exists(recordKey)) === 1);
    let retryAnswered = false;
    const retry = post(h.baseUrl, '/generations', body, headers).finally(() => (retryAnswered = true));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(retryAnswered, false, 'the retry waits while the first request adds its job');

    restore();
    releaseAdd();
    assert.equal((await first).status, 503);
    const retried = await retry;
    assert.equal(retried.status, 202);
    assert.equal(retried.headers.get('idempotent-replayed'), null, 'a new generation, not the one taken back');
    const { id } = await json(retried);
    await h.startWorker();
    assert.equal((await waitFor(h.baseUrl, id, terminal, 120_000)).status, 'succeeded');
  });
});

describe('an attempt that runs on after a later attempt took its job', () => {
  let h: Harness;
  let releaseFirstAttempt!: () => void;
  const firstAttemptGate = new Promise<void>((resolve) => (releaseFirstAttempt = resolve));
  let firstAttemptStoring!: () => void;
  const firstAttemptBlocked = new Promise<void>((resolve) => (firstAttemptStoring = resolve));

  before(async () => {
    h = await startHarness({ worker: false });
    const inner = h.services.store;
    // The first attempt stalls in its first write, as a worker whose lock lapsed under load.
    const store: ObjectStore = {
      ...inner,
      async put(key, body, contentType) {
        if (key.includes('/a1-')) {
          firstAttemptStoring();
          await firstAttemptGate;
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

  test('cannot commit, and takes none of the later attempt’s images with it', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'two attempts at once', candidates: 2, n: 2, seed: 7 }),
    );
    const id: string = accepted.id;
    await firstAttemptBlocked;
    // The later attempt, as the worker that took the job over would run it.
    const lifecycle = h.services.generations.lifecycle;
    assert.deepEqual(await lifecycle.start(id), { outcome: 'run', attempt: 2 });
    const images = [1, 2].map((rank) => ({
      rank,
      key: imageKey(id, 2, rank, 'png'),
      score: 0.5,
      seed: rank,
      width: 32,
      height: 32,
      format: 'png' as const,
    }));
    for (const image of images) await h.services.store.put(image.key, new Uint8Array([image.rank]), 'image/png');
    const result: GenerationResult = {
      model: 'demo-shapes',
      prompt_tokens: 3,
      truncated: false,
      images,
      metrics: { queue_ms: 0, sample_ms: 1, decode_ms: 1, rerank_ms: 1, store_ms: 1, total_ms: 4 },
    };
    assert.equal(await lifecycle.commit(id, 2, result), 'committed');

    releaseFirstAttempt();
    const job = await h.services.queues.get('generate').getJob(id);
    await until('the first attempt ends', async () => (await job?.getState()) === 'completed', 60_000);
    await until(
      'the first attempt’s images are gone',
      async () => (await storedFiles(h, id)).every((name) => name.startsWith('a2-')),
      10_000,
    );
    const done = await json(await fetch(`${h.baseUrl}/generations/${id}`));
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(await storedFiles(h, id), ['a2-1.png', 'a2-2.png']);
    for (const image of done.images) assert.equal((await fetch(image.url)).status, 200);
    const events = await h.services.generations.events.read(id);
    assert.deepEqual(
      events.filter((event) => event.event === 'completed').map((event) => event.state.status),
      ['succeeded'],
    );
  });
});

describe('a store that cannot delete at first', () => {
  let h: Harness;
  let refusedDeletes = 0;

  before(async () => {
    h = await startHarness({ worker: false, env: { GENERATE_ATTEMPTS: '1' } });
    const inner = h.services.store;
    const store: ObjectStore = {
      ...inner,
      async put(key, body, contentType) {
        if (key.endsWith('-2.png')) throw new Error('disk full');
        return inner.put(key, body, contentType);
      },
      async deletePrefix(prefix) {
        if (refusedDeletes < 3) {
          refusedDeletes += 1;
          throw new Error('store unavailable');
        }
        return inner.deletePrefix(prefix);
      },
    };
    await h.startWorker({}, { store });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('a generation that failed after storing some images ends up keeping none', async () => {
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'half kept', candidates: 3, n: 3 }));
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 120_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.error?.code, 'storage_failed');
    await until('its images are deleted', async () => (await storedFiles(h, accepted.id)).length === 0, 30_000);
    assert.ok(refusedDeletes >= 3, 'the deletion was refused before it was done');
  });
});

describe('upkeep of open generations', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ worker: false });
  });
  after(() => h.close());

  const later = () => Date.now() + 10 * 60_000;

  test('a job BullMQ failed without the lifecycle hearing ends the generation failed, its event agreeing', async () => {
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'stalled out', candidates: 1 }));
    // A worker takes the job and BullMQ fails it for good, as when it stalled too often and the
    // worker that noticed died before telling anyone.
    const connection = createRedis(h.config.redis, 'blocking');
    const worker = new Worker('generate', null, {
      connection,
      prefix: queueKeyPrefix(h.config.queuePrefix, 'generate'),
      autorun: false,
    });
    try {
      const job = await worker.getNextJob('stalled-token');
      assert.equal(job?.id, accepted.id);
      await job.moveToFailed(new UnrecoverableError('job stalled more than allowable limit'), 'stalled-token', false);
    } finally {
      await worker.close();
      connection.disconnect();
    }
    const check = openGenerationChecker({
      lifecycle: h.services.generations.lifecycle,
      queue: h.services.queues.get('generate'),
      log: silent,
    });
    assert.equal(await check(later()), 1);
    const done = await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`));
    assert.deepEqual([done.status, done.error?.code], ['failed', 'worker_lost']);
    const events = await h.services.generations.events.read(accepted.id);
    assert.deepEqual(
      events.map((event) => [event.event, event.state.status]),
      [['completed', 'failed']],
    );
  });

  test('a generation whose request died before adding its job is taken back', async () => {
    const id = newGenerationId();
    const input = normalizeGenerationInput({ prompt: 'never queued', candidates: 1 }, 1);
    await h.services.generations.lifecycle.create({
      id,
      owner: 'anonymous',
      input,
      createdAt: new Date().toISOString(),
    });
    assert.equal((await json(await fetch(`${h.baseUrl}/generations/${id}`))).status, 'queued');
    const check = openGenerationChecker({
      lifecycle: h.services.generations.lifecycle,
      queue: h.services.queues.get('generate'),
      log: silent,
    });
    assert.equal(await check(later()), 1);
    assert.equal((await fetch(`${h.baseUrl}/generations/${id}`)).status, 404);
    const listed = (await json(await fetch(`${h.baseUrl}/generations`))).data.map((g: { id: string }) => g.id);
    assert.ok(!listed.includes(id), 'not listed either');
  });
});

describe('an upgrade from before records', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ worker: false });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('a job queued by an older version, without a record, is adopted and runs', async () => {
    const id = newGenerationId();
    const input = normalizeGenerationInput({ prompt: 'queued before records', candidates: 1 }, 1);
    await h.services.queues
      .get('generate')
      .add('generate', { input, created_at: new Date().toISOString(), owner: 'anonymous' }, { jobId: id });
    assert.equal((await fetch(`${h.baseUrl}/generations/${id}`)).status, 404, 'no record yet');
    await h.startWorker();
    await until('adopted', async () => (await fetch(`${h.baseUrl}/generations/${id}`)).status === 200, 60_000);
    const done = await waitFor(h.baseUrl, id, terminal, 120_000);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.images.length, 1);
  });
});
