// The demo pack as int8 (test/fixtures/packs/demo-shapes-int8, built by `python3 -m
// training.quantize packs/demo-shapes --out …`; training/tests/test_quantize.py checks it is that
// build) served by the engine like any pack: a real generation and a real classification, with
// the same answers as its float32 source where int8 should not change them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createEngine, loadPack, type Engine, silentLog } from '../../src/models/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scenesDir = `${root}test/fixtures/scenes/`;
const COLOURS = ['red', 'green', 'blue', 'yellow', 'purple', 'cyan'];
const SHAPES = ['circle', 'square', 'triangle', 'cross'];
const LABELS = COLOURS.flatMap((c) => SHAPES.map((s) => `${c} ${s}`));

let int8: Engine;
before(async () => {
  int8 = await createEngine({ modelsDir: `${root}test/fixtures/packs`, logger: silentLog, sampleBatch: 8 });
});
after(() => int8.close());

test('the int8 pack states its format and loads as any pack', async () => {
  const { manifest } = await loadPack(`${root}test/fixtures/packs/demo-shapes-int8`);
  assert.equal(manifest.weights?.format, 'int8');
  assert.equal(manifest.weights?.source, 'demo-shapes');
  assert.deepEqual(
    int8.packs().map((p) => p.name),
    ['demo-shapes-int8'],
  );
  // What GET /models shows of it.
  assert.deepEqual(int8.packs()[0]?.weights, { format: 'int8', source: 'demo-shapes' });
});

test('generates ranked images, the same for the same seed alone or in a larger batch', async () => {
  const request = { prompt: 'a red circle above a blue square', seed: 5, candidates: 8, n: 3 };
  const alone = await int8.generate({ ...request, batch: 1 });
  const batched = await int8.generate({ ...request, batch: 8 });
  assert.equal(alone.model, 'demo-shapes-int8');
  assert.equal(alone.images.length, 3);
  for (const image of alone.images) assert.equal(image.pixels.length, 64 * 64 * 3);
  // Activations are quantized per row: a candidate's image does not depend on its batch.
  assert.deepEqual(
    alone.images.map((i) => [i.candidate, i.score]),
    batched.images.map((i) => [i.candidate, i.score]),
  );
  assert.deepEqual(alone.images[0].pixels, batched.images[0].pixels);
});

test('classifies the rendered scenes as its float32 source does', async () => {
  const scenes = JSON.parse(await readFile(`${scenesDir}labels.json`, 'utf8')) as { file: string; label: string }[];
  const images = await Promise.all(scenes.map((s) => readFile(scenesDir + s.file)));
  const float32 = await createEngine({
    modelsDir: `${root}packs`,
    defaultPack: 'demo-shapes',
    logger: silentLog,
    eager: false,
  });
  try {
    const [a] = await int8.classify([{ images, labels: LABELS }]);
    const [b] = await float32.classify([{ images, labels: LABELS }]);
    assert.ok(a.ok && b.ok);
    if (!a.ok || !b.ok) return;
    const top = (results: typeof a.results) => results.map((r) => r[0].label);
    const correct = top(a.results).filter((label, i) => label === scenes[i].label).length;
    assert.ok(correct >= 0.9 * scenes.length, `int8 named ${correct} of ${scenes.length}`);
    const agree = top(a.results).filter((label, i) => label === top(b.results)[i]).length;
    assert.ok(agree >= scenes.length - 1, `int8 and float32 agree on ${agree} of ${scenes.length}`);
  } finally {
    await float32.close();
  }
});
