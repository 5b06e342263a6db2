// One engine call for the worker's scheduler: rows of several generations (own prompt, seed
// and settings each) sampled in one sampler run, then decoded and scored with CLIP at once.
// Each candidate depends only on its own seed and prompt, so a generation's images are the
// same whichever company its rows keep.
import type { Clip } from './clip.js';
import { decodeTokens, type DecodedChunk } from './decoder.js';
import { encodePixels, keptTokens } from './encoder.js';
import { ModelError } from './errors.js';
import { checkPromptAndSeed, checkSeed, resolveSampling } from './generate-options.js';
import { completes, type SamplerPath } from './manifest.js';
import type { Pack } from './packs.js';
import type { Preprocess } from './preprocess.js';
import { BestN } from './rerank.js';
import { candidateSeed } from './rng.js';
import type { SampleRow } from './sampler.js';
import { generatorText } from './tokenizers.js';
import type { ChunkPart, ChunkPartOutcome, ChunkResult, CompletionInput, GeneratedImage, MixedChunk } from './types.js';

/** What the chunk needs from the pipeline (kept structural: no import cycle). */
export interface ChunkContext {
  pack(name: string | undefined): Pack;
  clip(pack: Pack): Clip;
  samplerFor(pack: Pack): SamplerPath;
  sampleRows(pack: Pack, rows: SampleRow[], sampler: SamplerPath, checkpoint: () => void): Promise<Int32Array>;
  embedDecoded(clip: Clip, decoded: DecodedChunk, count: number, p: Preprocess): Promise<Float32Array[]>;
  readonly clipBatch: number;
}

interface ReadyPart {
  part: ChunkPart;
  promptTokens: number;
  truncated: boolean;
  promptUsed: string;
  /** The part's first row in the chunk. */
  offset: number;
  prompt: Float32Array;
  best: BestN<GeneratedImage>;
}

const elapsed = (start: number) => performance.now() - start;

function checkCounts(part: ChunkPart): void {
  const ok = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (!ok(part.first, 0) || !ok(part.count, 1) || !ok(part.n, 1)) {
    throw new ModelError('validation_failed', 'first must be ≥ 0, count and n ≥ 1 (integers)');
  }
}

function failed(key: string, error: unknown): ChunkPartOutcome {
  if (error instanceof ModelError && (error.code === 'validation_failed' || error.code === 'unknown_model')) {
    return { key, ok: false, error: { code: error.code, message: error.message } };
  }
  throw error;
}

/** The tokens a completion keeps (its kept cells' codes, -1 elsewhere); undefined for a plain generation. */
async function keptFor(pack: Pack, part: ChunkPart): Promise<Int32Array | undefined> {
  if (!part.completion) return undefined;
  const m = pack.generating;
  if (!completes(m))
    throw new ModelError(
      'validation_failed',
      `image: model ${m.name} has no image encoder, so it cannot complete images`,
    );
  const [height, width] = m.geometry.image_size;
  const cells = m.geometry.image_grid[0] * m.geometry.image_grid[1];
  const { pixels, keepCells } = part.completion;
  if (pixels.length !== height * width * 3 || keepCells.length !== cells)
    throw new ModelError('validation_failed', `image: expected ${width}×${height} RGB pixels and ${cells} cells`);
  const codes = await encodePixels(await pack.session('encoder'), pixels, 1, [height, width]);
  return keptTokens(codes, keepCells);
}

/** CLIP's embedding of a completion's input image (at the pack's image size), what a variation ranks against. */
async function imageEmbedding(ctx: ChunkContext, pack: Pack, completion: CompletionInput): Promise<Float32Array> {
  const [height, width] = pack.generating.geometry.image_size;
  const decoded = { pixels: completion.pixels, width, height };
  const [embedding] = await ctx.embedDecoded(ctx.clip(pack), decoded, 1, pack.manifest.clip.preprocess);
  return embedding;
}

/** Resolves each part against the pack; a bad part becomes its own failed outcome. */
async function prepare(ctx: ChunkContext, pack: Pack, parts: ChunkPart[]) {
  const m = pack.generating;
  const tokenizer = await pack.tokenizer('generator');
  const clip = ctx.clip(pack);
  const rows: SampleRow[] = [];
  const ready: ReadyPart[] = [];
  const outcomes = new Map<string, ChunkPartOutcome>();
  for (const part of parts) {
    try {
      const byImage = part.rankBy === 'image';
      if (byImage && !part.completion)
        throw new ModelError(
          'validation_failed',
          'rankBy: image ranks against a completion’s image, and there is none',
        );
      // A variation reads no text: its prompt may be empty.
      if (byImage && part.prompt === '') checkSeed(part.seed);
      else checkPromptAndSeed(part.prompt, part.seed);
      checkCounts(part);
      const params = resolveSampling(part, m);
      const text = generatorText(tokenizer, part.prompt, m.geometry.text_length, m.generator.text_pad_id);
      const keep = await keptFor(pack, part);
      const prompt = byImage
        ? await imageEmbedding(ctx, pack, part.completion!)
        : await clip.promptEmbedding(part.prompt);
      const best = new BestN<GeneratedImage>(part.n);
      ready.push({
        part,
        promptTokens: text.tokenCount,
        truncated: text.truncated,
        promptUsed: text.usedText,
        offset: rows.length,
        prompt,
        best,
      });
      for (let i = 0; i < part.count; i++) {
        rows.push({ textIds: text.ids, seed: candidateSeed(part.seed, part.first + i), params, ...(keep && { keep }) });
      }
    } catch (error) {
      outcomes.set(part.key, failed(part.key, error));
    }
  }
  return { rows, ready, outcomes };
}

/** Whether a candidate beats the part's n-th best so far (ties: the lower index wins). */
function beatsFloor(part: ChunkPart, candidate: number, score: number): boolean {
  const f = part.floor;
  return !f || score > f.score || (score === f.score && candidate < f.candidate);
}

/** Decodes and scores every row, offering each to its part's best n. */
async function score(
  ctx: ChunkContext,
  pack: Pack,
  ready: ReadyPart[],
  tokens: Int32Array,
  rows: number,
  decodeImages: number,
) {
  const g = pack.generating.geometry;
  const N = g.image_grid[0] * g.image_grid[1];
  const clip = ctx.clip(pack);
  const decoder = await pack.session('decoder');
  const partOf = new Array<ReadyPart>(rows);
  for (const r of ready) partOf.fill(r, r.offset, r.offset + r.part.count);
  let decodeMs = 0;
  let rerankMs = 0;
  let decodeRuns = 0;
  for (let first = 0; first < rows; first += decodeImages) {
    decodeRuns += 1;
    const count = Math.min(decodeImages, rows - first);
    let start = performance.now();
    const decoded = await decodeTokens(decoder, tokens.subarray(first * N), count, N);
    decodeMs += elapsed(start);
    start = performance.now();
    const embeddings = await ctx.embedDecoded(clip, decoded, count, pack.manifest.clip.preprocess);
    const bytes = decoded.width * decoded.height * 3;
    embeddings.forEach((embedding, i) => {
      const row = first + i;
      const r = partOf[row];
      const candidate = r.part.first + row - r.offset;
      const s = clip.score(embedding, r.prompt);
      if (!beatsFloor(r.part, candidate, s) || !r.best.wouldKeep({ candidate, score: s })) return;
      r.best.offer({
        rank: 0,
        candidate,
        seed: candidateSeed(r.part.seed, candidate),
        score: s,
        width: decoded.width,
        height: decoded.height,
        pixels: decoded.pixels.slice(i * bytes, (i + 1) * bytes),
        tokens: tokens.slice(row * N, (row + 1) * N),
      });
    });
    rerankMs += elapsed(start);
  }
  return { decodeMs, rerankMs, decodeRuns };
}

export async function runMixedChunk(
  ctx: ChunkContext,
  chunk: MixedChunk,
  checkpoint: () => void,
): Promise<ChunkResult> {
  let pack: Pack;
  try {
    pack = ctx.pack(chunk.model);
    void pack.generating; // throws for a CLIP-only pack
  } catch (error) {
    return {
      model: chunk.model ?? '',
      sampler: 'host',
      rows: 0,
      decodeRuns: 0,
      parts: chunk.parts.map((p) => failed(p.key, error)),
      timings: { sampleMs: 0, decodeMs: 0, rerankMs: 0 },
    };
  }
  const sampler = ctx.samplerFor(pack);
  const { rows, ready, outcomes } = await prepare(ctx, pack, chunk.parts);
  const start = performance.now();
  const tokens = rows.length > 0 ? await ctx.sampleRows(pack, rows, sampler, checkpoint) : new Int32Array(0);
  const sampleMs = elapsed(start);
  const decodeImages = Math.max(1, Math.min(ctx.clipBatch, chunk.decodeImages ?? ctx.clipBatch));
  const { decodeMs, rerankMs, decodeRuns } = await score(ctx, pack, ready, tokens, rows.length, decodeImages);
  for (const r of ready) {
    const { key } = r.part;
    const { promptTokens, truncated, promptUsed } = r;
    outcomes.set(key, { key, ok: true, promptTokens, truncated, promptUsed, images: r.best.result() });
  }
  return {
    model: pack.name,
    sampler,
    rows: rows.length,
    decodeRuns,
    parts: chunk.parts.map((p) => outcomes.get(p.key)!),
    timings: { sampleMs, decodeMs, rerankMs },
  };
}
