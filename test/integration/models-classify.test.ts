// Zero-shot classification of the rendered single-object scenes with the demo pack's CLIP,
// over every colour × shape label of the shapes world (training/world/shapes.py).
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

interface Scene {
  file: string;
  label: string;
  split: 'train' | 'heldout';
}

let engine: Engine;
before(
  async () =>
    (engine = await createEngine({
      modelsDir: `${root}packs`,
      defaultPack: 'demo-shapes',
      logger: silentLog,
      eager: false,
    })),
);
after(() => engine.close());

test('the rendered scenes are classified by colour and shape', async (t) => {
  const scenes = JSON.parse(await readFile(`${scenesDir}labels.json`, 'utf8')) as Scene[];
  const images = await Promise.all(scenes.map((s) => readFile(scenesDir + s.file)));
  const [outcome] = await engine.classify([{ images, labels: LABELS }]);
  assert.ok(outcome.ok);
  if (!outcome.ok) return;
  const accuracy = (split: Scene['split']) => {
    const picked = scenes.map((s, i) => [s, outcome.results[i][0].label] as const).filter(([s]) => s.split === split);
    return picked.filter(([s, label]) => s.label === label).length / picked.length;
  };
  for (const ranked of outcome.results) {
    assert.equal(ranked.length, LABELS.length);
    assert.ok(Math.abs(ranked.reduce((sum, l) => sum + l.score, 0) - 1) < 1e-6);
  }
  const { version } = (await loadPack(`${root}packs/demo-shapes`)).manifest;
  t.diagnostic(
    `pack ${version}: accuracy train ${accuracy('train').toFixed(2)}, held-out pairs ${accuracy('heldout').toFixed(2)} (chance ${(1 / LABELS.length).toFixed(2)})`,
  );
  // The placeholder pack (version *-random) has untrained weights: it can only run. The trained
  // one knows every colour × shape pair it saw, and its image tower reads shape apart from
  // colour, so pairs it never saw are named as well (1.2.0: train 1.00, held-out 1.00).
  if (!version.endsWith('-random')) {
    assert.ok(accuracy('train') >= 0.9, `train accuracy ${accuracy('train')}`);
    assert.ok(accuracy('heldout') >= 0.9, `held-out accuracy ${accuracy('heldout')}`);
  }
});
