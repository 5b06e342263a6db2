// Each key lists its own generations from an index of its own: a key with a few generations
// sees them on its first page however many other keys' generations came after them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Harness, json, post, startHarness } from './api-harness.js';

// More than the list's scan limit (1000), all newer than the quiet key's generation.
const BUSY_GENERATIONS = 1100;

describe('listing among many keys', () => {
  let h: Harness;
  let quiet: Record<string, string>;
  let busy: Record<string, string>;
  before(async () => {
    h = await startHarness({
      worker: false,
      env: { AUTH_MODE: 'keys', WEBHOOK_SECRET: '', GENERATE_MAX_QUEUED: String(BUSY_GENERATIONS + 10) },
    });
    const bearer = async (name: string) => ({
      authorization: `Bearer ${(await h.services.keyStore.create(name)).key}`,
    });
    quiet = await bearer('quiet');
    busy = await bearer('busy');
  });
  after(() => h.close());

  test(`a key's only generation is on its first page after ${BUSY_GENERATIONS} newer ones of another key`, async () => {
    const mine = await json(await post(h.baseUrl, '/generations', { prompt: 'mine', candidates: 1 }, quiet));
    for (let sent = 0; sent < BUSY_GENERATIONS; sent += 50) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => post(h.baseUrl, '/generations', { prompt: 'theirs', candidates: 1 }, busy)),
      );
      assert.ok(
        batch.every((r) => r.status === 202),
        `statuses ${batch.map((r) => r.status).join(',')}`,
      );
    }
    const page = await json(await fetch(`${h.baseUrl}/generations?limit=5`, { headers: quiet }));
    assert.deepEqual(
      page.data.map((g: { id: string }) => g.id),
      [mine.id],
    );
    assert.equal(page.next_cursor, null);
    const theirs = await json(await fetch(`${h.baseUrl}/generations?limit=100`, { headers: busy }));
    assert.equal(theirs.data.length, 100);
    assert.ok(theirs.data.every((g: { input: { prompt: string } }) => g.input.prompt === 'theirs'));
  });

  test("a deleted generation leaves its key's list", async () => {
    const page = await json(await fetch(`${h.baseUrl}/generations`, { headers: quiet }));
    const id = page.data[0].id;
    await post(h.baseUrl, `/generations/${id}/cancel`, {}, quiet);
    assert.equal((await fetch(`${h.baseUrl}/generations/${id}`, { method: 'DELETE', headers: quiet })).status, 204);
    assert.deepEqual((await json(await fetch(`${h.baseUrl}/generations`, { headers: quiet }))).data, []);
  });
});
