// Counter-based random numbers: every value is a stateless hash of (seed, counter), so a
// candidate's uniforms depend on its own seed and the step only — never on chunking or order.

/** lowbias32 (C. Wellons): a bijective 32-bit mixer with low bias. */
function mix32(value: number): number {
  let x = value >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The seed of candidate `index` of a job: unsigned 32-bit, reported back with each image. */
export function candidateSeed(jobSeed: number, index: number): number {
  return mix32(mix32(jobSeed ^ 0x243f6a88) ^ mix32(index ^ 0x85a308d3));
}

/** Draw `step` of a candidate seed: a multiple of 2^-24 in [0, 1), exact in float32. */
export function uniformAt(seed: number, step: number): number {
  const h = mix32(mix32(seed ^ 0x13198a2e) ^ mix32(step ^ 0x03707344));
  return (h >>> 8) / 16777216;
}

/** `count` draws of one seed, steps 0 … count-1, written at `offset`. */
export function fillUniforms(seed: number, count: number, out: Float32Array, offset = 0): void {
  for (let step = 0; step < count; step++) out[offset + step] = uniformAt(seed, step);
}

export function isUint32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}
