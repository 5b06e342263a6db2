// An OpenAI CLIP checkpoint exported into packs (training/export/openai_clip_pack.py): a small random
// checkpoint in OpenAI's exact layout and file formats goes through the exporter, onto the demo
// pack's generator and alone, and the service must tokenize as OpenAI's algorithm does, embed
// as PyTorch does, and serve the CLIP-only pack for classification but not for generations.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { createEngine, ModelError, type Engine, silentLog } from '../../src/models/index.js';
import { l2normalize } from '../../src/models/clip.js';
import { checkClipPack, cosine, type ClipReference } from '../../src/models/clip-check.js';
import { type Harness, json, post, startHarness, terminal, waitFor } from '../integration/api-harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

type Reference = ClipReference & { logit_scale: number };

let dir: string;
let reference: Reference;
let names: { pack: string; clip_only_pack: string };
let image: Buffer;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openai-clip-'));
  await promisify(execFile)('/usr/bin/python3', ['-m', 'training.tests.make_openai_clip_case', dir], {
    cwd: root,
    env: { ...process.env, PYTHONPATH: root, OPENBLAS_NUM_THREADS: '1' },
  });
  reference = JSON.parse(await readFile(join(dir, 'reference.json'), 'utf8'));
  names = JSON.parse(await readFile(join(dir, 'case.json'), 'utf8'));
  image = Buffer.from(reference.image_png_base64, 'base64');
});
after(() => rm(dir, { recursive: true, force: true }));

describe('an OpenAI CLIP checkpoint exported into packs', () => {
  let engine: Engine;
  before(async () => {
    engine = await createEngine({ modelsDir: join(dir, 'packs'), logger: silentLog, sampleBatch: 4, clipBatch: 8 });
  });
  after(() => engine?.close());

  test('both packs load with their manifests checked: one keeps the base generator, one is CLIP alone', () => {
    const summaries = new Map(engine.packs().map((summary) => [summary.name, summary]));
    assert.deepEqual([...summaries.keys()].sort(), [names.pack, names.clip_only_pack].sort());
    assert.equal(summaries.get(names.pack)?.embedDim, 32);
    assert.deepEqual(summaries.get(names.pack)?.generation?.imageGrid, [8, 8], "the base pack's generator");
    assert.equal(summaries.get(names.clip_only_pack)?.generation, null);
    assert.deepEqual(Object.keys(summaries.get(names.clip_only_pack)?.providers ?? {}).sort(), [
      'clip_image',
      'clip_text',
    ]);
  });

  test("both packs give OpenAI's token ids, typed special tokens included, and PyTorch's embeddings", async () => {
    for (const pack of [names.pack, names.clip_only_pack]) {
      const check = await checkClipPack(
        join(dir, 'packs', pack),
        reference,
        { device: { kind: 'cpu' }, allowCpuFallback: false },
        silentLog,
      );
      assert.deepEqual(check.tokenMismatches, [], pack);
      check.textCosines.forEach((similarity, i) =>
        assert.ok(
          similarity > 0.9999,
          `${pack}, ${JSON.stringify(reference.texts[i].slice(0, 40))}: cosine ${similarity}`,
        ),
      );
      assert.ok(check.imageCosine > 0.9999, `${pack}: image cosine ${check.imageCosine}`);
    }
  });

  test("the engine's worker thread embeds as PyTorch does, long texts cut so that EOS still fits", async () => {
    const texts = await engine.embedTexts(reference.texts, names.clip_only_pack);
    texts.forEach((e, i) =>
      assert.ok(cosine(e, reference.text_embeds[i]) > 0.9999, JSON.stringify(reference.texts[i].slice(0, 40))),
    );
    const [embedded] = await engine.embedImages([image], names.clip_only_pack);
    assert.ok(cosine(embedded, reference.image_embeds[0]) > 0.9999);
  });

  test('npm run check-clip passes the export and fails a reference it does not match, naming the text', async () => {
    const run = (referencePath: string) =>
      promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', 'src/cli/check-clip.ts', join(dir, 'packs', names.clip_only_pack), referencePath],
        { cwd: root },
      );
    const { stdout } = await run(join(dir, 'reference.json'));
    assert.match(stdout, /token ids: 10 of 10 texts as the reference/);
    assert.match(stdout, /^ok$/m);
    const tampered = structuredClone(reference);
    tampered.token_ids[0] = [...tampered.token_ids[0], 7];
    await writeFile(join(dir, 'tampered.json'), JSON.stringify(tampered));
    await assert.rejects(run(join(dir, 'tampered.json')), (error: { code: number; stdout: string }) => {
      assert.equal(error.code, 1);
      assert.match(error.stdout, new RegExp(`differs: ${JSON.stringify(reference.texts[0])}`));
      return true;
    });
  });

  test("zero-shot uses the checkpoint's logit scale and the OpenAI templates", async () => {
    const labels = ['cat', 'dog', 'car'];
    const [outcome] = await engine.classify([{ images: [image], labels, model: names.pack }]);
    assert.ok(outcome.ok);
    const scores = outcome.results[0];
    const [imageEmbedding] = await engine.embedImages([image], names.pack);
    const manifest = JSON.parse(await readFile(join(dir, 'packs', names.pack, 'manifest.json'), 'utf8'));
    const labelEmbeddings = await Promise.all(
      labels.map(async (label) => {
        const each = await engine.embedTexts(
          manifest.clip.templates.map((t: string) => t.replaceAll('{}', label)),
          names.pack,
        );
        const mean = new Float32Array(each[0].length);
        for (const e of each) e.forEach((v, i) => (mean[i] += v));
        return l2normalize(mean);
      }),
    );
    const logits = labelEmbeddings.map((e) => reference.logit_scale * cosine(e, imageEmbedding));
    const top = Math.max(...logits);
    const exp = logits.map((l) => Math.exp(l - top));
    const total = exp.reduce((a, b) => a + b, 0);
    for (const { label, score } of scores)
      assert.ok(Math.abs(score - exp[labels.indexOf(label)] / total) < 1e-4, label);
  });

  test("a generation runs the base pack's generator and reranks with the new CLIP", async () => {
    const result = await engine.generate({ prompt: 'a red circle', candidates: 4, n: 2, seed: 5, model: names.pack });
    assert.equal(result.images.length, 2);
    assert.ok(result.images[0].score >= result.images[1].score);
    assert.ok(result.images.every((image) => Number.isFinite(image.score)));
  });

  test('the CLIP-only pack refuses a generation by name', async () => {
    await assert.rejects(
      engine.generate({ prompt: 'a red circle', candidates: 4, n: 2, seed: 5, model: names.clip_only_pack }),
      (error: ModelError) => error.code === 'validation_failed' && /serves CLIP only/.test(error.message),
    );
  });
});

describe('the service with a CLIP-only pack as its CLIP default', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      ownEngine: true,
      env: { MODELS_DIR: join(dir, 'packs'), DEFAULT_MODEL: names.pack, DEFAULT_CLIP_MODEL: names.clip_only_pack },
    });
  });
  after(() => h?.close());

  test('GET /models shows which pack generates and which one serves each default', async () => {
    const { data } = await json(await fetch(`${h.baseUrl}/models`));
    const byName = new Map(data.map((model: { name: string }) => [model.name, model]));
    assert.deepEqual(byName.get(names.clip_only_pack), {
      name: names.clip_only_pack,
      version: 'ViT-T-16',
      description: 'OpenAI CLIP ViT-T-16 alone: zero-shot classification and embeddings, no generator.',
      default_for: ['clip'],
      generation: null,
      embed_dim: 32,
      // An exported OpenAI CLIP says nothing about the words it knows.
      vocabulary: null,
      examples: [],
      license: null,
      weights: { format: 'float32', source: null },
    });
    const generating = byName.get(names.pack) as { default_for: string[]; generation: { codebook_size: number } };
    assert.deepEqual(generating.default_for, ['generations']);
    assert.equal(generating.generation.codebook_size, 256);
  });

  test('a generation naming the CLIP-only pack is a 400 on model; one naming none runs on the generating pack', async () => {
    const refused = await post(h.baseUrl, '/generations', {
      prompt: 'a red circle',
      candidates: 4,
      n: 2,
      model: names.clip_only_pack,
    });
    assert.equal(refused.status, 400);
    const problem = await json(refused);
    assert.equal(problem.code, 'validation_failed');
    assert.equal(problem.errors[0].field, 'model');
    assert.match(problem.errors[0].message, /serves CLIP only/);
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: 'a red circle', candidates: 4, n: 2 }));
    const done = await waitFor(h.baseUrl, accepted.id, terminal);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.images.length, 2);
  });

  test('a DEFAULT_CLIP_MODEL that names no pack stops the worker with the variable named', async () => {
    await assert.rejects(
      h.startWorker({ DEFAULT_CLIP_MODEL: 'no-such-pack' }),
      /DEFAULT_CLIP_MODEL names "no-such-pack", which is not among the packs/,
    );
  });

  test('classification naming no model runs on the CLIP default through HTTP and the queue', async () => {
    const response = await post(h.baseUrl, '/clip/classify', {
      image: { base64: reference.image_png_base64 },
      labels: ['cat', 'dog'],
    });
    assert.equal(response.status, 200);
    const body = await json(response);
    assert.equal(body.model, names.clip_only_pack);
    assert.ok(
      Math.abs(body.results[0].labels.reduce((sum: number, r: { score: number }) => sum + r.score, 0) - 1) < 1e-4,
    );
  });
});
