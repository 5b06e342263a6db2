// The lifecycle of a generation's record (src/service/lifecycle.ts), on real Redis: every state
// a record can be in, each met by every transition, with the outcome and the state it leaves.
// After each one the record's promises hold: one `completed` event exactly when terminal, with
// the record's status; an open generation listed as open; a failed, canceled or deleted one
// keeps no images.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generationPrefix, imageKey } from '../../src/contracts/jobs.js';
import type { GenerationResult } from '../../src/contracts/records.js';
import { isTerminal } from '../../src/contracts/status.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { normalizeGenerationInput } from '../../src/service/generations.js';
import { newGenerationId } from '../../src/service/ids.js';
import type { Lifecycle } from '../../src/service/lifecycle.js';
import { type Harness, startHarness } from './api-harness.js';

const RESULT: GenerationResult = {
  model: 'demo-shapes',
  prompt_tokens: 3,
  truncated: false,
  images: [],
  metrics: { queue_ms: 1, sample_ms: 1, decode_ms: 1, rerank_ms: 1, store_ms: 1, total_ms: 5 },
};
const STALE = 99;

/** How each starting state is reached, through the transitions themselves. */
const STATES: Record<string, (lifecycle: Lifecycle, id: string) => Promise<unknown>> = {
  queued: async () => undefined,
  'queued for a retry': async (l, id) => {
    await l.start(id);
    await l.fail(id, 1, { code: 'storage_failed', message: 'x' }, false);
  },
  processing: (l, id) => l.start(id),
  'processing, cancel requested': async (l, id) => {
    await l.start(id);
    await l.cancel(id);
  },
  succeeded: async (l, id) => {
    await l.start(id);
    await l.commit(id, 1, RESULT);
  },
  failed: async (l, id) => {
    await l.start(id);
    await l.fail(id, 1, { code: 'generation_failed', message: 'x' }, true);
  },
  canceled: (l, id) => l.cancel(id),
  missing: async () => undefined,
};

/** Each transition, its answer written as one word (`run:2`, `finished:canceled`, …). */
const TRANSITIONS: Record<string, (lifecycle: Lifecycle, id: string) => Promise<string>> = {
  start: async (l, id) => {
    const started = await l.start(id);
    if (started.outcome === 'run') return `run:${started.attempt}`;
    return started.outcome === 'finished' ? `finished:${started.status}` : started.outcome;
  },
  'progress (attempt 1)': async (l, id) =>
    (await l.progress(id, 1, { stage: 'sampling', completed: 1, total: 2 }, `${id}-progress-sampling-1`))
      ? 'recorded'
      : 'stale',
  'progress (a stale attempt)': async (l, id) =>
    (await l.progress(id, STALE, { stage: 'sampling', completed: 1, total: 2 })) ? 'recorded' : 'stale',
  'commit (attempt 1)': (l, id) => l.commit(id, 1, RESULT),
  'commit (a stale attempt)': (l, id) => l.commit(id, STALE, RESULT),
  'fail to retry (attempt 1)': (l, id) => l.fail(id, 1, { code: 'storage_failed', message: 'y' }, false),
  'fail for good (attempt 1)': (l, id) => l.fail(id, 1, { code: 'generation_failed', message: 'y' }, true),
  'fail for good (any attempt)': (l, id) => l.fail(id, 'any', { code: 'worker_lost', message: 'y' }, true),
  cancel: async (l, id) => {
    const canceled = await l.cancel(id);
    return canceled.outcome === 'finished' ? `finished:${canceled.status}` : canceled.outcome;
  },
  delete: async (l, id) => {
    const removed = await l.remove(id, 'anonymous');
    return removed.outcome === 'unfinished' ? `unfinished:${removed.status}` : removed.outcome;
  },
};

// Rows: the starting states; columns: the transitions, in the order above. Each cell: the
// answer → the status after (`-` when no record is left).
const EXPECTED: Record<string, string[]> = {
  queued: [
    'run:1 → processing',
    'stale → queued',
    'stale → queued',
    'stale → queued',
    'stale → queued',
    'stale → queued',
    'stale → queued',
    'failed → failed',
    'canceled → canceled',
    'unfinished:queued → queued',
  ],
  'queued for a retry': [
    'run:2 → processing',
    'stale → queued',
    'stale → queued',
    'stale → queued',
    'stale → queued',
    'queued → queued',
    'failed → failed',
    'failed → failed',
    'canceled → canceled',
    'unfinished:queued → queued',
  ],
  processing: [
    'run:2 → processing',
    'recorded → processing',
    'stale → processing',
    'committed → succeeded',
    'stale → processing',
    'queued → queued',
    'failed → failed',
    'failed → failed',
    'requested → processing',
    'unfinished:processing → processing',
  ],
  'processing, cancel requested': [
    'finished:canceled → canceled',
    'recorded → processing',
    'stale → processing',
    'canceled → canceled',
    'stale → processing',
    'canceled → canceled',
    'canceled → canceled',
    'canceled → canceled',
    'requested → processing',
    'unfinished:processing → processing',
  ],
  succeeded: [
    'finished:succeeded → succeeded',
    'stale → succeeded',
    'stale → succeeded',
    'committed → succeeded',
    'stale → succeeded',
    'succeeded → succeeded',
    'succeeded → succeeded',
    'succeeded → succeeded',
    'finished:succeeded → succeeded',
    'deleted → -',
  ],
  failed: [
    'finished:failed → failed',
    'stale → failed',
    'stale → failed',
    'failed → failed',
    'stale → failed',
    'failed → failed',
    'failed → failed',
    'failed → failed',
    'finished:failed → failed',
    'deleted → -',
  ],
  canceled: [
    'finished:canceled → canceled',
    'stale → canceled',
    'stale → canceled',
    'stale → canceled',
    'stale → canceled',
    'stale → canceled',
    'stale → canceled',
    'canceled → canceled',
    'finished:canceled → canceled',
    'deleted → -',
  ],
  missing: [
    'missing → -',
    'stale → -',
    'stale → -',
    'missing → -',
    'missing → -',
    'missing → -',
    'missing → -',
    'missing → -',
    'missing → -',
    'missing → -',
  ],
};

describe('the lifecycle of a generation record', () => {
  let h: Harness;
  let lifecycle: Lifecycle;

  before(async () => {
    h = await startHarness({ worker: false });
    lifecycle = h.services.generations.lifecycle;
  });
  after(() => h.close());

  async function recordIn(state: string): Promise<string> {
    const id = newGenerationId();
    if (state === 'missing') return id;
    const input = normalizeGenerationInput({ prompt: 'a table of states', candidates: 1 }, 1);
    await lifecycle.create({ id, owner: 'anonymous', input, createdAt: new Date().toISOString() });
    await lifecycle.markEnqueued(id);
    // What the first attempt stores.
    await h.services.store.put(imageKey(id, 1, 1, 'png'), new Uint8Array([1]), 'image/png');
    await STATES[state](lifecycle, id);
    return id;
  }

  /** The promises every record keeps, whatever happened to it. */
  async function assertConsistent(id: string, where: string): Promise<void> {
    const keys = serviceKeys(h.config.queuePrefix);
    const redis = h.services.queues.redis;
    const record = await lifecycle.read(id);
    const events = await h.services.generations.events.read(id);
    const completed = events.filter((event) => event.event === 'completed');
    const open = (await redis.zscore(keys.openGenerations, id)) !== null;
    const imageKept = (await h.services.store.get(imageKey(id, 1, 1, 'png'))) !== null;
    if (!record) {
      assert.equal(open, false, `${where}: a generation without a record is not open`);
      assert.equal(imageKept, false, `${where}: a deleted generation keeps no images`);
      return;
    }
    if (isTerminal(record.status)) {
      assert.equal(completed.length, 1, `${where}: one completed event`);
      assert.equal(completed[0].state.status, record.status, `${where}: the completed event says what GET says`);
      assert.equal(open, false, `${where}: a finished generation is not open`);
      if (record.status !== 'succeeded') assert.equal(imageKept, false, `${where}: it keeps no images`);
    } else {
      assert.equal(completed.length, 0, `${where}: no completed event before the end`);
      assert.equal(open, true, `${where}: an unfinished generation is open`);
    }
  }

  for (const [state, row] of Object.entries(EXPECTED)) {
    test(`from ${state}`, async () => {
      const answers: string[] = [];
      for (const [column, transition] of Object.entries(TRANSITIONS)) {
        const id = await recordIn(state);
        const answer = await transition(lifecycle, id);
        const after = await lifecycle.read(id);
        answers.push(`${answer} → ${after?.status ?? '-'}`);
        await assertConsistent(id, `${state} × ${column}`);
      }
      assert.deepEqual(
        Object.fromEntries(Object.keys(TRANSITIONS).map((column, i) => [column, answers[i]])),
        Object.fromEntries(Object.keys(TRANSITIONS).map((column, i) => [column, row[i]])),
      );
    });
  }

  test('an attempt that commits gets the same answer when it asks again (a reply lost in an outage)', async () => {
    const id = await recordIn('processing');
    assert.equal(await lifecycle.commit(id, 1, RESULT), 'committed');
    assert.equal(await lifecycle.commit(id, 1, RESULT), 'committed');
    assert.equal((await h.services.generations.events.read(id)).filter((e) => e.event === 'completed').length, 1);
  });

  test('a new attempt lists the images of the earlier ones for deletion', async () => {
    const id = await recordIn('processing');
    await h.services.store.put(`${generationPrefix(id)}a1-1.png`, new Uint8Array([1]), 'image/png');
    assert.deepEqual(await lifecycle.start(id), { outcome: 'run', attempt: 2 });
    assert.equal(await h.services.store.get(`${generationPrefix(id)}a1-1.png`), null);
  });
});
