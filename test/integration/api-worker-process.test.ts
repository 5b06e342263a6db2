// Process boundaries: the worker runs as its own process (`npm run worker`'s entry point).
// A cancel sent to the API reaches it; SIGTERM hands a running job back to the queue.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import {
  type Harness,
  WEBHOOK_SECRET,
  closeSharedEngine,
  freePort,
  json,
  loopbackEnv,
  post,
  removeQueues,
  startHarness,
  startWebhookReceiver,
  terminal,
  waitFor,
} from './api-harness.js';

function spawnWorker(env: Record<string, string>, entry = 'src/worker/main.ts'): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { ...process.env, ...env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

async function waitReady(h: Pick<Harness, 'baseUrl'>, ready: boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const status = await fetch(`${h.baseUrl}/readyz`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === (ready ? 200 : 503)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`readyz did not become ${ready ? 200 : 503}`);
}

describe('worker process', () => {
  let h: Harness;
  const children: ChildProcess[] = [];
  // Small chunks: a long generation passes many cancellation points.
  const workerEnv = { GENERATE_BATCH_CANDIDATES: '8', CPU_THREADS: '1', SHUTDOWN_TIMEOUT_MS: '500' };

  before(async () => {
    h = await startHarness({ worker: false });
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await h.close();
    await closeSharedEngine();
  });

  test('readyz is 503 until a worker serves every queue', async () => {
    const response = await fetch(`${h.baseUrl}/readyz`);
    assert.equal(response.status, 503);
    const body = await json(response);
    assert.equal(body.checks.redis, true);
    assert.deepEqual(body.checks.workers, { generate: 0, classify: 0, webhooks: 0 });
  });

  test('a cancel sent to the API stops the generation in another process', async () => {
    const child = spawnWorker({ ...h.env, ...workerEnv });
    children.push(child);
    await waitReady(h, true);
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'cancel me across processes', candidates: 512, n: 1 }),
    );
    const running = await waitFor(
      h.baseUrl,
      accepted.id,
      (g) => g.status === 'processing' && (g.progress?.completed ?? 0) > 0,
    );
    assert.ok(running.progress && (running.progress.completed ?? 0) < running.progress.total);
    const cancel = await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 30_000);
    assert.equal(done.status, 'canceled');
    assert.ok(done.progress && (done.progress.completed ?? 0) < done.progress.total, 'it stopped before the end');

    // The worker is free again: the next generation runs to the end.
    const next = await json(await post(h.baseUrl, '/generations', { prompt: 'after the cancel', candidates: 2, n: 1 }));
    assert.equal((await waitFor(h.baseUrl, next.id, terminal)).status, 'succeeded');
  });

  test('a queued generation canceled before any worker takes it ends canceled at once', async () => {
    children[0].kill('SIGTERM');
    await once(children[0], 'exit');
    await waitReady(h, false);
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'never started', candidates: 2, n: 1 }),
    );
    const canceled = await json(await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' }));
    assert.equal(canceled.status, 'canceled');
    assert.ok(canceled.completed_at);
    assert.equal((await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' })).status, 409);
    // A worker that picks it up later finds nothing to run: it stays canceled, never runs.
    const worker = await h.startWorker({ WORKER_QUEUES: 'generate' });
    const job = await h.services.queues.get('generate').getJob(accepted.id);
    const deadline = Date.now() + 30_000;
    while ((await job?.getState()) !== 'completed' && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await job?.getState(), 'completed');
    const later = await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`));
    assert.equal(later.status, 'canceled');
    assert.equal(later.error, null);
    assert.deepEqual(later.images, []);
    await worker.stop();
  });

  test('SIGTERM mid-generation returns the job to the queue; another worker completes it', async () => {
    const child = spawnWorker({ ...h.env, ...workerEnv, WORKER_QUEUES: 'generate' });
    children.push(child);
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'survive a shutdown', candidates: 384, n: 1 }),
    );
    const running = await waitFor(
      h.baseUrl,
      accepted.id,
      (g) => g.status === 'processing' && (g.progress?.completed ?? 0) > 0,
    );
    assert.ok(running.started_at);
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);
    const returned = await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`));
    assert.equal(returned.status, 'queued', 'handed back, not failed');
    await h.startWorker({ WORKER_QUEUES: 'generate' });
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 120_000);
    assert.equal(done.status, 'succeeded');
  });
});

describe('API and worker as separate processes, FILE_URL_SECRET unset', () => {
  const children: ChildProcess[] = [];
  let env: Record<string, string>;
  let dir: string;
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await removeQueues(loadConfig(env));
    await rm(dir, { recursive: true, force: true });
  });

  test('image URLs the worker signs for webhooks are served by the API', async () => {
    const port = await freePort();
    dir = await mkdtemp(join(tmpdir(), 'dalle-two-processes-'));
    const { FILE_URL_SECRET: _unset, ...base } = loopbackEnv(port, dir);
    env = { ...base, WEBHOOK_SECRET, OUTBOUND_ALLOW: '127.0.0.1', CPU_THREADS: '1' };
    const receiver = await startWebhookReceiver();
    try {
      children.push(spawnWorker(env), spawnWorker(env, 'src/api/main.ts'));
      const api = { baseUrl: `http://127.0.0.1:${port}` };
      await waitReady(api, true);
      const body = { prompt: 'two processes', candidates: 2, n: 1, webhook: receiver.url };
      const accepted = await json(
        await post(api.baseUrl, '/generations', { ...body, webhook_events_filter: ['completed'] }),
      );
      const done = await waitFor(api.baseUrl, accepted.id, terminal, 120_000);
      assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
      assert.equal((await fetch(done.images[0].url)).status, 200, 'a URL the API signed');
      const deadline = Date.now() + 60_000;
      while (receiver.deliveries.length === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 100));
      const event = JSON.parse(receiver.deliveries[0].body);
      assert.equal(event.id, accepted.id);
      const fromWorker = await fetch(event.images[0].url);
      assert.equal(fromWorker.status, 200, 'a URL the worker signed');
      assert.match(fromWorker.headers.get('content-type') ?? '', /^image\//);
    } finally {
      await receiver.close();
    }
  });
});
