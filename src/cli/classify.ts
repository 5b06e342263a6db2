// npm run classify -- image.png [more.png …] --labels "red circle,blue square"
//   [--templates "a {}.|a photo of a {}."] [--model NAME] [--device cpu|cuda|cuda:N] [--models-dir packs]
// Prints the labels of each image, best first.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createEngine, type DeviceName } from '../models/index.js';

const usage =
  'usage: npm run classify -- image.png [more.png …] --labels "red circle,blue square" [--templates "a {}.|a photo of a {}."] [--model NAME] [--device cpu|cuda|cuda:N] [--models-dir DIR]';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      labels: { type: 'string' },
      templates: { type: 'string' },
      model: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      'models-dir': { type: 'string', default: 'packs' },
    },
  });
  const labels = (values.labels ?? '')
    .split(',')
    .map((l) => l.trim())
    .filter(Boolean);
  if (positionals.length === 0 || labels.length === 0) throw new Error(usage);
  const templates = values.templates?.split('|');
  const images = await Promise.all(positionals.map((path) => readFile(path)));
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const engine = await createEngine({
    modelsDir: values['models-dir'],
    device: values.device as DeviceName,
    logger,
    eager: false,
  });
  try {
    const [outcome] = await engine.classify([{ images, labels, templates, model: values.model }]);
    if (!outcome.ok)
      throw new Error(
        outcome.error.index >= 0
          ? `${positionals[outcome.error.index]}: ${outcome.error.message}`
          : outcome.error.message,
      );
    outcome.results.forEach((ranked, i) => {
      console.log(positionals[i]);
      for (const { label, score } of ranked) console.log(`  ${(score * 100).toFixed(1).padStart(5)}%  ${label}`);
    });
  } finally {
    await engine.close();
  }
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
