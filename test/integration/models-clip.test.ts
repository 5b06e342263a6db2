// Zero-shot CLIP on the demo pack: template ensembling as in the CLIP paper, the label cache,
// and probabilities = softmax(logit_scale × cosine).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { loadPack, silentLog } from '../../src/models/index.js';
import { Clip, dot, l2normalize } from '../../src/models/clip.js';
import { Pack } from '../../src/models/packs.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
let pack: Pack;
let clip: Clip;

before(async () => {
  pack = new Pack(
    await loadPack(`${root}packs/demo-shapes`),
    { device: { kind: 'cpu' }, allowCpuFallback: false },
    silentLog,
  );
  clip = new Clip(pack, 16, 1e8);
});
after(() => pack.release());

test('a label embedding is the normalised mean of its normalised template embeddings', async () => {
  const templates = pack.manifest.clip.templates;
  const [ensembled] = await clip.labelEmbeddings(['red circle'], templates);
  const each = await clip.embedTexts(templates.map((t) => t.replace('{}', 'red circle')));
  const mean = new Float32Array(ensembled.length);
  for (const e of each) e.forEach((v, i) => (mean[i] += v));
  const expected = l2normalize(mean);
  ensembled.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6));
  assert.ok(Math.abs(Math.hypot(...ensembled) - 1) < 1e-6);
});

test('label embeddings are cached per label and template set', async () => {
  const templates = ['a {}.', 'a photo of a {}.'];
  const before = clip.cachedLabels;
  const first = await clip.labelEmbeddings(['blue square', 'green cross'], templates);
  assert.equal(clip.cachedLabels, before + 2);
  const again = await clip.labelEmbeddings(['green cross', 'blue square', 'yellow circle'], templates);
  assert.equal(clip.cachedLabels, before + 3);
  assert.equal(again[0], first[1]);
  assert.equal(again[1], first[0]);
  await clip.labelEmbeddings(['blue square'], ['a drawing of a {}.']);
  assert.equal(clip.cachedLabels, before + 4, 'another template set is another entry');
});

test('probabilities are the softmax of logit_scale × cosine over the labels', async () => {
  const image = await readFile(`${root}test/fixtures/scenes/train-00.png`);
  const [embedding] = await clip.embedPixels(await clip.preprocess([image]), 1);
  const labels = await clip.labelEmbeddings(['green square', 'red circle', 'cyan cross'], pack.manifest.clip.templates);
  const logits = labels.map((l) => pack.manifest.clip.logit_scale * dot(embedding, l));
  const exps = logits.map((x) => Math.exp(x - Math.max(...logits)));
  const expected = exps.map((e) => e / exps.reduce((a, b) => a + b, 0));
  const probabilities = clip.labelProbabilities(embedding, labels);
  probabilities.forEach((p, i) => assert.ok(Math.abs(p - expected[i]) < 1e-12));
  assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-12);
});
