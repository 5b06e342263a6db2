// A generation's settings checked against the pack, with defaults filled in. A bad value
// throws a `validation_failed` ModelError naming the field.
import { ModelError } from './errors.js';
import type { GeneratingManifest } from './manifest.js';
import { isUint32 } from './rng.js';
import type { SamplingParams } from './sampling.js';
import type { GenerateOptions } from './types.js';

export const DEFAULT_CANDIDATES = 512;
export const DEFAULT_KEEP = 32;
/** Candidates per batch of a generation run alone (engine.generate), unless the engine says. */
export const DEFAULT_SAMPLE_BATCH = 64;

function invalid(field: string, why: string): never {
  throw new ModelError('validation_failed', `${field} ${why}`);
}

function positiveInt(field: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) invalid(field, `must be a positive integer, got ${v}`);
  return v;
}

/** Sampling settings checked against the pack, defaults filled in. */
export function resolveSampling(
  options: Pick<GenerateOptions, 'topK' | 'temperature' | 'topP'>,
  m: GeneratingManifest,
): SamplingParams {
  const d = m.generator.sampling_defaults;
  const topK = positiveInt('topK', options.topK, d.top_k);
  if (topK > m.geometry.codebook_size) {
    invalid('topK', `must be at most the codebook size ${m.geometry.codebook_size}, got ${topK}`);
  }
  const temperature = options.temperature ?? d.temperature;
  if (!(temperature > 0) || !Number.isFinite(temperature)) {
    invalid('temperature', `must be a positive number, got ${temperature}`);
  }
  const topP = options.topP ?? d.top_p ?? 1;
  if (!(topP > 0 && topP <= 1)) invalid('topP', `must be in (0, 1], got ${topP}`);
  return { topK, temperature, topP };
}

/** The prompt and seed every generation needs, checked. */
export function checkPromptAndSeed(prompt: string, seed: number): void {
  if (typeof prompt !== 'string' || prompt.trim() === '') invalid('prompt', 'must be a non-empty string');
  checkSeed(seed);
}

export function checkSeed(seed: number): void {
  if (!isUint32(seed)) invalid('seed', `must be an unsigned 32-bit integer, got ${seed}`);
}
