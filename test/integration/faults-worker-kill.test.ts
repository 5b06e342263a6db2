// A worker killed with SIGKILL mid-generation: its lock expires, the stalled-job check of a
// restarted worker puts the job back, and it completes once; storage ends up holding exactly
// the final images of that generation.
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
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

    // What a kill during the storing stage would leave: an image and a temp file cut short. A
    // re-run must not leave them beside the final images.
    const folder = join(h.config.storage.kind === 'fs' ? h.config.storage.dir : '', 'generations', accepted.id);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'a1-1.png'), 'stored by the killed attempt');
    await writeFile(join(folder, '.a1-2.png.0123456789ab.tmp'), 'cut short');

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
    // The second attempt's images, under its own names; the first attempt's are gone.
    const files = (await readdir(folder)).sort();
    assert.deepEqual(files, ['.a2-1.png.type', '.a2-2.png.type', '.a2-3.png.type', 'a2-1.png', 'a2-2.png', 'a2-3.png']);
    assert.deepEqual(await readdir(join(folder, '..')), [accepted.id], 'no other generation folders');
  });
});
