// The generation scheduler on a real engine (committed packs, onnxruntime, sharp): a job's
// output is the same alone or mixed with others, round-robin lets a small job past a large
// one, and a cancel or a bad input removes only that job. Completions (kept tokens) mix too.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AbortError,
  createEngine,
  ModelError,
  type Engine,
  type GenerateResult,
  type GenerationProgress,
  silentLog,
} from '../../src/models/index.js';
import sharp from 'sharp';
import { encodeImage } from '../../src/lib/encode-image.js';
import { type BatchStats, GenerationScheduler, type ScheduledGeneration } from '../../src/models/scheduler.js';

const modelsDir = fileURLToPath(new URL('../../packs/', import.meta.url));

type Job = Omit<ScheduledGeneration, 'signal'> & { signal?: AbortSignal };

const job = (prompt: string, extra: Partial<Job> = {}): Job => ({
  model: 'demo-shapes',
  prompt,
  seed: 42,
  candidates: 24,
  n: 4,
  ...extra,
});

function scheduler(engine: Engine, batchCandidates: number, batches: BatchStats[] = []) {
  return new GenerationScheduler(engine, { batchCandidates, onBatch: (stats) => batches.push(stats) });
}

const submit = (s: GenerationScheduler, j: Job) => s.submit({ ...j, signal: j.signal ?? new AbortController().signal });

async function pngs(result: GenerateResult): Promise<Buffer[]> {
  return Promise.all(result.images.map((i) => encodeImage(i.pixels, i.width, i.height, 'png')));
}

describe('generation scheduler', () => {
  let engine: Engine;
  before(async () => (engine = await createEngine({ modelsDir, logger: silentLog, clipBatch: 8 })));
  after(() => engine.close());

  test('a job, plain or a completion, gives the same tokens, ranks, PNG bytes and scores alone as mixed', async () => {
    const { data } = await sharp(fileURLToPath(new URL('../fixtures/scenes/heldout-03.png', import.meta.url)))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    // The top half of the 8×8 grid kept (DALL·E's "top part").
    const keepCells = new Uint8Array(64).fill(1, 0, 32);
    const completion = { pixels: new Uint8Array(data), keepCells };
    const targets = [
      job('a red circle', { topK: 16, temperature: 0.9, topP: 0.95 }),
      job('a blue square below a red circle', { seed: 5, candidates: 16, completion }),
    ];
    const others = [
      job('a blue square', { seed: 7, candidates: 16, topK: 4, temperature: 1.3 }),
      job('a green cross above a yellow triangle', { seed: 8, candidates: 40, topK: 64, temperature: 0.7, topP: 0.8 }),
      job('a small cyan circle', { seed: 9, candidates: 8, n: 2 }),
    ];
    const alone = [];
    for (const target of targets) alone.push(await submit(scheduler(engine, 16), target));
    const batches: BatchStats[] = [];
    const s = scheduler(engine, 16, batches);
    const mixed = await Promise.all([...targets, ...others].map((j) => submit(s, j)));
    assert.ok(
      batches.some((b) => b.jobs >= 3),
      'batches hold rows of several jobs, a completion among them',
    );
    for (const [t, result] of alone.entries()) {
      assert.deepEqual(
        mixed[t].images.map((i) => [i.rank, i.candidate, i.seed]),
        result.images.map((i) => [i.rank, i.candidate, i.seed]),
      );
      mixed[t].images.forEach((image, i) => {
        assert.deepEqual(image.tokens, result.images[i].tokens);
        assert.ok(Math.abs(image.score - result.images[i].score) <= 1e-6, `target ${t}, score of rank ${i + 1}`);
      });
      assert.deepEqual(await pngs(mixed[t]), await pngs(result));
    }
    // The completion's candidates share the kept half and differ below it.
    const [first, ...rest] = mixed[1].images;
    for (const image of rest) {
      assert.deepEqual(image.tokens.subarray(0, 32), first.tokens.subarray(0, 32));
      assert.notDeepEqual(image.tokens.subarray(32), first.tokens.subarray(32));
    }
  });

  test('a small job submitted behind a large one takes the next batch and finishes first', async () => {
    const batches: BatchStats[] = [];
    let firstBatch = () => {};
    const started = new Promise<void>((resolve) => (firstBatch = resolve));
    const s = new GenerationScheduler(engine, {
      batchCandidates: 8,
      onBatch: (stats) => {
        batches.push(stats);
        firstBatch();
      },
    });
    const finished: string[] = [];
    const large = submit(s, job('a large red square', { candidates: 48 })).then(() => finished.push('large'));
    await started;
    const small = submit(s, job('a small blue circle', { candidates: 8, n: 2 })).then(() => finished.push('small'));
    await Promise.all([large, small]);
    assert.deepEqual(finished, ['small', 'large']);
    // The first batch ran before the small job came; the next one is the small job's alone
    // (least work left first), then the large one goes on.
    assert.deepEqual(
      batches.slice(0, 3).map((b) => b.jobs),
      [1, 1, 1],
    );
    assert.ok(batches.every((b) => b.rows <= 8));
  });

  test('progress per job: stages in order, counts only rising', async () => {
    const seen: GenerationProgress[] = [];
    const s = scheduler(engine, 8);
    await Promise.all([
      submit(s, job('a red circle', { candidates: 20, onProgress: (p) => seen.push(p) })),
      submit(s, job('a blue square', { candidates: 12 })),
    ]);
    const stages = ['sampling', 'decoding', 'reranking'];
    for (let i = 1; i < seen.length; i++) {
      const [a, b] = [seen[i - 1], seen[i]];
      assert.ok(stages.indexOf(b.stage) >= stages.indexOf(a.stage), `${a.stage} then ${b.stage}`);
      if (a.stage === b.stage) assert.ok(b.completed > a.completed);
    }
    // The last event may also carry a new best image, whether it does depends on the weights.
    const { stage, completed, total } = seen.at(-1)!;
    assert.deepEqual({ stage, completed, total }, { stage: 'reranking', completed: 20, total: 20 });
  });

  test('a cancel removes only that job; a bad input fails only its own job', async () => {
    const batches: BatchStats[] = [];
    const s = scheduler(engine, 8, batches);
    const controller = new AbortController();
    const canceled = submit(s, {
      ...job('a red circle', { candidates: 64 }),
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    const bad = submit(s, job('a blue square', { topK: 100_000 }));
    const good = submit(s, job('a green cross', { candidates: 24 }));
    // Settled together: whichever ends first (the least work first), none is left unheard.
    const [canceledOutcome, badOutcome] = await Promise.allSettled([canceled, bad, good]);
    assert.ok(canceledOutcome.status === 'rejected' && canceledOutcome.reason instanceof AbortError);
    assert.ok(
      badOutcome.status === 'rejected' &&
        badOutcome.reason instanceof ModelError &&
        badOutcome.reason.code === 'validation_failed',
    );
    const result = await good;
    assert.equal(result.images.length, 4);
    assert.equal(s.size, 0);
    // The canceled job had 64 candidates; far fewer rows than that ran.
    const rows = batches.reduce((sum, b) => sum + b.rows, 0);
    assert.ok(rows < 24 + 24 + 64, `${rows} rows`);
  });
});
