// Per-key limits on real Redis: requests per minute (config default and per-key override),
// generations queued or processing at once, candidates per UTC day; each refusal is a 429
// with Retry-After, and GET /usage shows the key its counters. No worker runs, so accepted
// generations stay queued and hold their slot.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { type Harness, json, post, startHarness } from './api-harness.js';

function tinyPng(): Promise<Buffer> {
  return sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
}

async function expect429(response: Response, code: string, maxRetryAfter: number): Promise<void> {
  const body = await json(response);
  assert.equal(response.status, 429, JSON.stringify(body));
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(body.code, code);
  const retryAfter = Number(response.headers.get('retry-after'));
  assert.ok(
    Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= maxRetryAfter,
    `Retry-After ${retryAfter}`,
  );
}

describe('rate limits and quotas per key', () => {
  let h: Harness;
  let store: Harness['services']['keyStore'];
  before(async () => {
    // No classify request is queued: each one admitted is answered queue_full at once.
    h = await startHarness({
      worker: false,
      env: { AUTH_MODE: 'keys', RATE_LIMIT_PER_MINUTE: '1000', CLASSIFY_MAX_QUEUED: '0' },
    });
    store = h.services.keyStore;
  });
  after(() => h.close());

  async function key(limits: Parameters<typeof store.create>[1]): Promise<Record<string, string>> {
    return { authorization: `Bearer ${(await store.create('limited', limits)).key}` };
  }

  test('requests per minute: past the limit a 429 rate_limited until the minute ends', async () => {
    const headers = await key({ requests_per_minute: 3 });
    // A minute boundary during the loop restarts the count, so allow for one.
    let accepted = 0;
    let response: Response;
    do {
      response = await fetch(`${h.baseUrl}/generations`, { headers });
      if (response.status === 200) accepted += 1;
    } while (response.status === 200 && accepted <= 6);
    assert.ok(accepted >= 3 && accepted <= 6, `accepted ${accepted}`);
    assert.equal(response.headers.get('ratelimit-limit'), null, 'a refused request carries no budget headers');
    await expect429(response, 'rate_limited', 60);
    const other = await key({});
    const open = await fetch(`${h.baseUrl}/usage`, { headers: other });
    assert.equal(open.status, 200, 'another key has its own budget');
    assert.equal(open.headers.get('ratelimit-limit'), '1000', 'the config default applies to keys without their own');
  });

  test('classify and embed count in their admission: a full queue still counts, then 429', async () => {
    const headers = await key({ requests_per_minute: 2 });
    const image = { base64: (await tinyPng()).toString('base64') };
    const full = await post(h.baseUrl, '/clip/classify', { image, labels: ['a', 'b'] }, headers);
    assert.equal(full.status, 503);
    assert.equal((await json(full)).code, 'queue_full');
    assert.equal(full.headers.get('ratelimit-limit'), '2', 'the admission sends the budget headers');
    assert.equal(full.headers.get('ratelimit-remaining'), '1');
    assert.equal((await post(h.baseUrl, '/clip/embed', { texts: ['a'] }, headers)).status, 503);
    await expect429(
      await post(h.baseUrl, '/clip/classify', { image, labels: ['a', 'b'] }, headers),
      'rate_limited',
      60,
    );
    const openai = await post(h.baseUrl, '/v1/embeddings', { input: 'a' }, headers);
    assert.equal(openai.status, 429, 'in the OpenAI error shape');
    assert.equal((await json(openai)).error.code, 'rate_limited');
    // The other routes share the same window.
    await expect429(await fetch(`${h.baseUrl}/usage`, { headers }), 'rate_limited', 60);
  });

  test('requests per minute slide: a burst at the end of one minute still counts at the start of the next', async () => {
    const limiter = h.services.generations.limiter;
    const principal = {
      id: `slide-${Date.now()}`,
      name: 'slide',
      limits: { requests_per_minute: 10 },
      webhookSecret: undefined,
    };
    const minute = (Math.floor(Date.now() / 60_000) + 10) * 60_000; // a minute of our own, no real traffic in it
    for (let i = 0; i < 10; i++) await limiter.hitRequest(principal, minute - 1000);
    await assert.rejects(limiter.hitRequest(principal, minute - 1000), (e: any) => e.code === 'rate_limited');
    // One second into the next minute the last 60 s still hold the burst: a fixed window would
    // grant ten more here. 10 of the previous minute (a refusal does not count) × 59/60 + 1 > 10.
    await assert.rejects(limiter.hitRequest(principal, minute + 1000), (e: any) => {
      assert.equal(e.code, 'rate_limited');
      // Until 10 × (59/60 - t) + 1 ≤ 10: t = 5 s.
      assert.equal(e.extra.retryAfterSeconds, 5);
      return true;
    });
    // Half a minute on, half of the burst has slid out: 1 this minute + 10 / 2 ≤ 10.
    const half = await limiter.hitRequest(principal, minute + 30_000);
    assert.equal(half.limit, 10);
    assert.equal(half.remaining, 4); // 10 - 6
  });

  test('concurrent generations: one queued slot, the second is 429 quota_exceeded', async () => {
    const headers = await key({ concurrent_generations: 1 });
    assert.equal((await post(h.baseUrl, '/generations', { prompt: 'one', candidates: 1 }, headers)).status, 202);
    await expect429(
      await post(h.baseUrl, '/generations', { prompt: 'two', candidates: 1 }, headers),
      'quota_exceeded',
      60,
    );
    const queued = await json(await fetch(`${h.baseUrl}/generations`, { headers }));
    assert.equal(queued.data.length, 1, 'the refused one was not queued');
    // Canceling the queued one frees its slot.
    await post(h.baseUrl, `/generations/${queued.data[0].id}/cancel`, {}, headers);
    assert.equal((await post(h.baseUrl, '/generations', { prompt: 'three', candidates: 1 }, headers)).status, 202);
  });

  test('candidates per day: a request past the quota is 429 quota_exceeded until midnight UTC', async () => {
    const headers = await key({ candidates_per_day: 10 });
    assert.equal(
      (await post(h.baseUrl, '/generations', { prompt: 'eight', candidates: 8, n: 1 }, headers)).status,
      202,
    );
    await expect429(
      await post(h.baseUrl, '/generations', { prompt: 'four', candidates: 4, n: 1 }, headers),
      'quota_exceeded',
      86_400,
    );
    assert.equal(
      (await post(h.baseUrl, '/generations', { prompt: 'two', candidates: 2, n: 1 }, headers)).status,
      202,
      'the refused request used none',
    );
  });

  test('GET /usage shows the key its counters and limits', async () => {
    const headers = await key({ concurrent_generations: 5, candidates_per_day: 100 });
    await post(h.baseUrl, '/generations', { prompt: 'counted', candidates: 6, n: 1 }, headers);
    const usage = await json(await fetch(`${h.baseUrl}/usage`, { headers }));
    assert.deepEqual(usage.limits, { requests_per_minute: 1000, concurrent_generations: 5, candidates_per_day: 100 });
    assert.equal(usage.usage.concurrent_generations, 1);
    assert.equal(usage.usage.candidates_today, 6);
    assert.ok(usage.usage.requests_this_minute >= 1 && usage.usage.requests_this_minute <= 2);
  });
});
