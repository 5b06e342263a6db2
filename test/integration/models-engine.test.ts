// The engine end to end on the committed packs, through its inference thread: generation,
// reproducibility, truncation, the micro pack at DALL·E 1 geometry, a free event loop,
// cancellation and bad input.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import {
  createEngine,
  InvalidImageError,
  ModelError,
  type Engine,
  type GenerationProgress,
  silentLog,
} from '../../src/models/index.js';
import { candidateSeed } from '../../src/models/rng.js';

const modelsDir = fileURLToPath(new URL('../../packs/', import.meta.url));
const PROMPT = 'a red circle above a blue square';

async function png(r: number, g: number, b: number): Promise<Uint8Array> {
  return sharp({ create: { width: 64, height: 64, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
}

describe('engine on the committed packs', () => {
  let engine: Engine;
  before(async () => (engine = await createEngine({ modelsDir, logger: silentLog, sampleBatch: 4, clipBatch: 8 })));
  after(() => engine.close());

  test('lists both packs with the provider of every session, created for the CPU sampler only', () => {
    const packs = engine.packs();
    assert.deepEqual(
      packs.map((p) => p.name),
      ['demo-shapes', 'micro-dalle1'],
    );
    const demo = packs[0];
    assert.equal(demo.generation?.textLength, 24);
    assert.deepEqual(demo.generation?.imageSize, [64, 64]);
    // On the CPU kv_step samples alone: no prefill, step and sample_loop sessions (GBs each at
    // full size); the encoder completes images.
    assert.deepEqual(Object.keys(demo.providers).sort(), ['clip_image', 'clip_text', 'decoder', 'encoder', 'kv_step']);
    assert.equal(demo.generation?.completes, true);
    assert.equal(packs[1].generation?.completes, false, 'micro-dalle1 has no encoder');
    assert.ok(Object.values(demo.providers).every((p) => p === 'cpu'));
  });

  test('generates ranked images with scores and seeds, identical for the same request and any chunk size', async () => {
    const progress: GenerationProgress[] = [];
    const request = { prompt: PROMPT, seed: 11, candidates: 6, n: 3, model: 'demo-shapes' };
    const first = await engine.generate({ ...request, batch: 6, onProgress: (p) => progress.push(p) });
    assert.equal(first.model, 'demo-shapes');
    assert.equal(first.sampler, 'kv');
    assert.equal(first.truncated, false);
    assert.deepEqual(
      first.images.map((i) => i.rank),
      [1, 2, 3],
    );
    for (const image of first.images) {
      assert.equal(image.seed, candidateSeed(11, image.candidate));
      assert.equal(image.width, 64);
      assert.equal(image.pixels.length, 64 * 64 * 3);
    }
    const scores = first.images.map((i) => i.score);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
    );
    const { best, ...last } = progress.at(-1) ?? {};
    assert.deepEqual(last, { stage: 'reranking', completed: 6, total: 6 });
    // One reranking batch: the best so far it reports is the final best image.
    assert.deepEqual([best?.candidate, best?.pixels], [first.images[0].candidate, first.images[0].pixels]);
    assert.ok(progress.some((p) => p.stage === 'sampling' && p.completed === 6));
    assert.ok(first.timings.sampleMs > 0 && first.timings.decodeMs > 0 && first.timings.rerankMs > 0);

    const again = await engine.generate({ ...request, batch: 6 });
    const chunked = await engine.generate({ ...request, batch: 1 });
    for (const other of [again, chunked]) {
      assert.deepEqual(
        other.images.map((i) => [i.candidate, i.score]),
        first.images.map((i) => [i.candidate, i.score]),
      );
      other.images.forEach((image, i) => assert.deepEqual(image.pixels, first.images[i].pixels));
    }
  });

  test('a prompt longer than the text length is truncated and says so', async () => {
    const long = Array.from({ length: 12 }, () => 'a small red circle').join(' to the left of ');
    const result = await engine.generate({ prompt: long, seed: 1, candidates: 1, n: 1, model: 'demo-shapes' });
    assert.equal(result.truncated, true);
    assert.ok(result.promptTokens > 24, `${result.promptTokens} tokens`);
    assert.ok(long.startsWith(result.promptUsed) && result.promptUsed.length < long.length, result.promptUsed);
  });

  test('the micro pack runs end to end at DALL·E 1 geometry: 1024 tokens, 256×256 pixels', async () => {
    const result = await engine.generate({ prompt: PROMPT, seed: 3, candidates: 2, n: 2, model: 'micro-dalle1' });
    assert.equal(result.images.length, 2);
    for (const image of result.images) {
      assert.equal(image.width, 256);
      assert.equal(image.height, 256);
      assert.equal(image.pixels.length, 256 * 256 * 3);
    }
  });

  test('the event loop keeps turning while a generation runs', async () => {
    // Inference runs on its own thread: a chain of event-loop turns started with a generation
    // at DALL·E 1 geometry finishes long before it (a generation on this thread would hold
    // the chain until its end, or until each of its few chunks ended).
    const events: string[] = [];
    const generation = engine
      .generate({ prompt: PROMPT, seed: 1, candidates: 4, n: 2, batch: 2, model: 'micro-dalle1' })
      .then(() => events.push('generation'));
    const turns = (async () => {
      for (let turn = 0; turn < 200; turn++) await new Promise((resolve) => setImmediate(resolve));
      events.push('200 turns');
    })();
    await Promise.all([generation, turns]);
    assert.deepEqual(events, ['200 turns', 'generation']);
  });

  test('classification answers while a generation runs', async () => {
    const events: string[] = [];
    let sampling!: () => void;
    const sampled = new Promise<void>((resolve) => (sampling = resolve));
    const generation = engine
      .generate({
        prompt: PROMPT,
        seed: 4,
        candidates: 16,
        n: 1,
        batch: 2,
        model: 'micro-dalle1',
        onProgress: () => sampling(),
      })
      .then(() => events.push('generation'));
    // Asked once the generation is under way, with most of its chunks still to run.
    await sampled;
    const [outcome] = await engine.classify([
      { images: [await png(220, 30, 30)], labels: ['red circle', 'blue square'], model: 'demo-shapes' },
    ]);
    events.push('classify');
    await generation;
    assert.ok(outcome.ok);
    assert.deepEqual(events, ['classify', 'generation']);
  });

  test('abort rejects with an AbortError at the next chunk, and the engine carries on', async () => {
    const controller = new AbortController();
    const stages: GenerationProgress[] = [];
    const canceled = engine.generate({
      prompt: PROMPT,
      seed: 5,
      candidates: 40,
      n: 1,
      batch: 2,
      model: 'demo-shapes',
      signal: controller.signal,
      onProgress: (p) => {
        stages.push(p);
        controller.abort();
      },
    });
    await assert.rejects(canceled, { name: 'AbortError' });
    assert.ok(
      stages.every((p) => p.stage === 'sampling') && stages.at(-1)!.completed < 40,
      JSON.stringify(stages.at(-1)),
    );
    await assert.rejects(engine.generate({ prompt: PROMPT, seed: 5, signal: AbortSignal.abort() }), {
      name: 'AbortError',
    });
    const after = await engine.generate({ prompt: PROMPT, seed: 5, candidates: 1, n: 1, model: 'demo-shapes' });
    assert.equal(after.images.length, 1);
  });

  test('bad generation options are refused naming the field', async () => {
    const cases: [object, RegExp, string][] = [
      [{ candidates: 2, n: 3 }, /^n must be at most candidates/, 'validation_failed'],
      [{ topK: 0 }, /^topK must be a positive integer/, 'validation_failed'],
      [{ topK: 257 }, /^topK must be at most the codebook size 256/, 'validation_failed'],
      [{ temperature: 0 }, /^temperature must be a positive number/, 'validation_failed'],
      [{ seed: -1 }, /^seed must be an unsigned 32-bit integer/, 'validation_failed'],
      [{ prompt: ' ' }, /^prompt must be a non-empty string/, 'validation_failed'],
      [{ model: 'nope' }, /unknown model "nope": available are demo-shapes, micro-dalle1/, 'unknown_model'],
    ];
    for (const [change, message, code] of cases) {
      await assert.rejects(
        engine.generate({ prompt: PROMPT, seed: 1, candidates: 2, n: 1, model: 'demo-shapes', ...change }),
        (e: unknown) => {
          assert.ok(e instanceof ModelError, String(e));
          assert.equal(e.code, code);
          assert.match(e.message, message);
          return true;
        },
      );
    }
  });

  test('classify fails only the request with a bad image, no labels or an unknown model', async () => {
    const red = await png(220, 30, 30);
    const outcomes = await engine.classify([
      { images: [red, Buffer.from('not an image')], labels: ['red circle', 'blue square'] },
      { images: [red], labels: [] },
      { images: [red, await png(30, 70, 220)], labels: ['red circle', 'blue square', 'green cross'], topK: 2 },
      { images: [red], labels: ['red circle'], model: 'nope' },
    ]);
    assert.deepEqual(outcomes[3], {
      ok: false,
      error: {
        code: 'unknown_model',
        message: 'unknown model "nope": available are demo-shapes, micro-dalle1',
        index: -1,
      },
    });
    assert.deepEqual(outcomes[0], {
      ok: false,
      error: { code: 'invalid_image', message: outcomes[0].ok ? '' : outcomes[0].error.message, index: 1 },
    });
    assert.deepEqual(outcomes[1], {
      ok: false,
      error: { code: 'validation_failed', message: 'labels must not be empty', index: -1 },
    });
    assert.ok(outcomes[2].ok);
    if (!outcomes[2].ok) return;
    assert.equal(outcomes[2].results.length, 2);
    for (const ranked of outcomes[2].results) {
      assert.equal(ranked.length, 2);
      assert.ok(ranked[0].score >= ranked[1].score);
    }
    const all = await engine.classify([{ images: [red], labels: ['red circle', 'blue square', 'green cross'] }]);
    assert.ok(all[0].ok);
    if (all[0].ok) assert.ok(Math.abs(all[0].results[0].reduce((s, l) => s + l.score, 0) - 1) < 1e-6);
  });

  test('embeddings are L2-normalised; a bad image rejects with its index', async () => {
    const [image] = await engine.embedImages([await png(30, 160, 50)]);
    const [text] = await engine.embedTexts(['a green square']);
    for (const e of [image, text]) {
      assert.equal(e.length, 64);
      assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-5);
    }
    await assert.rejects(
      engine.embedImages([await png(1, 2, 3), new Uint8Array([0x89, 0x50, 0x4e, 0x47])]),
      (e: unknown) => {
        assert.ok(e instanceof InvalidImageError);
        assert.equal(e.index, 1);
        return true;
      },
    );
  });
});

describe('engine with the host sampling loop', () => {
  let host: Engine;
  let graph: Engine;
  before(async () => {
    host = await createEngine({ modelsDir, logger: silentLog, samplerMode: 'host', eager: false });
    graph = await createEngine({ modelsDir, logger: silentLog, samplerMode: 'graph', eager: false });
  });
  after(async () => {
    await host.close();
    await graph.close();
  });

  test('gives the same images as the sample_loop graph', async () => {
    const request = { prompt: PROMPT, seed: 21, candidates: 4, n: 4, batch: 2, model: 'demo-shapes' };
    const [a, b] = [await host.generate(request), await graph.generate(request)];
    // The host loop over kv_step, which the pack has.
    assert.equal(a.sampler, 'kv');
    assert.equal(b.sampler, 'graph');
    // Each created the sessions of its own sampler and no other.
    const sessions = (engine: Engine) => Object.keys(engine.packs()[0].providers).sort();
    assert.deepEqual(sessions(host), ['clip_image', 'clip_text', 'decoder', 'kv_step']);
    assert.deepEqual(sessions(graph), ['clip_image', 'clip_text', 'decoder', 'sample_loop']);
    assert.deepEqual(
      a.images.map((i) => [i.candidate, i.score]),
      b.images.map((i) => [i.candidate, i.score]),
    );
    a.images.forEach((image, i) => assert.deepEqual(image.pixels, b.images[i].pixels));
  });

  test('stops inside a chunk when aborted', async () => {
    // Aborted when the first chunk ends: the thread has gone on to the second, of 1024 steps,
    // and stops inside it instead of finishing it.
    const controller = new AbortController();
    const progress: GenerationProgress[] = [];
    const run = host.generate({
      prompt: PROMPT,
      seed: 1,
      candidates: 8,
      n: 1,
      batch: 4,
      model: 'micro-dalle1',
      signal: controller.signal,
      onProgress: (p) => {
        progress.push(p);
        controller.abort();
      },
    });
    await assert.rejects(run, { name: 'AbortError' });
    assert.deepEqual(
      progress.map(({ best: _best, ...p }) => p),
      [{ stage: 'sampling', completed: 4, total: 8 }],
    );
  });
});

describe('engine start-up', () => {
  test('an unknown device name fails and lists the valid ones', async () => {
    await assert.rejects(createEngine({ modelsDir, logger: silentLog, device: 'gpu' as never }), (e: unknown) => {
      assert.ok(
        e instanceof ModelError && e.code === 'invalid_device' && /valid names are cpu, cuda/.test(e.message),
        String(e),
      );
      return true;
    });
  });

  test('CUDA that cannot load fails start-up with the reason, or falls back when allowed', async () => {
    await assert.rejects(createEngine({ modelsDir, logger: silentLog, device: 'cuda', eager: false }), (e: unknown) => {
      assert.ok(e instanceof ModelError && e.code === 'device_unavailable', String(e));
      assert.match(e.message, /cuda:0 requested but the CUDA provider failed/);
      return true;
    });
    const engine = await createEngine({
      modelsDir,
      logger: silentLog,
      device: 'cuda',
      eager: false,
      allowCpuFallback: true,
      maxImagePixels: 1000,
    });
    try {
      const [embedding] = await engine.embedTexts(['a red circle'], 'demo-shapes');
      assert.equal(embedding.length, 64);
      assert.match(engine.packs()[0].providers.clip_text, /^cpu-fallback \(CPU \d+ kernels\)$/);
      await assert.rejects(
        engine.embedImages([await png(9, 9, 9)]),
        (e: unknown) => e instanceof InvalidImageError && /pixel limit/i.test(e.message),
      );
    } finally {
      await engine.close();
    }
  });

  test("a placement probe reports where each session's kernels ran, at start-up for the chosen sampler's", async () => {
    for (const [samplerMode, sampling] of [
      ['auto', ['kv_step']],
      ['graph', ['sample_loop']],
    ] as const) {
      const engine = await createEngine({ modelsDir, logger: silentLog, probePlacement: true, samplerMode });
      try {
        for (const pack of engine.packs()) {
          const encoder = pack.generation?.completes ? ['encoder'] : [];
          const expected = ['clip_image', 'clip_text', 'decoder', ...encoder, ...sampling].sort();
          assert.deepEqual(Object.keys(pack.providers).sort(), expected, `${samplerMode} ${pack.name}`);
          for (const [graph, provider] of Object.entries(pack.providers))
            assert.match(provider, /^cpu \(CPU \d+ kernels\)$/, `${pack.name} ${graph}`);
        }
      } finally {
        await engine.close();
      }
    }
  });

  test('close ends a running generation after its chunk with engine_closed, then refuses new calls', async () => {
    const engine = await createEngine({ modelsDir, logger: silentLog, eager: false });
    let sampling!: () => void;
    const sampled = new Promise<void>((resolve) => (sampling = resolve));
    const running = engine.generate({
      prompt: PROMPT,
      seed: 1,
      candidates: 64,
      n: 1,
      batch: 2,
      model: 'demo-shapes',
      onProgress: () => sampling(),
    });
    const outcome = running.then(
      () => 'finished',
      (e: ModelError) => e.code,
    );
    // Closed after the first of 32 chunks.
    await sampled;
    await engine.close();
    assert.equal(await outcome, 'engine_closed');
    await assert.rejects(engine.embedTexts(['a red circle']), { code: 'engine_closed' });
  });

  test('a models folder without packs fails start-up', async () => {
    await assert.rejects(
      createEngine({ modelsDir: fileURLToPath(new URL('../../src/', import.meta.url)), logger: silentLog }),
      { code: 'pack_file_missing' },
    );
  });
});
