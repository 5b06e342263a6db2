// An OpenAI CLIP checkpoint exported into packs (training/openai_clip.py): a small random
// checkpoint in OpenAI's exact layout and file formats goes through the exporter, onto the demo
// pack's generator and alone, and the service must tokenize as OpenAI's algorithm does, embed
// as PyTorch does, and serve the CLIP-only pack for classification but not for generations.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { createEngine, ModelError, type Engine, type Log } from '../../src/models/index.js';
import { l2normalize } from '../../src/models/clip.js';
import { TextTokenizer } from '../../src/models/tokenizers.js';
import { type Harness, json, post, startHarness, terminal, waitFor } from './api-harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };

interface Reference {
  pack: string;
  clip_only_pack: string;
  texts: string[];
  token_ids: number[][];
  text_embeds: number[][];
  image: string;
  image_embeds: number[][];
  logit_scale: number;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const x = l2normalize(Float32Array.from(a));
  const y = l2normalize(Float32Array.from(b));
  return x.reduce((sum, v, i) => sum + v * y[i], 0);
}

let dir: string;
let reference: Reference;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openai-clip-'));
  await promisify(execFile)('/usr/bin/python3', ['-m', 'training.tests.make_openai_clip_case', dir], {
    cwd: root,
    env: { ...process.env, PYTHONPATH: root, OPENBLAS_NUM_THREADS: '1' },
  });
  reference = JSON.parse(await readFile(join(dir, 'reference.json'), 'utf8'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('an OpenAI CLIP checkpoint exported into packs', () => {
  let engine: Engine;
  before(async () => {
    engine = await createEngine({ modelsDir: join(dir, 'packs'), logger: quiet, sampleBatch: 4, clipBatch: 8 });
  });
  after(() => engine?.close());

  test('both packs load with their manifests checked: one keeps the base generator, one is CLIP alone', () => {
    const summaries = new Map(engine.packs().map((summary) => [summary.name, summary]));
    assert.deepEqual([...summaries.keys()].sort(), [reference.pack, reference.clip_only_pack].sort());
    assert.equal(summaries.get(reference.pack)?.embedDim, 32);
    assert.deepEqual(summaries.get(reference.pack)?.generation?.imageGrid, [8, 8], "the base pack's generator");
    assert.equal(summaries.get(reference.clip_only_pack)?.generation, null);
    assert.deepEqual(Object.keys(summaries.get(reference.clip_only_pack)?.providers ?? {}).sort(), ['clip_image', 'clip_text']);
  });

  test("the tokenizer gives OpenAI's ids for every text, typed special tokens included", async () => {
    const tokenizer = await TextTokenizer.load(join(dir, 'packs', reference.pack, 'clip-tokenizer.json'));
    reference.texts.forEach((text, i) => assert.deepEqual(tokenizer.encode(text), reference.token_ids[i], JSON.stringify(text)));
  });

  test('text embeddings match PyTorch in both packs, long texts cut so that EOS still fits', async () => {
    for (const pack of [reference.pack, reference.clip_only_pack]) {
      const embedded = await engine.embedTexts(reference.texts, pack);
      embedded.forEach((e, i) => {
        const similarity = cosine(e, reference.text_embeds[i]);
        assert.ok(similarity > 0.9999, `${pack}, ${JSON.stringify(reference.texts[i].slice(0, 40))}: cosine ${similarity}`);
      });
    }
  });

  test('image embeddings match PyTorch through the OpenAI preprocessing, in both packs', async () => {
    for (const pack of [reference.pack, reference.clip_only_pack]) {
      const [embedded] = await engine.embedImages([await readFile(reference.image)], pack);
      const similarity = cosine(embedded, reference.image_embeds[0]);
      assert.ok(similarity > 0.9999, `${pack}: cosine ${similarity}`);
    }
  });

  test("zero-shot uses the checkpoint's logit scale and the OpenAI templates", async () => {
    const image = await readFile(reference.image);
    const labels = ['cat', 'dog', 'car'];
    const [outcome] = await engine.classify([{ images: [image], labels, model: reference.pack }]);
    assert.ok(outcome.ok);
    const scores = outcome.results[0];
    const [imageEmbedding] = await engine.embedImages([image], reference.pack);
    const manifest = JSON.parse(await readFile(join(dir, 'packs', reference.pack, 'manifest.json'), 'utf8'));
    const labelEmbeddings = await Promise.all(
      labels.map(async (label) => {
        const each = await engine.embedTexts(manifest.clip.templates.map((t: string) => t.replaceAll('{}', label)), reference.pack);
        const mean = new Float32Array(each[0].length);
        for (const e of each) e.forEach((v, i) => (mean[i] += v));
        return l2normalize(mean);
      }),
    );
    const logits = labelEmbeddings.map((e) => reference.logit_scale * cosine(e, imageEmbedding));
    const top = Math.max(...logits);
    const exp = logits.map((l) => Math.exp(l - top));
    const total = exp.reduce((a, b) => a + b, 0);
    for (const { label, score } of scores) assert.ok(Math.abs(score - exp[labels.indexOf(label)] / total) < 1e-4, label);
  });

  test("a generation runs the base pack's generator and reranks with the new CLIP", async () => {
    const result = await engine.generate({ prompt: 'a red circle', candidates: 4, n: 2, seed: 5, model: reference.pack });
    assert.equal(result.images.length, 2);
    assert.ok(result.images[0].score >= result.images[1].score);
    assert.ok(result.images.every((image) => Number.isFinite(image.score)));
  });

  test('the CLIP-only pack refuses a generation by name', async () => {
    await assert.rejects(
      engine.generate({ prompt: 'a red circle', candidates: 4, n: 2, seed: 5, model: reference.clip_only_pack }),
      (error: ModelError) => error.code === 'invalid_request' && /serves CLIP only/.test(error.message),
    );
  });
});

describe('the service with a CLIP-only pack as its CLIP default', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      ownEngine: true,
      env: { MODELS_DIR: join(dir, 'packs'), DEFAULT_MODEL: reference.pack, DEFAULT_CLIP_MODEL: reference.clip_only_pack },
    });
  });
  after(() => h?.close());

  test('GET /models shows which pack generates and which one serves each default', async () => {
    const { data } = await json(await fetch(`${h.baseUrl}/models`));
    const byName = new Map(data.map((model: { name: string }) => [model.name, model]));
    assert.deepEqual(byName.get(reference.clip_only_pack), {
      name: reference.clip_only_pack, version: 'ViT-T-16', description: 'OpenAI CLIP ViT-T-16 alone: zero-shot classification and embeddings, no generator.',
      default_for: ['clip'], generation: null, embed_dim: 32,
    });
    const generating = byName.get(reference.pack) as { default_for: string[]; generation: { codebook_size: number } };
    assert.deepEqual(generating.default_for, ['generations']);
    assert.equal(generating.generation.codebook_size, 256);
  });

  test('a generation naming the CLIP-only pack is a 400 on model; one naming none runs on the generating pack', async () => {
    const refused = await post(h.baseUrl, '/generations', { prompt: 'a red circle', candidates: 4, n: 2, model: reference.clip_only_pack });
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
    await assert.rejects(h.startWorker({ DEFAULT_CLIP_MODEL: 'no-such-pack' }), /DEFAULT_CLIP_MODEL names "no-such-pack", which is not among the packs/);
  });

  test('classification naming no model runs on the CLIP default through HTTP and the queue', async () => {
    const image = { base64: (await readFile(reference.image)).toString('base64') };
    const response = await post(h.baseUrl, '/clip/classify', { image, labels: ['cat', 'dog'] });
    assert.equal(response.status, 200);
    const body = await json(response);
    assert.equal(body.model, reference.clip_only_pack);
    assert.ok(Math.abs(body.results[0].labels.reduce((sum: number, r: { score: number }) => sum + r.score, 0) - 1) < 1e-4);
  });
});
