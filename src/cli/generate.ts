// npm run generate -- "a red circle above a blue square" [--out dir] [--candidates N] [--n K]
//   [--seed S] [--model NAME] [--batch B] [--device cpu|cuda|cuda:N] [--models-dir packs]
// Writes the kept images as PNG and a contact sheet, then prints a summary.
import { randomInt } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import sharp from 'sharp';
import { createEngine, type DeviceName } from '../models/index.js';
import { contactSheet } from './contact-sheet.js';

const usage =
  'usage: npm run generate -- "prompt" [--out dir] [--candidates N] [--n K] [--seed S] [--model NAME] [--batch B] [--device cpu|cuda|cuda:N] [--models-dir DIR]';

function integer(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value)) throw new Error(`--${name} must be an integer, got "${text}"\n${usage}`);
  return value;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string', default: 'generated' },
      candidates: { type: 'string' },
      n: { type: 'string' },
      seed: { type: 'string' },
      model: { type: 'string' },
      batch: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      'models-dir': { type: 'string', default: 'packs' },
    },
  });
  const prompt = positionals.join(' ').trim();
  if (!prompt) throw new Error(usage);
  const seed = integer('seed', values.seed) ?? randomInt(2 ** 32);
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const engine = await createEngine({ modelsDir: values['models-dir'], device: values.device as DeviceName, logger });
  try {
    let lastStage = '';
    const result = await engine.generate({
      prompt,
      seed,
      model: values.model,
      candidates: integer('candidates', values.candidates),
      n: integer('n', values.n),
      batch: integer('batch', values.batch),
      onProgress: (p) => {
        if (p.stage !== lastStage || p.completed === p.total)
          process.stderr.write(`\r${p.stage} ${p.completed}/${p.total}   ${p.completed === p.total ? '\n' : ''}`);
        lastStage = p.stage;
      },
    });
    await mkdir(values.out, { recursive: true });
    for (const image of result.images) {
      const name = `rank-${String(image.rank).padStart(2, '0')}-candidate-${image.candidate}.png`;
      await sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: 3 } })
        .png()
        .toFile(join(values.out, name));
    }
    const sheet = join(values.out, 'contact-sheet.png');
    await writeFile(sheet, await contactSheet(result.images));
    const t = result.timings;
    console.log(
      `model ${result.model}, seed ${result.seed}, sampler ${result.sampler}, prompt tokens ${result.promptTokens}${result.truncated ? ' (truncated)' : ''}`,
    );
    console.log(
      `sampling ${t.sampleMs.toFixed(0)} ms, decoding ${t.decodeMs.toFixed(0)} ms, reranking ${t.rerankMs.toFixed(0)} ms`,
    );
    for (const image of result.images.slice(0, 8)) {
      console.log(
        `  #${image.rank}  score ${image.score.toFixed(3)}  candidate ${image.candidate}  seed ${image.seed}`,
      );
    }
    console.log(`wrote ${result.images.length} images and ${sheet}`);
  } finally {
    await engine.close();
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
