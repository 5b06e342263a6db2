// The API batches the CLIP requests that arrive together into one job: each request still gets
// its own answer (never another's), one request's bad image fails only itself, and each one
// keeps its own deadline and its own client. Jobs are made to share by starting the worker
// late: a request goes alone while none of its process's jobs is outstanding, and those that
// arrive behind it gather.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { ClassifyJobData, EmbedJobData } from '../../src/contracts/jobs.js';
import type { TypedQueue } from '../../src/queue/queues.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { type Harness, closeSharedEngine, engine, json, post, startHarness } from './api-harness.js';

async function shape(color: string, kind: 'circle' | 'square'): Promise<string> {
  const body =
    kind === 'circle'
      ? `<circle cx="32" cy="32" r="20" fill="${color}"/>`
      : `<rect x="12" y="12" width="40" height="40" fill="${color}"/>`;
  const svg = `<svg width="64" height="64" xmlns="http://www.w3.org/2000/svg"><rect width="64" height="64" fill="white"/>${body}</svg>`;
  return (await sharp(Buffer.from(svg)).png().toBuffer()).toString('base64');
}

/** Waits until the classify queue holds `count` jobs waiting; they are returned oldest first. */
async function waitingJobs(queue: TypedQueue<'classify'>, count: number) {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const jobs = await queue.getWaiting();
    if (jobs.length >= count) return jobs.sort((a, b) => a.timestamp - b.timestamp);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`fewer than ${count} jobs were queued`);
}

/**
 * A POST /clip/classify whose client leaves (closes its connection) on `leave()`, on a
 * connection of its own: fetch's pool would keep spare connections that the server's close
 * then waits for.
 */
function leavingClient(baseUrl: string, body: string): { leave(): Promise<void> } {
  const request = httpRequest(`${baseUrl}/clip/classify`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  request.on('error', () => {}); // it is the client that leaves
  request.end(body);
  return {
    async leave() {
      const closed = new Promise((resolve) => request.once('close', resolve));
      request.destroy();
      await closed;
    },
  };
}

/** The ids of the requests each job carries, oldest job first. */
function requestCounts(jobs: { data: unknown }[]): number[] {
  return jobs.map((job) => (job.data as ClassifyJobData).requests.length);
}

describe('requests batched into jobs by the API', () => {
  let h: Harness;
  before(async () => {
    await engine();
    h = await startHarness({
      worker: false,
      env: { CLASSIFY_JOB_WAIT_MS: '60000', CLASSIFY_JOB_MAX_REQUESTS: '4', CLASSIFY_TIMEOUT_MS: '20000' },
    });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('each request gets its own answer, and one bad image fails only its own request', async () => {
    const queue = h.services.queues.get('classify');
    const labelSets = [
      ['circle', 'square'],
      ['circle', 'triangle'],
      ['square', 'star', 'cross'],
      ['circle', 'square', 'triangle', 'star'],
    ];
    const images = [await shape('red', 'circle'), await shape('blue', 'square')];
    const truncated = Buffer.from(images[0], 'base64').subarray(0, 60).toString('base64');
    const opener = post(h.baseUrl, '/clip/classify', { image: { base64: images[0] }, labels: labelSets[0] });
    await waitingJobs(queue, 1);
    // Behind the opener's job, four requests gather into one: three good, one bad.
    const bodies = [
      { image: { base64: images[1] }, labels: labelSets[1] },
      { image: { base64: truncated }, labels: labelSets[2] },
      { images: [{ base64: images[0] }, { base64: images[1] }], labels: labelSets[3], top_k: 2 },
      { image: { base64: images[0] }, labels: labelSets[2], top_k: 1 },
    ];
    const responses = bodies.map((body) => post(h.baseUrl, '/clip/classify', body));
    const jobs = await waitingJobs(queue, 2);
    assert.deepEqual(requestCounts(jobs), [1, 4], 'the opener alone, the four behind it together');
    const worker = await h.startWorker();
    try {
      assert.equal((await opener).status, 200);
      const [good, bad, pair, top] = await Promise.all(responses);
      assert.equal(bad.status, 400);
      assert.equal((await json(bad)).code, 'invalid_image');
      for (const response of [good, pair, top]) assert.equal(response.status, 200);
      const answers = [await json(good), await json(pair), await json(top)];
      // Each answer is the one its request gets alone: nothing of another request leaked into it.
      for (const [i, body] of [bodies[0], bodies[2], bodies[3]].entries()) {
        const alone = await json(await post(h.baseUrl, '/clip/classify', body));
        assert.equal(answers[i].results.length, alone.results.length);
        answers[i].results.forEach((result: { labels: { label: string; score: number }[] }, r: number) => {
          assert.deepEqual(
            result.labels.map((entry) => entry.label),
            alone.results[r].labels.map((entry: { label: string }) => entry.label),
          );
          result.labels.forEach((entry, l) =>
            assert.ok(Math.abs(entry.score - alone.results[r].labels[l].score) < 1e-4),
          );
        });
      }
      assert.deepEqual(
        answers.map((answer) => answer.results.map((result: { labels: unknown[] }) => result.labels.length)),
        [[2], [2, 2], [1]],
      );
    } finally {
      await worker.stop();
    }
  });

  test('embed requests share a job too: texts and images, each answered with its own vectors', async () => {
    const queue = h.services.queues.get('classify');
    const image = await shape('green', 'circle');
    const opener = post(h.baseUrl, '/clip/embed', { texts: ['an opener'] });
    await waitingJobs(queue, 1);
    const bodies = [
      { texts: ['a red circle', 'a blue square'] },
      { images: [{ base64: image }] },
      { texts: ['a green star'] },
      { images: [{ base64: image }, { base64: await shape('red', 'square') }] },
    ];
    const responses = bodies.map((body) => post(h.baseUrl, '/clip/embed', body));
    const jobs = await waitingJobs(queue, 2);
    assert.deepEqual(
      jobs.map((job) => (job.data as EmbedJobData).requests.length),
      [1, 4],
    );
    const worker = await h.startWorker();
    try {
      assert.equal((await opener).status, 200);
      const answers = await Promise.all(responses.map(async (response) => json(await response)));
      assert.deepEqual(
        answers.map((answer) => answer.embeddings.length),
        [2, 1, 1, 2],
      );
      // Each vector is the one its input gets alone.
      const single = await json(await post(h.baseUrl, '/clip/embed', { texts: ['a green star'] }));
      assert.deepEqual(answers[2].embeddings, single.embeddings);
      const first = await json(await post(h.baseUrl, '/clip/embed', { images: [{ base64: image }] }));
      for (const [a, b] of first.embeddings[0].map((value: number, i: number) => [value, answers[3].embeddings[0][i]]))
        assert.ok(Math.abs(a - b) < 1e-5);
      const tokens = await json(await post(h.baseUrl, '/v1/embeddings', { input: ['a red circle', 'a blue square'] }));
      assert.ok(tokens.usage.prompt_tokens > 0);
    } finally {
      await worker.stop();
    }
  });
});

describe('jobs of the earlier single-request shape, as an older API queued them', () => {
  let h: Harness;
  before(async () => (h = await startHarness()));
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  /** The job's return value once it completed. */
  async function completed(queue: TypedQueue<'classify'>, id: string): Promise<unknown> {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const state = await queue.getJobState(id);
      if (state === 'completed') return (await queue.getJob(id))?.returnvalue;
      assert.notEqual(state, 'failed');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`job ${id} did not complete`);
  }

  test('still run, each answered in its own shape', async () => {
    const queue = h.services.queues.get('classify');
    const key = serviceKeys(h.config.queuePrefix).clipImages('older-classify');
    await h.services.queues.redis.rpush(key, Buffer.from(await shape('red', 'circle'), 'base64'));
    const labels = ['circle', 'square'];
    await queue.add('classify', { images: { key, count: 1 }, labels }, { jobId: 'older-classify' });
    const classified = (await completed(queue, 'older-classify')) as { model: string; results: unknown[] };
    assert.equal(classified.model, 'demo-shapes');
    assert.equal(classified.results.length, 1);
    await queue.add('embed', { texts: ['a red circle'] }, { jobId: 'older-embed' });
    const embedded = (await completed(queue, 'older-embed')) as { embeddings: number[][]; tokens: number };
    assert.equal(embedded.embeddings.length, 1);
    assert.ok(embedded.tokens > 0);
  });
});

describe('the deadline and the client of each request in a shared job', () => {
  let h: Harness;
  const TIMEOUT_MS = 4000;
  before(async () => {
    await engine();
    h = await startHarness({
      worker: false,
      env: {
        CLASSIFY_JOB_WAIT_MS: '60000',
        CLASSIFY_JOB_MAX_REQUESTS: '2',
        CLASSIFY_TIMEOUT_MS: String(TIMEOUT_MS),
      },
    });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  const labels = ['circle', 'square'];

  test('a request that times out ends alone; the job goes on for the one that still waits', async () => {
    const queue = h.services.queues.get('classify');
    const image = await shape('red', 'circle');
    const started = Date.now();
    const opener = post(h.baseUrl, '/clip/classify', { image: { base64: image }, labels });
    await waitingJobs(queue, 1);
    const early = post(h.baseUrl, '/clip/classify', { image: { base64: image }, labels });
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS / 2));
    // The second request fills the job the first has waited in: they go together.
    const late = post(h.baseUrl, '/clip/classify', { image: { base64: image }, labels });
    const [, shared] = await waitingJobs(queue, 2);
    assert.equal((shared.data as ClassifyJobData).requests.length, 2);
    assert.equal((await opener).status, 504);
    const earlyResponse = await early;
    assert.equal(earlyResponse.status, 504);
    assert.equal((await json(earlyResponse)).code, 'timeout');
    assert.ok(Date.now() - started >= TIMEOUT_MS);
    assert.equal(await queue.getJob(shared.id as string).then((job) => job?.id), shared.id, 'still queued');
    const worker = await h.startWorker();
    try {
      assert.equal((await late).status, 200);
    } finally {
      await worker.stop();
    }
  });

  test('a client that leaves drops its request only; a job every client left is removed', async () => {
    const queue = h.services.queues.get('classify');
    const image = await shape('blue', 'square');
    const body = JSON.stringify({ image: { base64: image }, labels });
    const opener = leavingClient(h.baseUrl, body);
    const [first] = await waitingJobs(queue, 1);
    const gone = leavingClient(h.baseUrl, body);
    const staying = post(h.baseUrl, '/clip/classify', { image: { base64: image }, labels });
    const [, shared] = await waitingJobs(queue, 2);
    assert.equal((shared.data as ClassifyJobData).requests.length, 2);
    // The opener's client leaves: its job, which nobody else waits for, is removed.
    await opener.leave();
    for (const deadline = Date.now() + 10_000; (await queue.getJob(first.id as string)) !== undefined;) {
      assert.ok(Date.now() < deadline, 'the job every client left is removed');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // One of the two sharing the second job leaves: the other is still answered.
    await gone.leave();
    assert.ok(await queue.getJob(shared.id as string), 'the shared job stays for its other request');
    const worker = await h.startWorker();
    try {
      assert.equal((await staying).status, 200);
    } finally {
      await worker.stop();
    }
    const places = serviceKeys(h.config.queuePrefix).clipPlaces;
    assert.equal(await h.services.queues.redis.zcard(places), 0, 'every place is freed');
  });
});
