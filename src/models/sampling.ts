// The contract's sampling rule for one row of logits, computed in float32 steps (Math.fround)
// so that it picks what the pack's sample_loop graph picks from the same uniform.

export interface SamplingParams {
  topK: number;
  temperature: number;
  /** 1 disables nucleus filtering. */
  topP: number;
}

const f32 = Math.fround;

/** Reusable buffers for one row; sized to top_k. */
export class RowScratch {
  readonly values: Float32Array;
  readonly indices: Int32Array;
  readonly probs: Float32Array;
  constructor(readonly k: number) {
    this.values = new Float32Array(k);
    this.indices = new Int32Array(k);
    this.probs = new Float32Array(k);
  }
}

// Small k: one pass with insertion into a sorted window. Equal values keep the lower index
// first, as ONNX TopK does.
function topKInsertion(z: Float32Array, start: number, size: number, s: RowScratch): void {
  const { k, values, indices } = s;
  let count = 0;
  for (let i = 0; i < size; i++) {
    const v = z[start + i];
    if (count === k && !(v > values[k - 1])) continue;
    let pos = count === k ? k - 1 : count++;
    while (pos > 0 && values[pos - 1] < v) {
      values[pos] = values[pos - 1];
      indices[pos] = indices[pos - 1];
      pos--;
    }
    values[pos] = v;
    indices[pos] = i;
  }
}

// Large k: sort the indices of the whole row (value descending, index ascending).
function topKSorted(z: Float32Array, start: number, size: number, s: RowScratch): void {
  const order = Array.from({ length: size }, (_, i) => i);
  order.sort((a, b) => z[start + b] - z[start + a] || a - b);
  for (let j = 0; j < s.k; j++) {
    s.indices[j] = order[j];
    s.values[j] = z[start + order[j]];
  }
}

/**
 * Picks a token from `z[start … start+size)` with uniform `u`:
 * z/temperature → top-k (sorted) → softmax → optional top-p → first j with cumsum_j > u × total.
 */
export function sampleRow(
  z: Float32Array,
  start: number,
  size: number,
  u: number,
  params: SamplingParams,
  s: RowScratch,
): number {
  const { k, values, indices, probs } = s;
  if (k <= 64) topKInsertion(z, start, size, s);
  else topKSorted(z, start, size, s);
  // Dividing after the selection is the same order: x ↦ x/t is monotonic for t > 0.
  const t = f32(params.temperature);
  for (let j = 0; j < k; j++) values[j] = f32(values[j] / t);
  const max = values[0];
  let sum = 0;
  for (let j = 0; j < k; j++) {
    probs[j] = f32(Math.exp(f32(values[j] - max)));
    sum = f32(sum + probs[j]);
  }
  for (let j = 0; j < k; j++) probs[j] = f32(probs[j] / sum);
  if (params.topP < 1) {
    const topP = f32(params.topP);
    let before = 0;
    for (let j = 0; j < k; j++) {
      const p = probs[j];
      if (j > 0 && !(before < topP)) probs[j] = 0;
      before = f32(before + p);
    }
  }
  let total = 0;
  for (let j = 0; j < k; j++) total = f32(total + probs[j]);
  const threshold = f32(f32(u) * total);
  let c = 0;
  for (let j = 0; j < k; j++) {
    c = f32(c + probs[j]);
    if (c > threshold) return indices[j];
  }
  return indices[k - 1];
}
