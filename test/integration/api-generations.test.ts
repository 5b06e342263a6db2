// Generations end to end through HTTP: real Redis, BullMQ, worker, engine, sharp, storage.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { pino } from 'pino';
import { Generation, GenerationAccepted, GenerationList, Problem } from '../../src/contracts/schemas.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { sweepExpired } from '../../src/worker/retention.js';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

describe('generations', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('a generation completes with ranked images whose URLs serve real PNG bytes', async () => {
    const response = await post(h.baseUrl, '/generations', {
      prompt: 'a red circle on a blue background',
      candidates: 4,
      n: 2,
      seed: 1234,
    });
    assert.equal(response.status, 202);
    const accepted = await json(response);
    assert.equal(accepted.status, 'queued');
    assert.equal(accepted.seed, 1234);
    assert.equal(response.headers.get('location'), `${h.baseUrl}/generations/${accepted.id}`);
    assert.deepEqual(accepted.urls, {
      get: `${h.baseUrl}/generations/${accepted.id}`,
      cancel: `${h.baseUrl}/generations/${accepted.id}/cancel`,
      stream: `${h.baseUrl}/generations/${accepted.id}/events`,
    });

    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.model, 'demo-shapes');
    assert.equal(done.input.seed, 1234);
    assert.equal(done.images.length, 2);
    assert.deepEqual(
      done.images.map((image: any) => image.rank),
      [1, 2],
    );
    assert.ok(done.images[0].score >= done.images[1].score, 'rank 1 has the best score');
    assert.deepEqual(Object.keys(done.metrics ?? {}).sort(), [
      'decode_ms',
      'queue_ms',
      'rerank_ms',
      'sample_ms',
      'store_ms',
      'total_ms',
    ]);
    assert.ok(done.started_at && done.completed_at && done.completed_at >= done.started_at);
    assert.equal(done.error, null);

    for (const image of done.images) {
      assert.ok(image.url.startsWith(`${h.baseUrl}/files/`), image.url);
      assert.ok(Date.parse(image.expires_at) > Date.now());
      const file = await fetch(image.url);
      assert.equal(file.status, 200);
      assert.equal(file.headers.get('content-type'), 'image/png');
      const bytes = Buffer.from(await file.arrayBuffer());
      assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      const meta = await sharp(bytes).metadata();
      assert.equal(meta.width, image.width);
      assert.equal(meta.height, image.height);
    }
    // A tampered signature or a changed expiry is refused.
    const url = new URL(done.images[0].url);
    url.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 1));
    assert.equal((await fetch(url)).status, 404);
  });

  test('the same seed gives the same images; webp and jpeg are stored in their format', async () => {
    const first = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'a green square',
        candidates: 2,
        n: 1,
        seed: 7,
        output_format: 'webp',
      }),
    );
    const second = await json(
      await post(h.baseUrl, '/generations', {
        prompt: 'a green square',
        candidates: 2,
        n: 1,
        seed: 7,
        output_format: 'jpeg',
      }),
    );
    const [a, b] = await Promise.all([waitFor(h.baseUrl, first.id, terminal), waitFor(h.baseUrl, second.id, terminal)]);
    assert.equal(a.status, 'succeeded');
    assert.equal(b.status, 'succeeded');
    assert.equal(a.images[0].seed, b.images[0].seed);
    assert.equal(a.images[0].score, b.images[0].score);
    const webp = await fetch(a.images[0].url);
    assert.equal(webp.headers.get('content-type'), 'image/webp');
    assert.equal((await sharp(Buffer.from(await webp.arrayBuffer())).metadata()).format, 'webp');
    const jpeg = await fetch(b.images[0].url);
    assert.equal(jpeg.headers.get('content-type'), 'image/jpeg');
    assert.equal((await sharp(Buffer.from(await jpeg.arrayBuffer())).metadata()).format, 'jpeg');
  });

  test('a seed is drawn when absent and always returned; n defaults to at most candidates', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a dot', candidates: 3 }),
      GenerationAccepted,
    );
    assert.ok(Number.isInteger(accepted.seed) && accepted.seed >= 0 && accepted.seed < 2 ** 32);
    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    assert.equal(done.input.seed, accepted.seed);
    assert.equal(done.input.n, 3);
    assert.equal(done.images.length, 3);
  });

  test('an Idempotency-Key makes a retried POST return the same generation', async () => {
    const key = `retry-${Date.now()}`;
    const body = { prompt: 'a yellow triangle', candidates: 2, n: 1 };
    const first = await post(h.baseUrl, '/generations', body, { 'idempotency-key': key });
    const second = await post(
      h.baseUrl,
      '/generations',
      { n: 1, candidates: 2, prompt: 'a yellow triangle' },
      { 'idempotency-key': key },
    );
    assert.equal(first.status, 202);
    assert.equal(second.status, 202);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    const [a, b] = [await json(first), await json(second)];
    assert.deepEqual(b, a);
    const other = await json(
      await post(h.baseUrl, '/generations', body, { 'idempotency-key': `${key}-other` }),
      GenerationAccepted,
    );
    assert.notEqual(other.id, a.id);
    const reused = await post(
      h.baseUrl,
      '/generations',
      { ...body, prompt: 'something else' },
      { 'idempotency-key': key },
    );
    assert.equal(reused.status, 422);
    assert.equal((await json(reused, Problem)).code, 'idempotency_key_reused');
    await waitFor(h.baseUrl, a.id, terminal);
    await waitFor(h.baseUrl, other.id, terminal);
  });

  test('list is newest first, pages with a cursor and filters by status', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1)
      ids.push(
        (
          await json(
            await post(h.baseUrl, '/generations', { prompt: `list ${i}`, candidates: 1, n: 1 }),
            GenerationAccepted,
          )
        ).id,
      );
    for (const id of ids) await waitFor(h.baseUrl, id, terminal);

    const page1 = await json(await fetch(`${h.baseUrl}/generations?limit=2`), GenerationList);
    assert.deepEqual(
      page1.data.map((g: any) => g.id),
      [ids[2], ids[1]],
    );
    assert.equal(typeof page1.next_cursor, 'string');
    const page2 = await json(
      await fetch(`${h.baseUrl}/generations?limit=2&cursor=${page1.next_cursor}`),
      GenerationList,
    );
    assert.equal(page2.data[0].id, ids[0]);
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await json(await fetch(`${h.baseUrl}/generations?limit=3${cursor ? `&cursor=${cursor}` : ''}`));
      all.push(...page.data.map((g: any) => g.id));
      cursor = page.next_cursor;
    } while (cursor);
    assert.deepEqual(all, [...all].sort().reverse(), 'ids sort by creation time');
    assert.equal(new Set(all).size, all.length);

    const succeeded = await json(await fetch(`${h.baseUrl}/generations?status=succeeded&limit=100`), GenerationList);
    assert.ok(succeeded.data.length >= 3);
    assert.ok(succeeded.data.every((g: any) => g.status === 'succeeded'));
    const failed = await json(await fetch(`${h.baseUrl}/generations?status=failed`), GenerationList);
    assert.deepEqual(failed.data, []);
  });

  test('DELETE removes a finished generation and its stored images', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'to delete', candidates: 2, n: 2 }),
      GenerationAccepted,
    );
    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    assert.equal((await fetch(done.images[0].url)).status, 200);
    const deleted = await fetch(`${h.baseUrl}/generations/${accepted.id}`, { method: 'DELETE' });
    assert.equal(deleted.status, 204);
    assert.equal((await fetch(`${h.baseUrl}/generations/${accepted.id}`)).status, 404);
    for (const image of done.images) assert.equal((await fetch(image.url)).status, 404, 'the image is gone');
    const list = await json(await fetch(`${h.baseUrl}/generations?limit=100`), GenerationList);
    assert.ok(!list.data.some((g: any) => g.id === accepted.id));
    assert.equal((await fetch(`${h.baseUrl}/generations/${accepted.id}`, { method: 'DELETE' })).status, 404);
  });

  test('cancel stops a running generation, which ends canceled; a finished one answers 409', async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a long one', candidates: 512, n: 1 }),
      GenerationAccepted,
    );
    await waitFor(h.baseUrl, accepted.id, (g) => g.status === 'processing' && g.progress !== null);
    const cancel = await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 30_000);
    assert.equal(done.status, 'canceled');
    assert.deepEqual(done.images, []);
    assert.ok(done.completed_at);
    const again = await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' });
    assert.equal(again.status, 409);
    assert.equal((await json(again, Problem)).code, 'generation_finished');
  });

  test("a generation names its model from the start: the request's, or the workers' default", async () => {
    await h.services.queues.get('generate').pause();
    const ids: string[] = [];
    try {
      for (const body of [{}, { model: 'demo-shapes' }]) {
        const accepted = await json(
          await post(h.baseUrl, '/generations', { prompt: 'which model', candidates: 1, n: 1, ...body }),
          GenerationAccepted,
        );
        ids.push(accepted.id);
        const queued = await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`), Generation);
        assert.equal(queued.status, 'queued');
        assert.equal(queued.model, 'demo-shapes', JSON.stringify(body));
        assert.equal(queued.input.model, 'demo-shapes', JSON.stringify(body));
      }
    } finally {
      await h.services.queues.get('generate').resume();
    }
    for (const id of ids) {
      const done = await waitFor(h.baseUrl, id, terminal);
      assert.equal(done.status, 'succeeded');
      assert.equal(done.model, 'demo-shapes');
    }
  });

  test('retention removes finished generations and their images, never unfinished ones', async () => {
    const finished = await json(
      await post(h.baseUrl, '/generations', { prompt: 'expires', candidates: 1, n: 1 }),
      GenerationAccepted,
    );
    const done = await waitFor(h.baseUrl, finished.id, terminal);
    await h.services.queues.get('generate').pause();
    const waiting = await json(
      await post(h.baseUrl, '/generations', { prompt: 'still queued', candidates: 1, n: 1 }),
      GenerationAccepted,
    );
    try {
      // A retention of zero: everything created before now has expired.
      const removed = await sweepExpired({
        queues: h.services.queues,
        keys: serviceKeys(h.config.queuePrefix),
        lifecycle: h.services.generations.lifecycle,
        retentionSeconds: 0,
        log: pino({ level: 'silent' }),
      });
      assert.ok(removed >= 1);
      assert.equal((await fetch(`${h.baseUrl}/generations/${finished.id}`)).status, 404);
      assert.equal((await fetch(done.images[0].url)).status, 404, 'its image is gone');
      assert.equal((await json(await fetch(`${h.baseUrl}/generations/${waiting.id}`))).status, 'queued');
    } finally {
      await h.services.queues.get('generate').resume();
    }
    assert.equal((await waitFor(h.baseUrl, waiting.id, terminal)).status, 'succeeded');
  });
});
