// Image-token sampling: the host loops (kv_step over key/value buffers this process holds, or
// prefill + one step per token with the KV cache fed back) and the device-resident path (the
// pack's sample_loop graph). All draw candidate b's token k with uniformAt(seed_b, k), so their
// tokens agree and chunking changes nothing.
// Every row carries its own prompt and sampling settings, so one chunk may mix generations.
// A row may keep tokens (image completion): at a kept position the kept token is emitted
// instead of the sampled one, so later positions condition on it; its uniform is still drawn,
// so the other positions read the uniforms they always did.
import * as ort from 'onnxruntime-node';
import { fillUniforms, uniformAt } from './rng.js';
import { RowScratch, sampleRow, type SamplingParams } from './sampling.js';

/** The host loops run kv_step, or prefill and step; the graph path only sample_loop. */
export interface GeneratorSessions {
  prefill: ort.InferenceSession;
  step: ort.InferenceSession;
  kvStep: ort.InferenceSession;
  sampleLoop?: ort.InferenceSession;
}

export interface SampleRow {
  /** Padded text ids, length T; rows of one prompt may share the array. */
  textIds: BigInt64Array;
  /** The candidate's own seed. */
  seed: number;
  params: SamplingParams;
  /** Per grid position, the codebook index to keep, or -1 to sample there. Absent: sample everywhere. */
  keep?: Int32Array;
}

export interface ChunkRequest {
  rows: SampleRow[];
  /** N = rows × cols. */
  imageTokens: number;
  codebookSize: number;
  /**
   * Whether the sample_loop graph takes settings per row (pack schema 2). Without it, rows
   * of different settings run as separate graph calls. Default true.
   */
  perRowSettings?: boolean;
  /** Throws (an AbortError) when the job is canceled; called every few steps. */
  checkpoint: () => void;
}

/** Rows of one prompt and one setting: a chunk of a single generation. */
export function rowsOf(textIds: BigInt64Array, seeds: number[], params: SamplingParams): SampleRow[] {
  return seeds.map((seed) => ({ textIds, seed, params }));
}

/** Steps between cancellation checks in the host loop: a check costs one atomic load. */
const STEPS_PER_CHECK = 8;

/** The distinct prompts of the rows (by content), and which one each row uses. */
function distinctPrompts(rows: SampleRow[]): { prompts: BigInt64Array[]; ofRow: number[] } {
  const index = new Map<string, number>();
  const prompts: BigInt64Array[] = [];
  const ofRow = rows.map(({ textIds }) => {
    const key = textIds.join(',');
    let i = index.get(key);
    if (i === undefined) {
      i = prompts.push(textIds) - 1;
      index.set(key, i);
    }
    return i;
  });
  return { prompts, ofRow };
}

function stackText(prompts: BigInt64Array[]): ort.Tensor {
  const T = prompts[0].length;
  const text = new BigInt64Array(prompts.length * T);
  prompts.forEach((ids, i) => text.set(ids, i * T));
  return new ort.Tensor('int64', text, [prompts.length, T]);
}

/** The prefill cache of each row's prompt: [L, 2, P, H, T, D] → [L, 2, B, H, T, D]. */
function gatherKv(kv: ort.Tensor, ofRow: number[]): ort.Tensor {
  const [layers, pair, prompts, heads, positions, headDim] = kv.dims;
  const block = heads * positions * headDim;
  const source = kv.data as Float32Array;
  const batch = ofRow.length;
  const out = new Float32Array(layers * pair * batch * block);
  for (let lp = 0; lp < layers * pair; lp++) {
    ofRow.forEach((p, b) => {
      const start = (lp * prompts + p) * block;
      out.set(source.subarray(start, start + block), (lp * batch + b) * block);
    });
  }
  return new ort.Tensor('float32', out, [layers, pair, batch, heads, positions, headDim]);
}

class Picker {
  private readonly scratch = new Map<number, RowScratch>();

  constructor(
    private readonly req: ChunkRequest,
    private readonly tokens: Int32Array,
  ) {}

  private scratchFor(k: number): RowScratch {
    let s = this.scratch.get(k);
    if (!s) this.scratch.set(k, (s = new RowScratch(k)));
    return s;
  }

  /** Samples token `step` of every row; `logitRow[b]` is the logits row that row b reads. */
  pick(logits: Float32Array, step: number, logitRow: (b: number) => number): BigInt64Array {
    const { rows, codebookSize: V, imageTokens: N } = this.req;
    const picked = new BigInt64Array(rows.length);
    rows.forEach((row, b) => {
      const u = uniformAt(row.seed, step);
      const sampled = sampleRow(logits, logitRow(b) * V, V, u, row.params, this.scratchFor(row.params.topK));
      const kept = row.keep?.[step] ?? -1;
      const token = kept >= 0 ? kept : sampled;
      this.tokens[b * N + step] = token;
      picked[b] = BigInt(token);
    });
    return picked;
  }
}

/** Host loop: one prefill per distinct prompt, its cache gathered per row, then N-1 steps. Returns [B × N]. */
export async function sampleChunkHost(
  sessions: Pick<GeneratorSessions, 'prefill' | 'step'>,
  req: ChunkRequest,
): Promise<Int32Array> {
  const batch = req.rows.length;
  const N = req.imageTokens;
  const tokens = new Int32Array(batch * N);
  const picker = new Picker(req, tokens);
  const { prompts, ofRow } = distinctPrompts(req.rows);
  const first = await sessions.prefill.run({ text_tokens: stackText(prompts) });
  let picked = picker.pick(first.logits.data as Float32Array, 0, (b) => ofRow[b]);
  let kv = gatherKv(first.present_kv, ofRow);
  for (let step = 1; step < N; step++) {
    if (step % STEPS_PER_CHECK === 0) req.checkpoint();
    const out = await sessions.step.run({ image_token: new ort.Tensor('int64', picked, [batch, 1]), past_kv: kv });
    picked = picker.pick(out.logits.data as Float32Array, step, (b) => b);
    kv = out.present_kv;
  }
  return tokens;
}

/** Positions a kv_step buffer's rows grow by at a time (each growth moves the filled ones once). */
const BUFFER_GROWTH = 32;

/**
 * Every layer's keys and values for a whole chunk, held here and read by kv_step where they lie:
 * each [B, H, stride, D] in a buffer sized once for every position the image needs, the stride
 * growing by BUFFER_GROWTH positions as the image does, so each run reads the filled positions
 * and at most BUFFER_GROWTH - 1 more (masked in the graph).
 */
class KvBuffers {
  readonly buffers: Float32Array[];
  stride: number;

  constructor(
    private readonly dims: { layers: number; batch: number; heads: number; headDim: number },
    private readonly capacity: number,
    filled: number,
  ) {
    const { layers, batch, heads, headDim } = dims;
    this.buffers = Array.from({ length: 2 * layers }, () => new Float32Array(batch * heads * capacity * headDim));
    this.stride = Math.min(capacity, filled + BUFFER_GROWTH);
  }

  /** Room for position `position`: rows moved apart (last first, so none is overwritten unread). */
  reserve(position: number): void {
    if (position < this.stride) return;
    const next = Math.min(this.capacity, this.stride + BUFFER_GROWTH);
    const { batch, heads, headDim } = this.dims;
    const rowFloats = this.stride * headDim;
    for (const buffer of this.buffers) {
      for (let row = batch * heads - 1; row > 0; row--) {
        buffer.copyWithin(row * next * headDim, row * rowFloats, row * rowFloats + rowFloats);
      }
    }
    this.stride = next;
  }

  /** kv_step's cache inputs, views of the buffers at the current stride. */
  feeds(): Record<string, ort.Tensor> {
    const { batch, heads, headDim } = this.dims;
    const dims = [batch, heads, this.stride, headDim];
    const size = batch * heads * this.stride * headDim;
    const feeds: Record<string, ort.Tensor> = {};
    this.buffers.forEach((buffer, i) => {
      feeds[`${i % 2 ? 'v' : 'k'}_${i >> 1}`] = new ort.Tensor('float32', buffer.subarray(0, size), dims);
    });
    return feeds;
  }

  /**
   * Writes `kv` [L, 2, P, H, S, D] at positions [position, position + S) of each row, row b
   * taking source row `source(b)`.
   */
  write(kv: ort.Tensor, position: number, source: (b: number) => number): void {
    const [, , sources, heads, length, headDim] = kv.dims;
    const data = kv.data as Float32Array;
    const block = length * headDim;
    const { batch } = this.dims;
    this.buffers.forEach((buffer, i) => {
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          const from = ((i * sources + source(b)) * heads + h) * block;
          buffer.set(data.subarray(from, from + block), ((b * heads + h) * this.stride + position) * headDim);
        }
      }
    });
  }
}

/**
 * Host loop over kv_step: one run on the distinct prompts (their cache written into every row's
 * buffers), then one run per token on the rows, each reading the buffers in place and returning
 * only the new position's keys and values. Nothing grows but the buffers' stride: the memory a
 * chunk holds is its buffers, known before it starts. Returns [B × N].
 */
export async function sampleChunkKv(
  sessions: Pick<GeneratorSessions, 'kvStep'>,
  req: ChunkRequest,
): Promise<Int32Array> {
  const { kvStep } = sessions;
  const batch = req.rows.length;
  const N = req.imageTokens;
  const tokens = new Int32Array(batch * N);
  const picker = new Picker(req, tokens);
  const { prompts, ofRow } = distinctPrompts(req.rows);
  const T = prompts[0].length;
  const int64 = (values: BigInt64Array, dims: number[]) => new ort.Tensor('int64', values, dims);
  const shape = cacheShape(kvStep);
  // The prompts; the step half, which a run cannot skip, on one row of one zero position at the
  // first image position, its outputs not fetched.
  const first = await kvStep.run(
    {
      text_tokens: stackText(prompts),
      image_token: int64(new BigInt64Array(1), [1, 1]),
      position: int64(BigInt64Array.of(BigInt(T)), [1]),
      ...new KvBuffers({ ...shape, batch: 1 }, 1, 0).feeds(),
    },
    ['prompt_logits', 'prompt_kv'],
  );
  let picked = picker.pick(first.prompt_logits.data as Float32Array, 0, (b) => ofRow[b]);
  // The last token's keys and values are never read: T + N - 1 positions hold every one read.
  const cache = new KvBuffers({ ...shape, batch }, T + N - 1, T);
  cache.write(first.prompt_kv, 0, (b) => ofRow[b]);
  const noText = int64(new BigInt64Array(0), [0, T]);
  for (let step = 1; step < N; step++) {
    if (step % STEPS_PER_CHECK === 0) req.checkpoint();
    const position = T + step - 1;
    cache.reserve(position);
    const out = await kvStep.run(
      {
        text_tokens: noText,
        image_token: int64(picked, [batch, 1]),
        position: int64(BigInt64Array.of(BigInt(position)), [1]),
        ...cache.feeds(),
      },
      ['logits', 'new_kv'],
    );
    picked = picker.pick(out.logits.data as Float32Array, step, (b) => b);
    if (step < N - 1) cache.write(out.new_kv, position, (b) => b);
  }
  return tokens;
}

/** Layers, heads and head size of kv_step's cache inputs (`k_l`, `v_l`: [B, H, S, D]). */
function cacheShape(kvStep: ort.InferenceSession): { layers: number; heads: number; headDim: number } {
  const meta = kvStep.inputMetadata.find((m) => m.name === 'k_0');
  const dims = meta?.isTensor ? meta.shape : [];
  return {
    layers: kvStep.inputNames.filter((name) => name.startsWith('k_')).length,
    heads: Number(dims[1]),
    headDim: Number(dims[3]),
  };
}

const settingKey = (p: SamplingParams) => `${p.topK}/${p.temperature}/${p.topP}`;

/** `keep` for the graph: each row's kept tokens, -1 (sample) where it keeps none. */
function keepTensor(rows: SampleRow[], N: number): ort.Tensor {
  const keep = new BigInt64Array(rows.length * N).fill(-1n);
  rows.forEach((row, b) => row.keep?.forEach((token, k) => (keep[b * N + k] = BigInt(token))));
  return new ort.Tensor('int64', keep, [rows.length, N]);
}

/** One sample_loop run over `rows`; `settings` holds one entry per row, or one for all. */
async function runLoop(
  loop: ort.InferenceSession,
  rows: SampleRow[],
  settings: SamplingParams[],
  N: number,
  forcedTokens: boolean,
) {
  const batch = rows.length;
  const T = rows[0].textIds.length;
  const text = new BigInt64Array(batch * T);
  const uniforms = new Float32Array(batch * N);
  rows.forEach((row, b) => {
    text.set(row.textIds, b * T);
    fillUniforms(row.seed, N, uniforms, b * N);
  });
  const out = await loop.run({
    ...(forcedTokens ? { keep: keepTensor(rows, N) } : {}),
    text_tokens: new ort.Tensor('int64', text, [batch, T]),
    uniforms: new ort.Tensor('float32', uniforms, [batch, N]),
    top_k: new ort.Tensor(
      'int64',
      BigInt64Array.from(settings, (s) => BigInt(s.topK)),
      [settings.length],
    ),
    temperature: new ort.Tensor(
      'float32',
      Float32Array.from(settings, (s) => s.temperature),
      [settings.length],
    ),
    top_p: new ort.Tensor(
      'float32',
      Float32Array.from(settings, (s) => s.topP),
      [settings.length],
    ),
  });
  return out.image_tokens.data as BigInt64Array;
}

/** Device-resident path: the pack's sample_loop graph, fed the same uniforms. */
export async function sampleChunkLoop(
  sessions: Pick<GeneratorSessions, 'sampleLoop'>,
  req: ChunkRequest,
): Promise<Int32Array> {
  const loop = sessions.sampleLoop;
  if (!loop) throw new Error('this pack has no sample_loop graph');
  const N = req.imageTokens;
  // A graph from before pack schema 4 has no `keep` input: it serves rows that keep nothing.
  const forced = loop.inputNames.includes('keep');
  if (!forced && req.rows.some((row) => row.keep))
    throw new Error("this pack's sample_loop graph takes no kept tokens (pack schema 4 adds them)");
  if (req.perRowSettings ?? true) {
    const settings = req.rows.map((row) => row.params);
    return Int32Array.from(await runLoop(loop, req.rows, settings, N, forced), Number);
  }
  // A schema-1 graph takes one setting for the whole batch: one run per distinct setting.
  const groups = new Map<string, number[]>();
  req.rows.forEach((row, b) => groups.set(settingKey(row.params), [...(groups.get(settingKey(row.params)) ?? []), b]));
  const tokens = new Int32Array(req.rows.length * N);
  for (const members of groups.values()) {
    const rows = members.map((b) => req.rows[b]);
    const out = await runLoop(loop, rows, [rows[0].params], N, forced);
    members.forEach((b, i) => tokens.set(Int32Array.from(out.subarray(i * N, (i + 1) * N), Number), b * N));
  }
  return tokens;
}
