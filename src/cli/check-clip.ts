// npm run check-clip -- packs/openai-clip-vit-b-32 reference.json [--device cpu|cuda|cuda:N]
// Checks an exported CLIP pack against PyTorch's answers on its checkpoint, written by
// `python3 -m training.eval.openai_clip_reference … --out reference.json`: the same token ids and, through
// the service's CLIP path, embeddings with cosine ≥ 0.9999 (0.999 on CUDA, whose MatMuls may
// use TF32). Exits 1 when they differ.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { checkClipPack, type ClipReference } from '../models/clip-check.js';
import { parseDevice } from '../models/index.js';

const usage = 'usage: npm run check-clip -- PACK_DIR REFERENCE.json [--device cpu|cuda|cuda:N]';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { device: { type: 'string', default: 'cpu' } },
  });
  if (positionals.length !== 2) throw new Error(usage);
  const [packDir, referencePath] = positionals;
  const reference = JSON.parse(await readFile(referencePath, 'utf8')) as ClipReference;
  const device = parseDevice(values.device);
  const minCosine = device.kind === 'cuda' ? 0.999 : 0.9999;
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const check = await checkClipPack(packDir, reference, { device, allowCpuFallback: false }, logger);
  const worstText = Math.min(...check.textCosines);
  console.log(
    `token ids: ${reference.texts.length - check.tokenMismatches.length} of ${reference.texts.length} texts as the reference`,
  );
  for (const text of check.tokenMismatches) console.log(`  differs: ${JSON.stringify(text)}`);
  console.log(
    `text embeddings: lowest cosine ${worstText.toFixed(6)}; image embedding: cosine ${check.imageCosine.toFixed(6)} (need ≥ ${minCosine})`,
  );
  if (check.tokenMismatches.length > 0 || !(worstText >= minCosine) || !(check.imageCosine >= minCosine)) {
    throw new Error(`${packDir} does not match ${referencePath}`);
  }
  console.log('ok');
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
