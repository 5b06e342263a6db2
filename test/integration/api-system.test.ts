// Models, health, readiness, metrics (API and worker ports), the OpenAPI document and docs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

describe('system routes', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('healthz and readyz with a live worker for every queue', async () => {
    assert.deepEqual(await json(await fetch(`${h.baseUrl}/healthz`)), { status: 'ok' });
    const ready = await fetch(`${h.baseUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await json(ready), {
      status: 'ready',
      checks: { redis: true, workers: { generate: 1, classify: 1, webhooks: 1 } },
    });
  });

  test('models lists the packs the workers serve, with the default marked', async () => {
    const { data } = await json(await fetch(`${h.baseUrl}/models`));
    const demo = data.find((model: any) => model.name === 'demo-shapes');
    assert.ok(demo);
    assert.deepEqual(demo.default_for, ['generations', 'clip']);
    assert.deepEqual(demo.generation.image_size, [64, 64]);
    assert.deepEqual(demo.weights, { format: 'float32', source: null });
    assert.equal(data.filter((model: any) => model.default_for.length > 0).length, 1);
  });

  test('metrics: HTTP latency and queue depth on the API, job, stage and batch figures on the worker', async () => {
    const { id } = await json(await post(h.baseUrl, '/generations', { prompt: 'metrics', candidates: 2, n: 1 }));
    await waitFor(h.baseUrl, id, terminal);
    const api = await (await fetch(`${h.baseUrl}/metrics`)).text();
    assert.match(
      api,
      /dalle_http_request_duration_seconds_count\{method="POST",route="\/generations",status="202"\} [1-9]/,
    );
    assert.match(api, /dalle_queue_jobs\{queue="generate",state="completed"\} [1-9]/);
    assert.match(api, /dalle_queue_jobs\{queue="classify",state="waiting"\} 0/);
    const worker = await (await fetch(`http://127.0.0.1:${h.worker?.metricsPort}/metrics`)).text();
    assert.match(worker, /dalle_job_duration_seconds_count\{queue="generate",outcome="completed"\} [1-9]/);
    for (const stage of ['sampling', 'decoding', 'reranking', 'storing']) {
      assert.match(worker, new RegExp(`dalle_generation_stage_seconds_count\\{stage="${stage}"\\} [1-9]`));
    }
    assert.match(worker, /dalle_classify_batch_size_bucket/);
  });

  test('the API serves its OpenAPI document and a docs page', async () => {
    const served = await json(await fetch(`${h.baseUrl}/openapi.json`));
    const committed = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
    // The same document, but for the server it names: this one's PUBLIC_BASE_URL.
    assert.equal(served.servers[0].url, h.baseUrl);
    assert.deepEqual({ ...served, servers: committed.servers }, committed);
    const docs = await fetch(`${h.baseUrl}/docs`, { redirect: 'follow' });
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger/i);
  });

  test('every response carries its request id, and a given one is kept', async () => {
    const response = await fetch(`${h.baseUrl}/healthz`, { headers: { 'x-request-id': 'trace-123' } });
    assert.equal(response.headers.get('x-request-id'), 'trace-123');
  });
});
