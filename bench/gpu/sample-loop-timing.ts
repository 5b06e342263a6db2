// The sampler sweeps' one measurement (scheduler-sweep.ts, sampler-full.ts): a pack's sample_loop
// graph sampling `rows` candidates of one prompt at the pack's default settings, timed as the
// best of 2 runs after a warm-up.
import type * as ort from 'onnxruntime-node';
import type { GeneratingManifest } from '../../src/models/manifest.js';
import { candidateSeed } from '../../src/models/rng.js';
import { rowsOf, sampleChunkLoop } from '../../src/models/sampler.js';
import { timed } from '../timing.js';

export async function timeSampleLoop(
  sampleLoop: ort.InferenceSession,
  m: GeneratingManifest,
  textIds: BigInt64Array,
  rows: number,
): Promise<{ ms: number; tokensPerS: number }> {
  const N = m.geometry.image_grid[0] * m.geometry.image_grid[1];
  const d = m.generator.sampling_defaults;
  const params = { topK: d.top_k, temperature: d.temperature, topP: d.top_p ?? 1 };
  const run = (seed: number) =>
    sampleChunkLoop(
      { sampleLoop },
      {
        rows: rowsOf(
          textIds,
          Array.from({ length: rows }, (_, i) => candidateSeed(seed, i)),
          params,
        ),
        imageTokens: N,
        codebookSize: m.geometry.codebook_size,
        checkpoint() {},
      },
    );
  await run(0);
  const ms = Math.min((await timed(() => run(1)))[1], (await timed(() => run(2)))[1]);
  return { ms, tokensPerS: (rows * N) / (ms / 1000) };
}
