// An OpenAI CLIP checkpoint exported into a pack (training/openai_clip.py): a small random
// checkpoint in OpenAI's exact layout and file formats goes through the exporter, and the
// service must tokenize as OpenAI's algorithm does and embed as PyTorch does.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { createEngine, type Engine, type Log } from '../../src/models/index.js';
import { l2normalize } from '../../src/models/clip.js';
import { TextTokenizer } from '../../src/models/tokenizers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };

interface Reference {
  pack: string;
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

describe('an OpenAI CLIP checkpoint exported into a pack', () => {
  let dir: string;
  let reference: Reference;
  let engine: Engine;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'openai-clip-'));
    await promisify(execFile)('/usr/bin/python3', ['-m', 'training.tests.make_openai_clip_case', dir], {
      cwd: root,
      env: { ...process.env, PYTHONPATH: root, OPENBLAS_NUM_THREADS: '1' },
    });
    reference = JSON.parse(await readFile(join(dir, 'reference.json'), 'utf8'));
    engine = await createEngine({ modelsDir: join(dir, 'packs'), logger: quiet, sampleBatch: 4, clipBatch: 8 });
  });
  after(async () => {
    await engine?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the pack loads with its manifest checked, the base generator kept and OpenAI CLIP geometry', () => {
    const [summary] = engine.packs();
    assert.equal(summary.name, reference.pack);
    assert.equal(summary.embedDim, 32);
    assert.deepEqual(summary.imageGrid, [8, 8], "the base pack's generator");
  });

  test("the tokenizer gives OpenAI's ids for every text, typed special tokens included", async () => {
    const tokenizer = await TextTokenizer.load(join(dir, 'packs', reference.pack, 'clip-tokenizer.json'));
    reference.texts.forEach((text, i) => assert.deepEqual(tokenizer.encode(text), reference.token_ids[i], JSON.stringify(text)));
  });

  test('text embeddings match PyTorch, long texts cut so that EOS still fits', async () => {
    const embedded = await engine.embedTexts(reference.texts, reference.pack);
    embedded.forEach((e, i) => {
      const similarity = cosine(e, reference.text_embeds[i]);
      assert.ok(similarity > 0.9999, `${JSON.stringify(reference.texts[i].slice(0, 40))}: cosine ${similarity}`);
    });
  });

  test('image embeddings match PyTorch through the OpenAI preprocessing', async () => {
    const [embedded] = await engine.embedImages([await readFile(reference.image)], reference.pack);
    const similarity = cosine(embedded, reference.image_embeds[0]);
    assert.ok(similarity > 0.9999, `cosine ${similarity}`);
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
});
