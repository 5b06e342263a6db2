// Process boundaries: the worker runs as its own process (`npm run worker`'s entry point).
// A cancel sent to the API reaches it; SIGTERM hands a running job back to the queue.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

function spawnWorker(env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/worker/main.ts'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

async function waitReady(h: Harness, ready: boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(`${h.baseUrl}/readyz`)).status === (ready ? 200 : 503)) return;
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
    // A worker that picks it up later discards it: it stays canceled, never runs.
    const worker = await h.startWorker({ WORKER_QUEUES: 'generate' });
    const job = await h.services.queues.get('generate').getJob(accepted.id);
    const deadline = Date.now() + 30_000;
    while ((await job?.getState()) !== 'failed' && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await job?.getState(), 'failed');
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
