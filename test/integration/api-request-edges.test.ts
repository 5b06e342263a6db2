// Small promises at the edges of a request: an empty Idempotency-Key is an error, not a
// request without one; a body in another charset than UTF-8 is a 415, not misread; refused
// (429) requests do not count toward the per-minute window; the daily candidate quota and
// the concurrent-generations limit hold exactly under racing requests.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Harness, json, post, startHarness } from './api-harness.js';

describe('request edges', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { AUTH_MODE: 'keys' } });
  });
  after(() => h.close());

  async function bearer(name: string, limits = {}): Promise<{ id: string; headers: Record<string, string> }> {
    const { key, record } = await h.services.keyStore.create(name, limits);
    return { id: record.id, headers: { authorization: `Bearer ${key}` } };
  }

  test('an empty Idempotency-Key is a 400 naming the header', async () => {
    const { headers } = await bearer('empty-key');
    const response = await post(
      h.baseUrl,
      '/generations',
      { prompt: 'x', candidates: 1 },
      {
        ...headers,
        'idempotency-key': '',
      },
    );
    assert.equal(response.status, 400);
    const body = await json(response);
    assert.equal(body.code, 'validation_failed');
    assert.equal(body.errors[0].field, 'idempotency-key');
    assert.equal(await h.services.queues.get('generate').count(), 0);
  });

  test('a body in UTF-16 is a 415; declared UTF-8 is read', async () => {
    const { headers } = await bearer('charsets');
    const text = JSON.stringify({ prompt: 'a red circle', candidates: 1 });
    const utf16 = await fetch(`${h.baseUrl}/generations`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json; charset=utf-16le' },
      body: Buffer.from(text, 'utf16le'),
    });
    assert.equal(utf16.status, 415);
    assert.equal((await json(utf16)).code, 'unsupported_media_type');
    const utf8 = await fetch(`${h.baseUrl}/generations`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json; charset=UTF-8' },
      body: text,
    });
    assert.equal(utf8.status, 202);
  });

  test('refused requests do not count toward the per-minute window', async () => {
    const { id, headers } = await bearer('eager', { requests_per_minute: 3 });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i += 1) statuses.push((await fetch(`${h.baseUrl}/usage`, { headers })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
    // The counters of every minute this ran in hold the served requests only.
    const redis = h.services.queues.redis;
    const counters = await redis.keys(`${h.config.queuePrefix}:*:usage:${id}:requests:*`);
    const counted = (await redis.mget(counters)).reduce((sum, value) => sum + Number(value ?? 0), 0);
    assert.equal(counted, 3);
  });

  test('racing requests: exactly the daily candidate quota is accepted', async () => {
    const { headers } = await bearer('quota', { candidates_per_day: 10 });
    const responses = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        post(h.baseUrl, '/generations', { prompt: `q${i}`, candidates: 1 }, headers),
      ),
    );
    const statuses = responses.map((response) => response.status).sort();
    assert.deepEqual(statuses, [...Array(10).fill(202), ...Array(6).fill(429)]);
    for (const response of responses.filter((r) => r.status === 429))
      assert.equal((await json(response)).code, 'quota_exceeded');
  });

  test('racing requests: exactly the concurrent-generations limit is accepted', async () => {
    const { headers } = await bearer('concurrent', { concurrent_generations: 3 });
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        post(h.baseUrl, '/generations', { prompt: `c${i}`, candidates: 1 }, headers),
      ),
    );
    const accepted = responses.filter((response) => response.status === 202).length;
    assert.equal(accepted, 3);
    assert.ok(responses.every((response) => response.status === 202 || response.status === 429));
  });
});
