// The minDALL-E and dVAE exporters end to end: seeded random checkpoints in upstream's layouts
// (training/tests/make_upstream_checkpoints.py) are exported by the command lines a user runs;
// onnxruntime must give upstream's token ids, logits, pixels and encoder codes (the committed
// fixture), and the engine must generate and complete images with both packs: minDALL-E's geometry
// with its weights in one shared external-data file, and the dVAE decoder and encoder paired with
// the micro pack's DALL·E 1 generator.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createEngine, type Engine, silentLog } from '../../src/models/index.js';
import type { CompletionInput } from '../../src/models/types.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = join(root, 'training/tests/fixtures/upstream-small.json');
const python = (...args: string[]) =>
  run('/usr/bin/python3', args, { cwd: root, env: { ...process.env, OPENBLAS_NUM_THREADS: '1' }, maxBuffer: 1 << 24 });

describe('exported minDALL-E and dVAE packs', () => {
  let dir: string;
  let engine: Engine;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mindalle-'));
    await python('-m', 'training.tests.make_upstream_checkpoints', dir, '--with-dalle1-dvae');
    await python('-m', 'training.tests.make_openai_clip_case', join(dir, 'clip'), '--checkpoint-only');
    await python(
      ...['-m', 'training.export.mindalle_pack', '--checkpoint', join(dir, 'mindalle'), '--name', 'mindalle-tiny'],
      ...['--out', join(dir, 'packs', 'mindalle-tiny'), '--external-data'],
      ...['--clip-checkpoint', join(dir, 'clip', 'ViT-T-16.pt'), '--clip-bpe', join(dir, 'clip', 'bpe.txt.gz')],
    );
    await python(
      ...['-m', 'training.export.dvae_decoder', '--checkpoint', join(dir, 'dvae-dalle1', 'decoder.pkl')],
      ...['--encoder-checkpoint', join(dir, 'dvae-dalle1', 'encoder.pkl')],
      ...['--base', join(root, 'packs', 'micro-dalle1'), '--out', join(dir, 'packs', 'micro-dalle1-dvae')],
    );
    await python(
      ...['-m', 'training.export.dvae_decoder', '--checkpoint', join(dir, 'dvae', 'decoder.pkl')],
      ...['--grid', '4', '--out', join(dir, 'dvae-small.onnx')],
    );
    await python(
      ...['-m', 'training.export.dvae_encoder', '--checkpoint', join(dir, 'dvae', 'encoder.pkl')],
      ...['--size', '32', '--out', join(dir, 'dvae-small-encoder.onnx')],
    );
    engine = await createEngine({ modelsDir: join(dir, 'packs'), logger: silentLog, sampleBatch: 4, clipBatch: 4 });
  });

  after(async () => {
    await engine?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("onnxruntime gives upstream's token ids, prefill and step logits, decoder pixels and encoder codes", async () => {
    const { stdout } = await run(
      process.execPath,
      [
        'training/check_upstream.mjs',
        join(dir, 'packs', 'mindalle-tiny'),
        fixture,
        ...['--dvae', join(dir, 'dvae-small.onnx')],
        ...['--dvae-encoder', join(dir, 'dvae-small-encoder.onnx')],
      ],
      { cwd: root },
    );
    const report = JSON.parse(stdout) as {
      ok: boolean;
      tokenizer_mismatches: unknown[];
      prefill: number;
      dvae: number;
      encoder: number | null;
      dvae_encoder: number;
    };
    assert.equal(report.ok, true, stdout);
    assert.deepEqual(report.tokenizer_mismatches, []);
    // Every code of upstream's VQGAN.get_codes and of dall_e's encoder argmax, none missing.
    assert.equal(report.encoder, 0, stdout);
    assert.equal(report.dvae_encoder, 0, stdout);
  });

  test('with --fp16 the weights take half the bytes and the logits stay within 1e-2 of upstream', async () => {
    const out = join(dir, 'mindalle-fp16');
    await python('-m', 'training.export.mindalle_pack', '--checkpoint', join(dir, 'mindalle'), '--out', out, '--fp16');
    const { stdout } = await run(process.execPath, ['training/check_upstream.mjs', out, fixture, '--fp16'], {
      cwd: root,
    });
    assert.equal((JSON.parse(stdout) as { ok: boolean }).ok, true, stdout);
    const files = async (pack: string) =>
      (JSON.parse(await readFile(join(pack, 'manifest.json'), 'utf8')) as { files: Record<string, { bytes: number }> })
        .files;
    // The fp16 step graph holds every generator weight; the float32 pack's shared file holds each once.
    const step = (await files(out))['generator-step.onnx'].bytes;
    const float32 = (await files(join(dir, 'packs', 'mindalle-tiny')))['generator.weights'].bytes;
    assert.ok(step < 0.6 * float32, `${step} bytes against ${float32}`);
  });

  test('the minDALL-E pack states its license and keeps the generator weights once', async () => {
    const manifest = JSON.parse(await readFile(join(dir, 'packs', 'mindalle-tiny', 'manifest.json'), 'utf8')) as {
      schema_version: number;
      license: string;
      files: Record<string, { bytes: number }>;
    };
    assert.equal(manifest.schema_version, 5);
    assert.match(manifest.license, /CC-BY-NC-SA-4\.0/);
    // The engine reports it with the pack, for GET /models.
    assert.equal(engine.packs().find((pack) => pack.name === 'mindalle-tiny')?.license, manifest.license);
    const graphs = ['generator-prefill.onnx', 'generator-step.onnx', 'generator-sample-loop.onnx', 'generator-kv-step.onnx'];
    const inGraphs = graphs.reduce((sum, g) => sum + manifest.files[g].bytes, 0);
    assert.ok(inGraphs < manifest.files['generator.weights'].bytes, `${inGraphs} bytes in the graphs themselves`);
  });

  test("generates at minDALL-E's layout: 64 text tokens, ranked images, reproducible by seed", async () => {
    const packs = engine.packs().map((p) => p.name);
    assert.deepEqual(packs, ['micro-dalle1-dvae', 'mindalle-tiny']);
    const request = {
      prompt: 'An oil painting of the sea at night!',
      seed: 5,
      candidates: 4,
      n: 2,
      model: 'mindalle-tiny',
    };
    const first = await engine.generate(request);
    assert.equal(first.sampler, 'kv');
    assert.equal(first.truncated, false);
    assert.equal(first.images.length, 2);
    for (const image of first.images) {
      assert.equal(image.width, 64);
      assert.equal(image.pixels.length, 64 * 64 * 3);
    }
    const again = await engine.generate(request);
    again.images.forEach((image, i) => assert.deepEqual(image.pixels, first.images[i].pixels));
    const other = await engine.generate({ ...request, seed: 6 });
    assert.notDeepEqual(
      other.images.map((i) => Buffer.from(i.pixels).toString('base64')),
      first.images.map((i) => Buffer.from(i.pixels).toString('base64')),
    );
  });

  test("kv_step draws sample_loop's images", async () => {
    const graph = await createEngine({ modelsDir: join(dir, 'packs'), logger: silentLog, samplerMode: 'graph' });
    try {
      const request = { prompt: 'a bird on a branch', seed: 3, candidates: 4, n: 4, model: 'mindalle-tiny' };
      const [kv, loop] = [await engine.generate(request), await graph.generate(request)];
      assert.deepEqual([kv.sampler, loop.sampler], ['kv', 'graph']);
      kv.images.forEach((image, i) => assert.deepEqual(image.pixels, loop.images[i].pixels, `image ${i}`));
    } finally {
      await graph.close();
    }
  });

  test('a prompt over 64 tokens is truncated and says so', async () => {
    const long = Array.from({ length: 8 }, () => 'the quick brown fox jumps over the lazy dog').join(' ');
    const result = await engine.generate({ prompt: long, seed: 1, candidates: 1, n: 1, model: 'mindalle-tiny' });
    assert.equal(result.truncated, true);
    assert.ok(result.promptTokens > 64, `${result.promptTokens} tokens`);
  });

  test("both packs complete images: kept cells hold the encoder's codes, upstream's on minDALL-E", async () => {
    const packs = engine.packs();
    for (const name of ['mindalle-tiny', 'micro-dalle1-dvae'])
      assert.equal(packs.find((p) => p.name === name)?.generation?.completes, true, name);
    const images = JSON.parse(await readFile(fixture, 'utf8')) as {
      encoder_images: { shape: number[]; base64: string };
      encoder_codes: number[][];
    };
    const [, height, width] = images.encoder_images.shape;
    const first = Buffer.from(images.encoder_images.base64, 'base64').subarray(0, height * width * 3);
    // minDALL-E's 4×4 grid: the top half kept. The micro pack's 32×32 grid at 256×256 px: a
    // left-to-right gradient, its top 8 rows kept.
    const gradient = new Uint8Array(256 * 256 * 3).map((_, i) => Math.floor((i / 3) % 256));
    const cases: [string, CompletionInput, number[] | undefined][] = [
      [
        'mindalle-tiny',
        { pixels: new Uint8Array(first), keepCells: new Uint8Array(16).fill(1, 0, 8) },
        images.encoder_codes[0],
      ],
      ['micro-dalle1-dvae', { pixels: gradient, keepCells: new Uint8Array(1024).fill(1, 0, 256) }, undefined],
    ];
    for (const [model, completion, upstream] of cases) {
      const result = await engine.runChunk({
        model,
        parts: [{ key: 'c', prompt: 'a red apple', seed: 4, first: 0, count: 3, n: 3, completion }],
      });
      const [outcome] = result.parts;
      assert.ok(outcome.ok, JSON.stringify(outcome));
      const kept = (tokens: Int32Array) => Array.from(tokens).filter((_, i) => completion.keepCells[i]);
      const codes = kept(outcome.images[0].tokens);
      for (const image of outcome.images) assert.deepEqual(kept(image.tokens), codes, `${model}: kept cells`);
      if (upstream) assert.deepEqual(codes, upstream.slice(0, 8), "upstream's codes of the image's top half");
      else assert.ok(new Set(codes).size > 8, `${model}: ${new Set(codes).size} distinct codes along a gradient`);
    }
  });

  test("the dVAE decoder pairs with the micro pack's DALL·E 1 generator: 256×256 images", async () => {
    const result = await engine.generate({
      prompt: 'a red circle',
      seed: 2,
      candidates: 2,
      n: 1,
      model: 'micro-dalle1-dvae',
    });
    assert.equal(result.images.length, 1);
    assert.equal(result.images[0].width, 256);
    assert.equal(result.images[0].height, 256);
    const distinct = new Set(result.images[0].pixels);
    assert.ok(distinct.size > 8, `${distinct.size} distinct byte values`);
  });
});
