// Each graph is created once per process: the generation thread holds a generating pack's
// sampler and decoder (and the CLIP graphs it reranks with), the CLIP thread the CLIP graphs it
// classifies with; a CLIP-only pack's graphs live on the CLIP thread alone. Counted from the
// engine's own 'session created' lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine, type Log } from '../../src/models/index.js';

const demoDir = fileURLToPath(new URL('../../packs/demo-shapes/', import.meta.url));

/** A copy of the demo pack without its generation sections and files: it serves CLIP only. */
async function clipOnlyCopy(dir: string): Promise<void> {
  await cp(demoDir, dir, { recursive: true });
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Record<string, any>;
  const generation = [
    manifest.decoder.graph,
    ...(manifest.encoder ? [manifest.encoder.graph] : []),
    ...Object.values(manifest.generator.graphs),
  ] as string[];
  for (const file of generation) {
    await unlink(join(dir, file));
    delete manifest.files[file];
  }
  delete manifest.geometry;
  delete manifest.generator;
  delete manifest.decoder;
  delete manifest.encoder;
  manifest.name = 'demo-clip';
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

test('every generator, decoder, encoder and CLIP-only graph is created once per process', async () => {
  const models = await mkdtemp(join(tmpdir(), 'startup-'));
  const created: string[] = [];
  const log: Log = {
    debug() {},
    info(obj: { session?: string }, msg?: string) {
      if (msg === 'session created' && obj.session) created.push(obj.session);
    },
    warn() {},
    error() {},
  };
  try {
    await cp(demoDir, join(models, 'demo-shapes'), { recursive: true });
    await clipOnlyCopy(join(models, 'demo-clip'));
    const engine = await createEngine({ modelsDir: models, logger: log, checksumCacheDir: null });
    await engine.close();
    const counts: Record<string, number> = {};
    for (const label of created) counts[label] = (counts[label] ?? 0) + 1;
    assert.deepEqual(counts, {
      // On the CPU kv_step alone samples: prefill, step and sample_loop are never created.
      'demo-shapes/kv_step': 1,
      'demo-shapes/decoder': 1,
      'demo-shapes/encoder': 1,
      // Reranking on the generation thread, classification on the CLIP thread: onnxruntime
      // sessions cannot cross threads, so a generating pack's CLIP graphs are held by both.
      'demo-shapes/clip_image': 2,
      'demo-shapes/clip_text': 2,
      'demo-clip/clip_image': 1,
      'demo-clip/clip_text': 1,
    });
  } finally {
    await rm(models, { recursive: true, force: true });
  }
});
