// Every documented error, provoked through HTTP against the real stack, answers
// application/problem+json with its code, and the OpenAPI document lists that code for
// the route. Hostile bodies get a 400 naming the field, never a 500.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import sharp from 'sharp';
import { buildApp } from '../../src/api/app.js';
import { createServices } from '../../src/api/services.js';
import { loadConfig } from '../../src/config.js';
import { Problem } from '../../src/contracts/schemas.js';
import { ERRORS, ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import { newGenerationId } from '../../src/service/ids.js';
import { announceModelsChanged } from '../../src/service/model-registry.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { type Harness, closeSharedEngine, freePort, json, post, startHarness, waitFor } from './api-harness.js';

const openapi = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
const seen = new Set<ErrorCode>();

/** Asserts the problem response, and that the route documents the code under its status. */
async function expectProblem(
  response: Response,
  code: ErrorCode,
  route?: { method: string; path: string },
): Promise<Problem> {
  const body = await json(response, Problem);
  assert.equal(response.status, ERRORS[code].status, JSON.stringify(body));
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(body.code, code, JSON.stringify(body));
  assert.equal(body.status, response.status);
  assert.equal(body.type, `urn:dalle-serve:error:${code}`);
  assert.ok(body.title && body.detail);
  if (route) {
    const documented = openapi.paths[route.path]?.[route.method.toLowerCase()]?.responses?.[String(response.status)];
    assert.ok(documented?.description.includes(`\`${code}\``), `${route.method} ${route.path} documents ${code}`);
  }
  seen.add(code);
  return body;
}

async function tinyPng(): Promise<string> {
  return (
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .png()
      .toBuffer()
  ).toString('base64');
}

const GENERATIONS = { method: 'POST', path: '/generations' };
const CLASSIFY = { method: 'POST', path: '/clip/classify' };

describe('errors with a worker', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ env: { BODY_LIMIT_BYTES: '200000', CLIP_REQUEST_MAX_IMAGE_BYTES: '1000' } });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  /** Empties the model registry, as if no worker had reported yet, and tells the API's copy. */
  async function forgetModels(): Promise<void> {
    const keys = serviceKeys(h.config.queuePrefix);
    await h.services.queues.redis.del(keys.modelsEntries);
    await announceModelsChanged(h.services.queues.redis, keys);
  }

  test('validation_failed names the field; types are never coerced', async () => {
    const cases: [unknown, string][] = [
      [{}, 'prompt'],
      [{ prompt: 123 }, 'prompt'],
      [{ prompt: '' }, 'prompt'],
      [{ prompt: 'x'.repeat(1001) }, 'prompt'],
      [{ prompt: '   ' }, 'prompt'],
      [{ prompt: 'ok', top_k: 257 }, 'top_k'],
      [{ prompt: 'ok', candidates: '4' }, 'candidates'],
      [{ prompt: 'ok', candidates: 4.5 }, 'candidates'],
      [{ prompt: 'ok', candidates: 0 }, 'candidates'],
      [{ prompt: 'ok', candidates: 4, n: 5 }, 'n'],
      [{ prompt: 'ok', seed: -1 }, 'seed'],
      [{ prompt: 'ok', seed: 2 ** 32 }, 'seed'],
      [{ prompt: 'ok', seed: '7' }, 'seed'],
      [{ prompt: 'ok', output_format: 'gif' }, 'output_format'],
      [{ prompt: 'ok', webhook: 'ftp://example.com' }, 'webhook'],
      [{ prompt: 'ok', webhook_events_filter: ['start', 'start'] }, 'webhook_events_filter'],
      [{ prompt: 'ok', temperature: 0 }, 'temperature'],
      [{ prompt: 'ok', admin: true }, 'admin'],
      [{ prompt: 'ok', model: '../etc' }, 'model'],
      [[], 'body'],
      ['prompt', 'body'],
      [null, 'body'],
    ];
    for (const [body, field] of cases) {
      const problem = await expectProblem(
        await post(h.baseUrl, '/generations', body),
        'validation_failed',
        GENERATIONS,
      );
      assert.equal(
        problem.errors?.[0].field,
        field,
        `${JSON.stringify(body).slice(0, 60)} → ${JSON.stringify(problem.errors)}`,
      );
    }
    const longKey = await post(h.baseUrl, '/generations', { prompt: 'ok' }, { 'idempotency-key': 'k'.repeat(256) });
    assert.equal((await expectProblem(longKey, 'validation_failed', GENERATIONS)).errors?.[0].field, 'idempotency-key');

    const list = { method: 'GET', path: '/generations' };
    for (const [query, field] of [
      ['limit=0', 'limit'],
      ['limit=abc', 'limit'],
      ['status=done', 'status'],
      ['cursor=not-a-cursor', 'cursor'],
      ['extra=1', 'extra'],
    ]) {
      const problem = await expectProblem(await fetch(`${h.baseUrl}/generations?${query}`), 'validation_failed', list);
      assert.equal(problem.errors?.[0].field, field, query);
    }

    const png = { base64: 'iVBORw0KGgo=' };
    for (const [body, field] of [
      [{ labels: ['a', 'b'] }, 'image'],
      [{ image: png, images: [png], labels: ['a', 'b'] }, 'image'],
      [{ image: png, labels: [] }, 'labels'],
      [{ image: png, labels: ['a', 'a'] }, 'labels'],
      [{ image: png, labels: ['a', 'b'], top_k: 3 }, 'top_k'],
      [{ image: {}, labels: ['a', 'b'] }, 'image'],
      [{ image: { url: 'http://x/', base64: 'AA==' }, labels: ['a', 'b'] }, 'image'],
      [{ image: { url: 'file:///etc/passwd' }, labels: ['a', 'b'] }, 'image.url'],
      [{ image: png, labels: ['a', 'b'], templates: ['no placeholder'] }, 'templates[0]'],
      [{ image: { base64: '***' }, labels: ['a', 'b'] }, 'image.base64'],
    ] as [unknown, string][]) {
      const problem = await expectProblem(await post(h.baseUrl, '/clip/classify', body), 'validation_failed', CLASSIFY);
      assert.equal(problem.errors?.[0].field, field, JSON.stringify(body));
    }
    const embed = await post(h.baseUrl, '/clip/embed', { texts: ['a'], images: [png] });
    assert.equal(
      (await expectProblem(embed, 'validation_failed', { method: 'POST', path: '/clip/embed' })).errors?.[0].field,
      'images',
    );
  });

  test('malformed_body, unsupported_media_type, payload_too_large', async () => {
    const raw = (body: string, type: string) =>
      fetch(`${h.baseUrl}/generations`, { method: 'POST', headers: { 'content-type': type }, body });
    await expectProblem(await raw('{"prompt":', 'application/json'), 'malformed_body', GENERATIONS);
    await expectProblem(await raw('prompt=hello', 'text/plain'), 'unsupported_media_type', GENERATIONS);
    await expectProblem(
      await raw(JSON.stringify({ prompt: 'x'.repeat(300_000) }), 'application/json'),
      'payload_too_large',
      GENERATIONS,
    );
  });

  test('images_too_large: the images of one request past CLIP_REQUEST_MAX_IMAGE_BYTES together', async () => {
    const image = { base64: await tinyPng() };
    const body = { images: Array.from({ length: 16 }, () => image), labels: ['a', 'b'] };
    await expectProblem(await post(h.baseUrl, '/clip/classify', body), 'images_too_large', CLASSIFY);
  });

  test('completion_unsupported and invalid_mask: completions name the field (api-completions covers the rest)', async () => {
    const image = { base64: await tinyPng() };
    const unsupported = await expectProblem(
      await post(h.baseUrl, '/generations', { prompt: 'ok', model: 'micro-dalle1', image, keep_rows: 2 }),
      'completion_unsupported',
      GENERATIONS,
    );
    assert.equal(unsupported.errors?.[0].field, 'image');
    // An opaque mask marks nothing to regenerate.
    const mask = await expectProblem(
      await post(h.baseUrl, '/generations', { prompt: 'ok', image, mask: image }),
      'invalid_mask',
      GENERATIONS,
    );
    assert.equal(mask.errors?.[0].field, 'mask');
  });

  test('not_found for any unknown id, whatever its shape, and for unknown routes', async () => {
    for (const id of [
      'abc',
      newGenerationId(),
      crypto.randomUUID(),
      '..%2F..%2Fetc',
      '%00',
      'x'.repeat(300),
      "1'%20OR%20'1'='1",
      '0',
    ]) {
      for (const [method, suffix] of [
        ['GET', ''],
        ['DELETE', ''],
        ['POST', '/cancel'],
      ]) {
        const response = await fetch(`${h.baseUrl}/generations/${id}${suffix}`, { method });
        await expectProblem(response, 'not_found');
      }
    }
    await expectProblem(await fetch(`${h.baseUrl}/generations/${newGenerationId()}`), 'not_found', {
      method: 'GET',
      path: '/generations/{id}',
    });
    await expectProblem(await fetch(`${h.baseUrl}/nothing-here`), 'not_found');
    await expectProblem(
      await fetch(`${h.baseUrl}/files/generations/x/1.png?expires=9999999999&signature=${'0'.repeat(64)}`),
      'not_found',
      { method: 'GET', path: '/files/{key}' },
    );
  });

  test('invalid_image, unsupported_image_format, image_fetch_failed, unknown_model', async () => {
    const truncated = Buffer.from(await tinyPng(), 'base64')
      .subarray(0, 40)
      .toString('base64');
    await expectProblem(
      await post(h.baseUrl, '/clip/classify', { image: { base64: truncated }, labels: ['a', 'b'] }),
      'invalid_image',
      CLASSIFY,
    );
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>').toString('base64');
    const unsupported = await expectProblem(
      await post(h.baseUrl, '/clip/classify', { images: [{ base64: svg }], labels: ['a', 'b'] }),
      'unsupported_image_format',
      CLASSIFY,
    );
    assert.equal(unsupported.errors?.[0].field, 'images[0].base64');
    const closedPort = await freePort();
    const fetchFailed = await expectProblem(
      await post(h.baseUrl, '/clip/classify', {
        images: [{ url: `http://127.0.0.1:${closedPort}/x.png` }],
        labels: ['a', 'b'],
      }),
      'image_fetch_failed',
      CLASSIFY,
    );
    assert.equal(fetchFailed.errors?.[0].field, 'images[0].url');
    const unknown = await expectProblem(
      await post(h.baseUrl, '/generations', { prompt: 'ok', model: 'no-such-pack' }),
      'unknown_model',
      GENERATIONS,
    );
    assert.equal(unknown.errors?.[0].field, 'model');
    const classifyUnknown = () =>
      post(h.baseUrl, '/clip/classify', {
        image: { base64: tinyPngBase64 },
        labels: ['a', 'b'],
        model: 'no-such-pack',
      });
    const tinyPngBase64 = await tinyPng();
    await expectProblem(await classifyUnknown(), 'unknown_model', CLASSIFY);
    // With no model list published yet, the worker itself refuses the name.
    await forgetModels();
    await expectProblem(await classifyUnknown(), 'unknown_model', CLASSIFY);
  });

  test('a generation the engine refuses fails at once with a reason, without retries', async () => {
    // With no model list published, the API cannot check top_k against the codebook.
    await forgetModels();
    const { id } = await json(await post(h.baseUrl, '/generations', { prompt: 'ok', candidates: 1, top_k: 257 }));
    const failed = await waitFor(h.baseUrl, id, (g) => g.status === 'failed');
    assert.equal(failed.error?.code, 'validation_failed');
    assert.match(failed.error?.message ?? '', /topK/);
    // The generation ends first; its job fails once the attempt has let go of it.
    const queue = h.services.queues.get('generate');
    for (const deadline = Date.now() + 30_000; (await queue.getJobState(id)) !== 'failed';) {
      assert.ok(Date.now() < deadline, 'the job failed');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal((await queue.getJob(id))?.attemptsMade, 1);
  });

  test('idempotency_key_reused', async () => {
    const headers = { 'idempotency-key': `errors-${Date.now()}` };
    assert.equal((await post(h.baseUrl, '/generations', { prompt: 'first', candidates: 1 }, headers)).status, 202);
    await expectProblem(
      await post(h.baseUrl, '/generations', { prompt: 'second', candidates: 1 }, headers),
      'idempotency_key_reused',
      GENERATIONS,
    );
  });

  test('url_not_allowed names the field: internal addresses outside OUTBOUND_ALLOW are refused', async () => {
    const metadata = await expectProblem(
      await post(h.baseUrl, '/clip/classify', {
        image: { url: 'http://169.254.169.254/latest/meta-data/' },
        labels: ['a', 'b'],
      }),
      'url_not_allowed',
      CLASSIFY,
    );
    assert.equal(metadata.errors?.[0].field, 'image.url');
    const indexed = await expectProblem(
      await post(h.baseUrl, '/clip/classify', {
        images: [{ url: 'http://[::ffff:10.0.0.1]/x.png' }],
        labels: ['a', 'b'],
      }),
      'url_not_allowed',
      CLASSIFY,
    );
    assert.equal(indexed.errors?.[0].field, 'images[0].url');
    const webhook = await expectProblem(
      await post(h.baseUrl, '/generations', { prompt: 'ok', webhook: 'http://10.1.2.3/hook' }),
      'url_not_allowed',
      GENERATIONS,
    );
    assert.equal(webhook.errors?.[0].field, 'webhook');
  });

  test('internal_error hides the cause: a generation record that cannot be read', async () => {
    const id = newGenerationId();
    await h.services.queues.redis.hset(serviceKeys(h.config.queuePrefix).generation(id), {
      owner: 'anonymous',
      status: 'queued',
      input: '{not json',
      created_at: new Date().toISOString(),
    });
    const problem = await expectProblem(await fetch(`${h.baseUrl}/generations/${id}`), 'internal_error', {
      method: 'GET',
      path: '/generations/{id}',
    });
    assert.doesNotMatch(problem.detail, /JSON|Unexpected|at /);
    assert.match(problem.detail, /request id/);
  });

  test('job_failed when the engine behind the worker is gone', async () => {
    await closeSharedEngine();
    await expectProblem(
      await post(h.baseUrl, '/clip/classify', { image: { base64: await tinyPng() }, labels: ['a', 'b'] }),
      'job_failed',
      CLASSIFY,
    );
  });
});

describe('errors without a worker', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      worker: false,
      env: { WEBHOOK_SECRET: '', GENERATE_MAX_QUEUED: '3', CLASSIFY_TIMEOUT_MS: '300' },
    });
  });
  after(() => h.close());

  test('webhooks_disabled without a WEBHOOK_SECRET', async () => {
    await expectProblem(
      await post(h.baseUrl, '/generations', { prompt: 'ok', webhook: 'http://127.0.0.1:9/hook' }),
      'webhooks_disabled',
      GENERATIONS,
    );
  });

  test('generation_not_finished and generation_finished', async () => {
    const { id } = await json(await post(h.baseUrl, '/generations', { prompt: 'waits', candidates: 1 }));
    await expectProblem(
      await fetch(`${h.baseUrl}/generations/${id}`, { method: 'DELETE' }),
      'generation_not_finished',
      { method: 'DELETE', path: '/generations/{id}' },
    );
    assert.equal(
      (await json(await fetch(`${h.baseUrl}/generations/${id}/cancel`, { method: 'POST' }))).status,
      'canceled',
    );
    await expectProblem(
      await fetch(`${h.baseUrl}/generations/${id}/cancel`, { method: 'POST' }),
      'generation_finished',
      { method: 'POST', path: '/generations/{id}/cancel' },
    );
    assert.equal((await fetch(`${h.baseUrl}/generations/${id}`, { method: 'DELETE' })).status, 204);
  });

  test('queue_full with Retry-After past the configured depth', async () => {
    let response: Response;
    let accepted = 0;
    do {
      response = await post(h.baseUrl, '/generations', { prompt: 'fill', candidates: 1 });
      if (response.status === 202) accepted += 1;
    } while (response.status === 202 && accepted < 10);
    assert.equal(accepted, 3);
    assert.equal(response.headers.get('retry-after'), '5');
    await expectProblem(response, 'queue_full', GENERATIONS);
    const listed = await json(await fetch(`${h.baseUrl}/generations?status=queued`));
    assert.equal(listed.data.length, 3, 'what was accepted stays pollable');
    await waitFor(h.baseUrl, listed.data[0].id, (g) => g.status === 'queued');
  });

  test('timeout when no worker answers a classify request in time', async () => {
    await expectProblem(
      await post(h.baseUrl, '/clip/classify', { image: { base64: await tinyPng() }, labels: ['a', 'b'] }),
      'timeout',
      CLASSIFY,
    );
  });
});

describe('errors of API keys and their limits', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { AUTH_MODE: 'keys' } });
  });
  after(() => h.close());

  test('unauthorized, rate_limited and quota_exceeded', async () => {
    const { key } = await h.services.keyStore.create('errors', { requests_per_minute: 2, candidates_per_day: 1 });
    await expectProblem(await post(h.baseUrl, '/generations', { prompt: 'ok' }), 'unauthorized', GENERATIONS);
    const headers = { authorization: `Bearer ${key}` };
    await expectProblem(
      await post(h.baseUrl, '/generations', { prompt: 'ok', candidates: 2, n: 1 }, headers),
      'quota_exceeded',
      GENERATIONS,
    );
    // Each refused request still counts against the per-minute budget of 2.
    let response: Response;
    let body: any;
    do {
      response = await post(h.baseUrl, '/generations', { prompt: 'ok', candidates: 2, n: 1 }, headers);
      body = await json(response.clone());
    } while (body.code === 'quota_exceeded');
    await expectProblem(response, 'rate_limited', GENERATIONS);
  });
});

describe('errors with Redis down', () => {
  test('service_unavailable with Retry-After when the queue cannot be reached', async () => {
    const config = loadConfig({
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      STORAGE_DIR: '/nonexistent',
      LOG_LEVEL: 'silent',
    });
    const services = createServices(config);
    const app = await buildApp({ services, logger: pino({ level: 'silent' }) });
    try {
      const response = await app.inject({ method: 'POST', url: '/generations', payload: { prompt: 'ok' } });
      assert.equal(response.statusCode, 503);
      assert.equal(response.json().code, 'service_unavailable');
      assert.ok(response.headers['retry-after']);
      seen.add('service_unavailable');
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 503);
      assert.equal(ready.json().checks.redis, false);
    } finally {
      await app.close();
      await services.close();
    }
  });
});

test('every code in the catalogue was provoked above', () => {
  assert.deepEqual(
    ERROR_CODES.filter((code) => !seen.has(code)),
    [],
  );
});
