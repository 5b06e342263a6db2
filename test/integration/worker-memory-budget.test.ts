// The memory budget of a generation batch (GENERATE_MEMORY_BUDGET_MB): a pack's batches never
// hold more rows, nor decode more images at once, than fit; GET /models says how many, and a pack
// that cannot fit one row beside one decoded image stops the worker at start with the figures.
// On the CPU the worker samples with kv_step, a row holding its key/value buffers (manifest.ts
// kvRowBytes): demo-shapes 651 KiB a row and 97 KiB an image decoded, micro-dalle1 1.6 MiB and
// 1.5 MiB.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';

describe('generation memory budget', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { GENERATE_BATCH_CANDIDATES: '8' } });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('a pack that cannot fit one row stops the worker at start, naming it and the figures', async () => {
    await assert.rejects(
      h.startWorker({ GENERATE_MEMORY_BUDGET_MB: '3' }),
      /pack micro-dalle1 needs 1\.6 MiB per candidate row beside 1\.5 MiB to decode one image, more than the memory budget of 3\.0 MiB: raise GENERATE_MEMORY_BUDGET_MB/,
    );
  });

  test('batches hold no more rows than the budget allows; GET /models shows them', async () => {
    const { metricsPort } = await h.startWorker({ GENERATE_MEMORY_BUDGET_MB: '4' });
    const models = await json(await fetch(`${h.baseUrl}/models`));
    const byName = new Map(models.data.map((m: any) => [m.name, m.generation]));
    const demo: any = byName.get('demo-shapes');
    const micro: any = byName.get('micro-dalle1');
    // 4 MiB holds 5 demo rows, each with the room to decode its image (a quarter would hold 10
    // images); a quarter holds no micro-dalle1 image, so one row and its image take the budget.
    assert.deepEqual([demo.decode_image_bytes, micro.decode_image_bytes], [98_816, 1_581_056]);
    assert.deepEqual([demo.decode_batch_images, micro.decode_batch_images], [5, 1]);
    assert.deepEqual([demo.max_batch_rows, micro.max_batch_rows], [5, 1]);
    assert.equal(demo.max_batch_rows, Math.floor((4 * 2 ** 20) / (demo.row_bytes + demo.decode_image_bytes)));

    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'a red circle', model: 'demo-shapes', candidates: 12, n: 1 }),
    );
    const done = await waitFor(h.baseUrl, accepted.id, terminal, 60_000);
    assert.equal(done.status, 'succeeded');
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const sum = Number(/^dalle_generation_batch_rows_sum (\S+)$/m.exec(metrics)?.[1]);
    const count = Number(/^dalle_generation_batch_rows_count (\S+)$/m.exec(metrics)?.[1]);
    // 12 candidates in batches of at most 5 rows: three batches, not the two that 8 rows would make.
    assert.deepEqual([sum, count], [12, 3]);
  });
});
