// Storage unavailable: the worker's image folder lies under a regular file, so every write
// fails (as root, permissions would not stop it). A generation is retried, then fails with
// storage_failed and no images; storage that comes back before the last attempt is used.
// Storage failing half-way: what the last attempt stored is removed with the failure.
// An S3 endpoint that accepts connections and never answers: the job fails on its request
// timeout instead of staying in processing for ever.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generationPrefix } from '../../src/contracts/jobs.js';
import { type ObjectStore, createObjectStore } from '../../src/storage/index.js';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';
import { type Service, spawnService, until, waitReadyz } from './faults-harness.js';

describe('fault: storage unavailable', () => {
  let h: Harness;
  let worker: Service;
  let dir: string;
  let blocker: string;

  before(async () => {
    // Three attempts, one second apart and more: time to make storage come back mid-way.
    h = await startHarness({ worker: false, env: { GENERATE_ATTEMPTS: '3', GENERATE_BACKOFF_MS: '1000' } });
    dir = await mkdtemp(join(tmpdir(), 'dalle-storage-'));
    blocker = join(dir, 'not-a-folder');
    await writeFile(blocker, 'a file where the image folder should be');
    worker = spawnService('src/worker/main.ts', {
      ...h.env,
      STORAGE_DIR: join(blocker, 'images'),
      CPU_THREADS: '1',
      LOG_LEVEL: 'warn',
    });
    await waitReadyz(h.baseUrl, 200);
  });
  after(async () => {
    await worker?.stop();
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('every attempt fails: the generation fails with storage_failed and reports no images', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'nowhere to put it', candidates: 4, n: 2 }),
    );
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 60_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.error?.code, 'storage_failed');
    assert.match(done.error?.message ?? '', /not a directory|ENOTDIR/i);
    assert.deepEqual(done.images, []);
    assert.equal(done.metrics, null);
    // The record ends first; BullMQ hears of it once the attempt has cleaned up.
    const job = await h.services.queues.get('generate').getJob(accepted.id);
    await until('the job failed', async () => (await job?.getState()) === 'failed', 30_000);
    assert.equal((await h.services.queues.get('generate').getJob(accepted.id))?.attemptsMade, 3, 'retried first');
    const succeeded = await json(await fetch(`${h.baseUrl}/generations?status=succeeded`));
    assert.deepEqual(succeeded.data, []);
  });

  test('storage back before the last attempt: the retry stores every image and succeeds', async () => {
    await writeFile(blocker, 'a file where the image folder should be');
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'somewhere later', candidates: 4, n: 2 }),
    );
    await until(
      'a failed first attempt',
      async () => (await h.services.queues.get('generate').getJob(accepted.id))?.attemptsMade === 1,
      30_000,
      20,
    );
    assert.match(
      (await h.services.queues.get('generate').getJob(accepted.id))?.failedReason ?? '',
      /^storage_failed: /,
    );
    await rm(blocker);
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 60_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.images.length, 2);
    // BullMQ counts the failed attempt and the one that succeeded.
    assert.equal((await h.services.queues.get('generate').getJob(accepted.id))?.attemptsMade, 2);
    // The worker's folder is not the API's: read the files where the worker wrote them.
    for (const image of done.images) {
      const key = new URL(image.url).pathname.replace(/^\/files\//, '');
      assert.ok((await stat(join(blocker, 'images', key))).isFile(), key);
    }
  });
});

describe('fault: storage failing half-way through a generation', () => {
  let h: Harness;
  let stored = 0;
  before(async () => {
    h = await startHarness({ worker: false, env: { GENERATE_ATTEMPTS: '2', GENERATE_BACKOFF_MS: '100' } });
    // The configured folder store, with every write after an attempt's first one failing.
    const real = createObjectStore(h.config.storage);
    let currentAttempt: string | undefined;
    let writesThisAttempt = 0;
    const failing: ObjectStore = {
      ...real,
      async put(key, body, contentType) {
        const attempt = /\/a(\d+)-/.exec(key)?.[1];
        if (attempt !== currentAttempt) [currentAttempt, writesThisAttempt] = [attempt, 0];
        writesThisAttempt += 1;
        if (writesThisAttempt > 1) throw new Error('disk full');
        await real.put(key, body, contentType);
        stored += 1;
      },
    };
    await h.startWorker({}, { store: failing });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('the failed generation keeps none of the images its attempts stored', async () => {
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'half stored', candidates: 4, n: 3 }));
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 60_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.error?.code, 'storage_failed');
    assert.match(done.error?.message ?? '', /disk full/);
    assert.equal(stored, 2, 'each of the two attempts stored one image before failing');
    const folder = join(h.env.STORAGE_DIR, generationPrefix(accepted.id));
    // Deleted just after the failure is recorded.
    await until('no image left', async () => (await readdir(folder).catch(() => [])).length === 0, 10_000);
  });
});

describe('fault: an S3 store that stops answering', () => {
  let h: Harness;
  let silent: http.Server;
  before(async () => {
    silent = http.createServer(() => {}); // reads every request, answers none
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    h = await startHarness({ worker: false, env: { GENERATE_ATTEMPTS: '2', GENERATE_BACKOFF_MS: '100' } });
    await h.startWorker({
      STORAGE: 's3',
      S3_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      S3_BUCKET: 'images',
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: 'key',
      S3_SECRET_ACCESS_KEY: 'secret',
      S3_REQUEST_TIMEOUT_MS: '200',
    });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
    silent.closeAllConnections();
    await new Promise((resolve) => silent.close(resolve));
  });

  test('the generation fails with storage_failed after its attempts time out', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'into the void', candidates: 4, n: 2 }),
    );
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 60_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.error?.code, 'storage_failed');
    assert.match(done.error?.message ?? '', /timeout/i);
    assert.deepEqual(done.images, []);
    const job = await h.services.queues.get('generate').getJob(accepted.id);
    await until('the job failed', async () => (await job?.getState()) === 'failed', 30_000);
    assert.equal((await h.services.queues.get('generate').getJob(accepted.id))?.attemptsMade, 2);
  });
});
