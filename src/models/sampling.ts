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
  private work?: Float32Array;
  constructor(readonly k: number) {
    this.values = new Float32Array(k);
    this.indices = new Int32Array(k);
    this.probs = new Float32Array(k);
  }

  /** A scratch row of `size` values (reused). */
  row(size: number): Float32Array {
    if (this.work?.length !== size) this.work = new Float32Array(size);
    return this.work;
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

// Large k: the k-th largest value found by selection on a copy of the row, then the values
// above it and the lowest-indexed ties at it, sorted (value descending, index ascending). Sorting
// the whole row instead costs more than the model's step at minDALL-E's top_k of 256.
function topKSelected(z: Float32Array, start: number, size: number, s: RowScratch): void {
  const { k, values, indices } = s;
  const work = s.row(size);
  work.set(z.subarray(start, start + size));
  const kth = kthLargest(work, k - 1);
  let count = 0;
  for (let i = 0; i < size && count < k; i++) {
    if (z[start + i] > kth) indices[count++] = i;
  }
  for (let i = 0; i < size && count < k; i++) {
    if (z[start + i] === kth) indices[count++] = i;
  }
  const order = Array.from(indices.subarray(0, k));
  order.sort((a, b) => z[start + b] - z[start + a] || a - b);
  for (let j = 0; j < k; j++) {
    indices[j] = order[j];
    values[j] = z[start + order[j]];
  }
}

/** The value at `rank` (0 = largest) of `a`, which it reorders (quickselect). */
function kthLargest(a: Float32Array, rank: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    if (rank <= j) hi = j;
    else if (rank >= i) lo = i;
    else return a[rank];
  }
  return a[rank];
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
  else topKSelected(z, start, size, s);
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
