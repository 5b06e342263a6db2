// The inference core's public surface: what the worker (and the CLIs, benchmarks) call.
// Tensors in, tensors out: nothing here knows about Redis, HTTP or storage.
import type { Log } from './log.js';
import type { SamplerPath, WeightFormat } from './manifest.js';

/** `cpu`, `cuda` (device 0) or `cuda:N`. */
export type DeviceName = 'cpu' | 'cuda' | `cuda:${number}`;

export interface EngineOptions {
  /** Folder holding one folder per model pack. */
  modelsDir: string;
  /** Pack used when a request names none. Default: the first pack in name order that generates, else the first. */
  defaultPack?: string;
  /** Default `cpu`. */
  device?: DeviceName;
  /** With `cuda`, fall back to the CPU when the CUDA provider cannot load. Default false: start-up fails. */
  allowCpuFallback?: boolean;
  /** CUDA EP memory limit in bytes (`gpu_mem_limit`). Default: unlimited. */
  cudaMemLimitBytes?: number;
  /** Intra-op threads for the CPU EP. Default: onnxruntime's choice (all cores). */
  cpuThreads?: number;
  /** Let those threads spin between runs instead of sleeping. Default false. */
  cpuSpinWait?: boolean;
  /**
   * Folder recording the pack files already hashed (by path, size, mtime, ctime and inode), so
   * that an unchanged file's sha256 is computed once, not at every start; `null` hashes every
   * file at every start. Default: `~/.cache/dalle-serve/verified-files`, else a private folder
   * under the OS temp folder.
   */
  checksumCacheDir?: string | null;
  /** Create every session at start-up (fail fast) instead of on first use. Default true. */
  eager?: boolean;
  /** Candidates sampled per forward pass. Default 64. */
  sampleBatch?: number;
  /** Images per CLIP forward pass. Default 64. */
  clipBatch?: number;
  /**
   * Sampling path (SamplerPath): `graph` runs the pack's sample_loop graph (the KV cache stays
   * on the device), `host` a loop driven from JavaScript: over kv_step when the pack has it (the
   * cache in buffers this process holds), else prefill/step (cancellation checked every few
   * steps rather than per chunk). Default `auto`: on the CPU kv_step when the pack has it, on
   * CUDA sample_loop; `host` otherwise. All give the same tokens.
   */
  samplerMode?: 'auto' | 'host' | 'graph';
  /**
   * Run each new session once under onnxruntime's profiler and report where its kernels ran
   * (PackSummary.providers, e.g. `cuda:0 (CUDA 41, CPU 3 kernels)`). Default: true on CUDA.
   */
  probePlacement?: boolean;
  /** Largest decoded image accepted, in pixels (sharp's limitInputPixels). Default 268402689. */
  maxImagePixels?: number;
  /** A pino logger (or anything with the same methods). Default: a pino logger at info level. */
  logger?: Log;
}

export type GenerationStage = 'sampling' | 'decoding' | 'reranking';

export interface GenerationProgress {
  stage: GenerationStage;
  completed: number;
  total: number;
  /** On a reranking step that found a new best candidate: that candidate so far (rank 0). */
  best?: GeneratedImage;
}

export interface GenerateOptions {
  prompt: string;
  /** Pack name; default the engine's default pack. */
  model?: string;
  /** Image candidates sampled. Default 512. */
  candidates?: number;
  /** Best candidates kept after CLIP reranking. Default 32; at most `candidates`. */
  n?: number;
  /** Default: the pack's sampling_defaults. */
  topK?: number;
  temperature?: number;
  topP?: number;
  /** Unsigned 32-bit job seed; each candidate's seed is derived from it. */
  seed: number;
  /** Candidates per chunk; default the engine's `sampleBatch`. Does not change the result. */
  batch?: number;
  /** Cancellation: stops the running chunk at its next checkpoint. Rejects with an AbortError. */
  signal?: AbortSignal;
  onProgress?: (progress: GenerationProgress) => void;
}

export interface GeneratedImage {
  /** 1 = best CLIP score. */
  rank: number;
  /** Index of the candidate among all sampled (0-based). */
  candidate: number;
  /** The candidate's own seed: sampling it alone with this seed gives the same tokens. */
  seed: number;
  /** CLIP cosine similarity to the prompt × logit_scale. */
  score: number;
  width: number;
  height: number;
  /** RGB, row-major, width × height × 3 bytes. */
  pixels: Uint8Array;
  /** The candidate's codebook indices, row-major over the image grid. */
  tokens: Int32Array;
}

/**
 * An image to complete: the kept cells' codes are forced, the others sampled, in raster order.
 * `pixels` is RGB at the pack's image size (geometry.image_size), already resized.
 */
export interface CompletionInput {
  /** [height, width, 3] bytes. */
  pixels: Uint8Array;
  /** One byte per grid cell, row-major: 1 = keep its code, 0 = sample it. */
  keepCells: Uint8Array;
}

/** One generation's share of a mixed chunk: its candidates `first` … `first + count - 1`. */
export interface ChunkPart {
  /** The caller's name for the generation, echoed in its outcome. */
  key: string;
  prompt: string;
  /** The generation's seed; candidate i samples with candidateSeed(seed, i) as always. */
  seed: number;
  first: number;
  count: number;
  /** Default: the pack's sampling_defaults. */
  topK?: number;
  temperature?: number;
  topP?: number;
  /** Best candidates the generation keeps: at most this many come back with pixels. */
  n: number;
  /** Complete this image instead of drawing from the prompt alone (a pack with an encoder). */
  completion?: CompletionInput;
  /**
   * What CLIP ranks candidates against: the prompt (default), or the completion's own image
   * (variations: the prompt may then be empty, and the generator reads no text).
   */
  rankBy?: 'prompt' | 'image';
  /** The generation's n-th best so far, once it holds n: only candidates that beat it come back. */
  floor?: { candidate: number; score: number };
}

/** Rows of several generations of one pack, sampled, decoded and scored in one pass. */
export interface MixedChunk {
  /** Pack name; default the engine's default pack. */
  model?: string;
  parts: ChunkPart[];
  /** Most images decoded (and scored) at once; default the engine's CLIP batch. */
  decodeImages?: number;
}

/** Candidates of a part worth keeping, best first (rank 0: the caller ranks them). */
export type ChunkPartOutcome =
  | { key: string; ok: true; promptTokens: number; truncated: boolean; promptUsed: string; images: GeneratedImage[] }
  | { key: string; ok: false; error: { code: 'validation_failed' | 'unknown_model'; message: string } };

export interface ChunkResult {
  model: string;
  sampler: SamplerPath;
  /** Rows sampled: the valid parts' candidates. */
  rows: number;
  /** Decoder runs the rows took (at most `decodeImages` images each). */
  decodeRuns: number;
  parts: ChunkPartOutcome[];
  timings: { sampleMs: number; decodeMs: number; rerankMs: number };
}

export interface GenerateResult {
  model: string;
  seed: number;
  /** Prompt tokens before truncation, and whether they were cut to the pack's text length. */
  promptTokens: number;
  truncated: boolean;
  /** The prompt as the generator read it: cut to the kept tokens when truncated. */
  promptUsed: string;
  images: GeneratedImage[];
  /** Which sampling path ran. */
  sampler: SamplerPath;
  timings: { sampleMs: number; decodeMs: number; rerankMs: number };
}

export interface ClassifyRequest {
  /** Encoded image bytes (PNG, JPEG, WebP…). */
  images: Uint8Array[];
  labels: string[];
  /** Zero-shot templates with `{}` for the label; default the pack's templates. */
  templates?: string[];
  /** Return only the best k labels; default all (they sum to 1). */
  topK?: number;
  model?: string;
}

/**
 * Per request, so that one bad request fails only itself in a micro-batch.
 * `index` is the bad image's position in the request for `invalid_image`; -1 for
 * `validation_failed` (no images, an empty label list, a template without `{}`) and
 * `unknown_model`, which concern the request as a whole.
 */
export type ClassifyOutcome =
  | { ok: true; results: LabelScore[][] }
  | {
      ok: false;
      error: { code: 'invalid_image' | 'validation_failed' | 'unknown_model'; message: string; index: number };
    };

export interface LabelScore {
  label: string;
  score: number;
}

export interface PackSummary {
  name: string;
  version: string;
  description?: string;
  /** The words the pack was trained on, when its manifest lists them. */
  vocabulary?: string[];
  /** Prompts that show the pack at its best, when its manifest lists them. */
  examples?: string[];
  /** The weights' license, when the manifest states it (schema 3). */
  license?: string;
  /** The generator's geometry and defaults; null for a pack that serves CLIP only. */
  generation: {
    textLength: number;
    imageSize: [number, number];
    imageGrid: [number, number];
    codebookSize: number;
    /** Whether it completes images (an encoder graph, and forced tokens in its sampler). */
    completes: boolean;
    /** Bytes one candidate row holds while its batch runs (manifest.ts `rowBytes`). */
    rowBytes: number;
    /** Bytes the decoder holds per image it decodes; null when the manifest does not say. */
    decodeImageBytes: number | null;
    samplingDefaults: { topK: number; temperature: number; topP?: number };
  } | null;
  embedDim: number;
  /** How its graphs hold their weights (manifest `weights`): float32, or int8 quantized from `source`. */
  weights: { format: WeightFormat; source: string | null };
  /** The provider each session really runs on, once created. */
  providers: Record<string, string>;
}

/**
 * The engine. Images go in as encoded bytes (PNG, JPEG, WebP…); a bad image rejects with
 * an `InvalidImageError` (exported by the models module) that names which image.
 */
export interface Engine {
  packs(): PackSummary[];
  generate(options: GenerateOptions): Promise<GenerateResult>;
  /**
   * Samples, decodes and scores one chunk of rows from several generations (own prompt,
   * seed and settings per row). A part with bad input fails alone, in its outcome. Aborting
   * `signal` (the scheduler does once every generation in the chunk is canceled) stops it at
   * its next checkpoint with an AbortError.
   */
  runChunk(chunk: MixedChunk, signal?: AbortSignal): Promise<ChunkResult>;
  /**
   * Classifies several requests in one pass (CLIP runs once over all their images).
   * Each outcome holds one ranked label list per image, sorted by score descending.
   */
  classify(requests: ClassifyRequest[]): Promise<ClassifyOutcome[]>;
  /** L2-normalised CLIP embeddings. */
  embedImages(images: Uint8Array[], model?: string): Promise<Float32Array[]>;
  embedTexts(texts: string[], model?: string): Promise<Float32Array[]>;
  /** CLIP tokens each text takes (start and end included, after truncation to the context). */
  countTextTokens(texts: string[], model?: string): Promise<number[]>;
  /** Called when an inference thread dies by itself: every later call fails. */
  onFailure?(listener: (error: Error) => void): void;
  close(): Promise<void>;
}
