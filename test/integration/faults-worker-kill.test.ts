// A worker killed with SIGKILL mid-generation: its lock expires, the stalled-job check of a
// restarted worker puts the job back, and it completes once; storage ends up holding exactly
// the final images of that generation.
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { type GenerateJob, currentState } from '../../src/service/generation-view.js';
import { type Harness, json, post, startHarness, terminal, waitFor } from './api-harness.js';
import { type Service, spawnService, waitReadyz } from './faults-harness.js';

describe('fault: worker killed mid-generation', () => {
  let h: Harness;
  const services: Service[] = [];
  // Short lock and stall check, so a dead worker's job is noticed within seconds.
  const env = { LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000', MAX_STALLED_COUNT: '2' };
  const workerEnv = {
    GENERATE_BATCH_CANDIDATES: '8',
    CPU_THREADS: '1',
    WORKER_QUEUES: 'generate,classify,webhooks',
    LOG_LEVEL: 'warn',
  };

  before(async () => {
    h = await startHarness({ worker: false, env });
  });
  after(async () => {
    for (const service of services) await service.stop();
    await h.close();
  });

  function startWorker(): Service {
    const service = spawnService('src/worker/main.ts', { ...h.env, ...workerEnv });
    services.push(service);
    return service;
  }

  test('the job runs again on a restarted worker and completes; storage holds exactly its images', async () => {
    const first = startWorker();
    await waitReadyz(h.baseUrl, 200);
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a red circle on blue', candidates: 256, n: 3, seed: 1234 }),
    );
    await waitFor(
      h.baseUrl,
      accepted.id,
      (g) => g.status === 'processing' && g.progress?.stage === 'sampling' && g.progress.completed > 0,
      60_000,
    );
    await first.stop('SIGKILL');
    assert.equal(first.child.signalCode, 'SIGKILL');

    // What a kill during the storing stage would leave: a temp file cut short. A re-run must
    // not leave it beside the final images.
    const folder = join(h.config.storage.kind === 'fs' ? h.config.storage.dir : '', 'generations', accepted.id);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, '.2.png.0123456789ab.tmp'), 'cut short');

    const killed = await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`));
    assert.notEqual(killed.status, 'failed', 'a lost worker does not fail the generation');
    startWorker();
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 90_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.input.seed, 1234);
    assert.deepEqual(
      done.images.map((image: any) => image.rank),
      [1, 2, 3],
    );
    for (const image of done.images) assert.equal((await fetch(image.url)).status, 200);

    const job = await h.services.queues.get('generate').getJob(accepted.id);
    assert.equal(job?.stalledCounter, 1, 'picked up again once, after the stall');
    const files = (await readdir(folder)).sort();
    assert.deepEqual(files, ['.1.png.type', '.2.png.type', '.3.png.type', '1.png', '2.png', '3.png']);
    assert.deepEqual(await readdir(join(folder, '..')), [accepted.id], 'no other generation folders');
  });

  test('a generation read just before it finishes is shown with its result, not succeeded without images', async () => {
    // Its own queue name under the test prefix: the worker process must not take this job.
    const connection = { url: h.config.redisUrl };
    const queue = new Queue('finish-race', { connection, prefix: h.config.queuePrefix });
    const worker = new Worker('finish-race', async () => ({ images: [{ rank: 1 }] }), {
      connection,
      prefix: h.config.queuePrefix,
      autorun: false,
    });
    try {
      const added = await queue.add('generate', { input: { prompt: 'x' } });
      const stale = (await queue.getJob(added.id as string)) as unknown as GenerateJob;
      const finished = new Promise((resolve) => worker.once('completed', resolve));
      void worker.run();
      await finished;
      assert.equal(stale.returnvalue, null, 'the job as read before it finished');
      const { job, state } = await currentState(queue, stale);
      assert.equal(state, 'completed');
      assert.deepEqual(job.returnvalue, { images: [{ rank: 1 }] });
    } finally {
      await worker.close();
      await queue.close();
    }
  });
});
