// Image-token sampling: the host loop (prefill + one step per token with the KV cache fed
// back) and the device-resident path (the pack's sample_loop graph). Both draw candidate b's
// token k with uniformAt(seed_b, k), so their tokens agree and chunking changes nothing.
import * as ort from 'onnxruntime-node';
import { fillUniforms, uniformAt } from './rng.js';
import { RowScratch, sampleRow, type SamplingParams } from './sampling.js';

export interface GeneratorSessions {
  prefill: ort.InferenceSession;
  step: ort.InferenceSession;
  sampleLoop?: ort.InferenceSession;
}

export interface ChunkRequest {
  /** Padded text ids, length T (the same prompt for every candidate). */
  textIds: BigInt64Array;
  /** One seed per candidate of the chunk. */
  seeds: number[];
  /** N = rows × cols. */
  imageTokens: number;
  codebookSize: number;
  params: SamplingParams;
  /** Throws (an AbortError) when the job is canceled; called every few steps. */
  checkpoint: () => void;
}

/** Steps between cancellation checks in the host loop: a check costs one atomic load. */
const STEPS_PER_CHECK = 8;

function tileKv(kv: ort.Tensor, batch: number): ort.Tensor {
  const [layers, pair, one, heads, positions, headDim] = kv.dims;
  if (one !== 1) throw new Error(`prefill cache batch is ${one}, expected 1`);
  const block = heads * positions * headDim;
  const source = kv.data as Float32Array;
  const out = new Float32Array(layers * pair * batch * block);
  for (let lp = 0; lp < layers * pair; lp++) {
    const row = source.subarray(lp * block, (lp + 1) * block);
    for (let b = 0; b < batch; b++) out.set(row, (lp * batch + b) * block);
  }
  return new ort.Tensor('float32', out, [layers, pair, batch, heads, positions, headDim]);
}

function pickAll(
  logits: Float32Array,
  req: ChunkRequest,
  step: number,
  scratch: RowScratch,
  tokens: Int32Array,
  sharedRow: boolean,
): BigInt64Array {
  const batch = req.seeds.length;
  const V = req.codebookSize;
  const picked = new BigInt64Array(batch);
  for (let b = 0; b < batch; b++) {
    const u = uniformAt(req.seeds[b], step);
    const token = sampleRow(logits, sharedRow ? 0 : b * V, V, u, req.params, scratch);
    tokens[b * req.imageTokens + step] = token;
    picked[b] = BigInt(token);
  }
  return picked;
}

/** Host loop: one prefill (batch 1, cache tiled), then N-1 steps. Returns [B × N] codebook indices. */
export async function sampleChunkHost(sessions: GeneratorSessions, req: ChunkRequest): Promise<Int32Array> {
  const batch = req.seeds.length;
  const N = req.imageTokens;
  const tokens = new Int32Array(batch * N);
  const scratch = new RowScratch(req.params.topK);
  const text = new ort.Tensor('int64', req.textIds, [1, req.textIds.length]);
  const first = await sessions.prefill.run({ text_tokens: text });
  let picked = pickAll(first.logits.data as Float32Array, req, 0, scratch, tokens, true);
  let kv = tileKv(first.present_kv, batch);
  for (let step = 1; step < N; step++) {
    if (step % STEPS_PER_CHECK === 0) req.checkpoint();
    const out = await sessions.step.run({ image_token: new ort.Tensor('int64', picked, [batch, 1]), past_kv: kv });
    picked = pickAll(out.logits.data as Float32Array, req, step, scratch, tokens, false);
    kv = out.present_kv;
  }
  return tokens;
}

/** Device-resident path: the pack's sample_loop graph, fed the same uniforms. */
export async function sampleChunkLoop(sessions: GeneratorSessions, req: ChunkRequest): Promise<Int32Array> {
  if (!sessions.sampleLoop) throw new Error('this pack has no sample_loop graph');
  const batch = req.seeds.length;
  const N = req.imageTokens;
  const T = req.textIds.length;
  const text = new BigInt64Array(batch * T);
  for (let b = 0; b < batch; b++) text.set(req.textIds, b * T);
  const uniforms = new Float32Array(batch * N);
  req.seeds.forEach((seed, b) => fillUniforms(seed, N, uniforms, b * N));
  const out = await sessions.sampleLoop.run({
    text_tokens: new ort.Tensor('int64', text, [batch, T]),
    uniforms: new ort.Tensor('float32', uniforms, [batch, N]),
    top_k: new ort.Tensor('int64', BigInt64Array.of(BigInt(req.params.topK)), [1]),
    temperature: new ort.Tensor('float32', Float32Array.of(req.params.temperature), [1]),
    top_p: new ort.Tensor('float32', Float32Array.of(req.params.topP), [1]),
  });
  return Int32Array.from(out.image_tokens.data as BigInt64Array, Number);
}
