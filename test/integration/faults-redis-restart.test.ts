// Redis restarted under a running API and worker (both child processes): requests fail fast
// with 503 while it is down; both reconnect by themselves; jobs accepted before the restart
// survive (append-only file) and complete. The test runs its own redis-server, never the shared one.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WEBHOOK_SECRET, freePort, json, loopbackEnv, post, terminal, waitFor } from './api-harness.js';
import { type PrivateRedis, type Service, privateRedis, spawnService, until, waitReadyz } from './faults-harness.js';

describe('fault: Redis restarted', () => {
  let dir: string;
  let redis: PrivateRedis;
  let baseUrl: string;
  const services: Service[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dalle-redis-'));
    redis = await privateRedis(dir);
    await redis.start();
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    const env = {
      ...loopbackEnv(port, join(dir, 'images')),
      REDIS_URL: redis.url,
      WEBHOOK_SECRET,
      LOG_LEVEL: 'warn',
      // A lock lost while Redis is down is noticed within seconds.
      LOCK_DURATION_MS: '2000',
      STALLED_INTERVAL_MS: '1000',
      GENERATE_BACKOFF_MS: '100',
      GENERATE_BATCH_CANDIDATES: '8',
      // One generation at a time, so that the second one waits in the queue through the outage.
      GENERATE_MAX_ACTIVE: '1',
      CPU_THREADS: '1',
    };
    services.push(spawnService('src/api/main.ts', env), spawnService('src/worker/main.ts', env));
    await waitReadyz(baseUrl, 200);
  });
  after(async () => {
    for (const service of services) await service.stop();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('503 while down, recovery without restarts, accepted jobs complete', async () => {
    // One generation running, one waiting behind it (the worker runs one at a time).
    const running = await json(
      await post(baseUrl, '/generations', { prompt: 'through the outage', candidates: 384, n: 2 }),
    );
    await waitFor(baseUrl, running.id, (g) => g.status === 'processing' && (g.progress?.completed ?? 0) > 0);
    const waiting = await json(
      await post(baseUrl, '/generations', { prompt: 'queued through the outage', candidates: 4, n: 2 }),
    );
    assert.equal((await json(await fetch(`${baseUrl}/generations/${waiting.id}`))).status, 'queued');

    await redis.stop();
    for (const request of [
      () => post(baseUrl, '/generations', { prompt: 'while down', candidates: 1 }),
      () => fetch(`${baseUrl}/generations/${waiting.id}`),
    ]) {
      const started = Date.now();
      const response = await request();
      assert.equal(response.status, 503);
      assert.equal((await json(response)).code, 'service_unavailable');
      assert.ok(response.headers.get('retry-after'));
      assert.ok(Date.now() - started < 10_000, 'fails fast, does not hang');
    }
    assert.equal((await fetch(`${baseUrl}/readyz`)).status, 503);
    assert.equal((await fetch(`${baseUrl}/healthz`)).status, 200, 'the API process itself lives on');
    for (const service of services)
      assert.equal(service.child.exitCode, null, `a process exited:\n${service.output().slice(-2000)}`);

    await redis.start();
    await until(
      'the API answering again',
      async () => (await fetch(`${baseUrl}/generations/${waiting.id}`)).status === 200,
      30_000,
      200,
    );
    await waitReadyz(baseUrl, 200, 30_000);
    for (const id of [running.id, waiting.id]) {
      const done = await waitFor(baseUrl, id, terminal, 90_000);
      assert.equal(done.status, 'succeeded', `${id}: ${JSON.stringify(done.error)}`);
      assert.equal(done.images.length, 2);
      for (const image of done.images) assert.equal((await fetch(image.url)).status, 200);
    }
    // And new work is taken after the restart.
    const after = await json(await post(baseUrl, '/generations', { prompt: 'after the outage', candidates: 2, n: 1 }));
    assert.equal((await waitFor(baseUrl, after.id, terminal, 30_000)).status, 'succeeded');
    for (const service of services) assert.equal(service.child.exitCode, null, 'no process restarted');
  });
});
