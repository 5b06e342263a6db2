// Things that must not stop by themselves: a worker whose inference thread died stops taking
// jobs and /readyz says so; the retention sweep gets past generations stuck after retention;
// GET /models lists the packs of every live worker, not the last one to report.
import assert from 'node:assert/strict';
import type { Worker as ThreadWorker } from 'node:worker_threads';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { generationPrefix } from '../../src/contracts/jobs.js';
import type { ModelInfo } from '../../src/contracts/schemas.js';
import { createEngine } from '../../src/models/index.js';
import type { Engine } from '../../src/models/types.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { normalizeGenerationInput } from '../../src/service/generations.js';
import { newGenerationId } from '../../src/service/ids.js';
import { publishModels } from '../../src/service/model-registry.js';
import { sweepExpired } from '../../src/worker/retention.js';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

const silent = pino({ level: 'silent' });

async function readiness(h: Harness): Promise<number> {
  return (await fetch(`${h.baseUrl}/readyz`)).status;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not happen`);
}

describe('a dead inference thread', () => {
  let h: Harness;
  let engine: Engine | undefined;
  before(async () => {
    h = await startHarness({ worker: false, ownEngine: true });
  });
  after(async () => {
    await h.close();
    // Its other thread would keep the test process alive.
    await engine?.close();
    await closeSharedEngine();
  });

  test('stops the worker taking jobs and makes /readyz not ready', async () => {
    engine = await createEngine({
      modelsDir: 'packs',
      defaultPack: 'demo-shapes',
      cpuThreads: 1,
      logger: silent,
    });
    const failures: Error[] = [];
    // ownEngine: the harness hands this engine to the worker as it is.
    await h.startWorker({}, { engine, onEngineFailure: (error: Error) => failures.push(error) } as never);
    await until(async () => (await readiness(h)) === 200, 'ready');
    // The engine's own generation thread, ended as a crash would end it.
    const thread = (engine as unknown as { generation: { thread: ThreadWorker } }).generation.thread;
    await thread.terminate();
    await until(async () => (await readiness(h)) === 503, 'not ready');
    // Told once the worker has stopped, which may be after /readyz saw its queues close.
    await until(async () => failures.length > 0, 'the worker reported its engine failure');
    assert.equal(failures.length, 1);
    assert.match(failures[0].message, /inference thread exited/);

    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'after the crash', candidates: 1 }));
    assert.equal((await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`))).status, 'queued');
    // A healthy worker takes it: the dead one neither took nor failed it.
    await h.startWorker({}, {});
    assert.equal((await waitFor(h.baseUrl, accepted.id, terminal, 120_000)).status, 'succeeded');
  });
});

describe('retention sweep', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false });
  });
  after(() => h.close());

  test('100 generations stuck past retention do not hide an expired one behind them', async () => {
    const keys = serviceKeys(h.config.queuePrefix);
    const redis = h.services.queues.redis;
    const lifecycle = h.services.generations.lifecycle;
    const old = Date.now() - 60_000;
    const stuck = Array.from({ length: 120 }, (_, i) => newGenerationId(old + i));
    const input = normalizeGenerationInput({ prompt: 'stuck', candidates: 1 }, 1);
    for (const id of stuck) {
      await lifecycle.create({ id, owner: 'anonymous', input, createdAt: new Date(old).toISOString() });
    }
    const expired = newGenerationId(old + 500);
    await h.services.store.put(`${generationPrefix(expired)}a1-1.png`, new Uint8Array([1, 2, 3]), 'image/png');
    await redis.zadd(keys.generationIndex, 0, expired);

    const removed = await sweepExpired({
      queues: h.services.queues,
      keys,
      lifecycle,
      retentionSeconds: 1,
      log: silent,
    });
    assert.equal(removed, 1);
    assert.equal(await redis.zscore(keys.generationIndex, expired), null);
    assert.equal(await h.services.store.get(`${generationPrefix(expired)}a1-1.png`), null);
    assert.equal(await redis.zcard(keys.generationIndex), stuck.length, 'the stuck ones are left alone');
  });
});

async function listedNames(h: Harness): Promise<string[]> {
  return ((await json(await fetch(`${h.baseUrl}/models`))).data as ModelInfo[]).map((info) => info.name);
}

describe('the model registry across workers', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('workers serving different packs are all listed, and each pack is accepted', async () => {
    const keys = serviceKeys(h.config.queuePrefix);
    const served = (await json(await fetch(`${h.baseUrl}/models`))).data as ModelInfo[];
    const names = served.map((info) => info.name);
    assert.ok(names.includes('demo-shapes'));
    // Another worker, serving another pack, reports after this one.
    const other: ModelInfo = { ...served[0], name: 'other-pack', default_for: [] };
    await publishModels(h.services.queues.redis, keys, [other], 45);
    // The API keeps a copy of the registry that a change published on Redis invalidates, so it
    // sees the change a moment later, not on the very next read.
    await until(async () => (await listedNames(h)).includes('other-pack'), 'the other worker listed');
    assert.deepEqual((await listedNames(h)).sort(), [...names, 'other-pack'].sort());
    const accepted = await post(h.baseUrl, '/generations', {
      prompt: 'first worker',
      candidates: 1,
      model: 'demo-shapes',
    });
    assert.equal(accepted.status, 202, 'the first worker’s pack is still known');
    const unknown = await post(h.baseUrl, '/generations', { prompt: 'x', candidates: 1, model: 'third-pack' });
    assert.equal((await json(unknown)).code, 'unknown_model');
    assert.equal((await waitFor(h.baseUrl, (await json(accepted)).id, terminal, 120_000)).status, 'succeeded');
  });

  test('a worker that stops reporting drops out when its entry expires', async () => {
    const keys = serviceKeys(h.config.queuePrefix);
    const [served] = (await json(await fetch(`${h.baseUrl}/models`))).data as ModelInfo[];
    // Long enough to be seen listed on a busy machine, short enough to wait out.
    await publishModels(h.services.queues.redis, keys, [{ ...served, name: 'short-lived', default_for: [] }], 5);
    await until(async () => (await listedNames(h)).includes('short-lived'), 'the entry listed');
    await until(async () => !(await listedNames(h)).includes('short-lived'), 'the entry expired');
  });
});
