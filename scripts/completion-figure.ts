// docs/completion.png for the README: one image completed as DALL·E did it. The input's top four
// rows of cells are kept, the rest redrawn to the prompt; the best completions by CLIP follow.
// `npx tsx scripts/completion-figure.ts [out.png]` (the demo pack, on the CPU, a few seconds).
import { readFile, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { createEngine, silentLog } from '../src/models/index.js';

const SCENE = 'test/fixtures/scenes/heldout-01.png';
const PROMPT = 'a blue circle above a red square';
const KEPT_ROWS = 4;
const SCALE = 3;
const GAP = 8;

const engine = await createEngine({ modelsDir: 'packs', logger: silentLog, clipBatch: 32 });
try {
  const input = await readFile(SCENE);
  const pixels = new Uint8Array(await sharp(input).removeAlpha().raw().toBuffer());
  const keepCells = new Uint8Array(64).fill(1, 0, KEPT_ROWS * 8);
  const result = await engine.runChunk({
    model: 'demo-shapes',
    parts: [{ key: 'figure', prompt: PROMPT, seed: 27, first: 0, count: 32, n: 4, completion: { pixels, keepCells } }],
  });
  const [outcome] = result.parts;
  if (!outcome.ok) throw new Error(outcome.error.message);
  // What the model is given: the kept rows, the rest hidden.
  const given = Uint8Array.from(pixels, (value, i) => (i >= KEPT_ROWS * 8 * 64 * 3 ? 200 : value));
  const tiles = [pixels, given, ...outcome.images.map((image) => image.pixels)];
  const side = 64 * SCALE;
  const width = tiles.length * (side + GAP) + GAP + GAP;
  const composites = await Promise.all(
    tiles.map(async (tile, i) => ({
      input: await sharp(tile, { raw: { width: 64, height: 64, channels: 3 } })
        .resize(side, side, { kernel: 'nearest' })
        .png()
        .toBuffer(),
      // A wider gap between what goes in and what comes out.
      left: GAP + i * (side + GAP) + (i >= 2 ? GAP : 0),
      top: GAP,
    })),
  );
  const png = await sharp({ create: { width, height: side + 2 * GAP, channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toBuffer();
  await writeFile(process.argv[2] ?? 'docs/completion.png', png);
} finally {
  await engine.close();
}
