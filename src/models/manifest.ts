// Reads a pack's manifest.json, validates it against packs/manifest.schema.json (draft 2020-12)
// and checks every listed file's size and sha256 before any session is created (a file version
// already hashed is looked up, not hashed again: checksum-cache.ts).
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { ChecksumRecords, type VerifyOptions } from './checksum-cache.js';
import { ModelError } from './errors.js';

/** The sections that make a pack generate: present together or not at all. */
export interface GenerationSections {
  geometry: {
    text_length: number;
    text_vocab_size: number;
    image_grid: [number, number];
    codebook_size: number;
    image_size: [number, number];
    image_token_offset: number;
  };
  generator: {
    tokenizer: string;
    text_pad_id: number;
    layers: number;
    heads: number;
    head_dim: number;
    graphs: { prefill: string; step: string; sample_loop?: string; kv_step?: string };
    sampling_defaults: { top_k: number; temperature: number; top_p?: number };
  };
  decoder: { graph: string };
}

/** A pack's manifest. Without the generation sections the pack serves CLIP only. */
export interface Manifest extends Partial<GenerationSections> {
  /**
   * 5: as 4, with an optional kv_step graph (prefill and step over a cache the caller holds);
   * 4: as 3, with an optional image encoder and sample_loop's `keep` (forced tokens); 3: as 2, with
   * an optional license; 2: sample_loop takes its settings per row; 1: one setting per run
   * (packs/CONTRACT.md).
   */
  schema_version: 1 | 2 | 3 | 4 | 5;
  name: string;
  version: string;
  description?: string;
  /** The weights' license as their publisher states it (schema 3). */
  license?: string;
  /** The words the pack was trained on (any schema version): prompt words outside it are reported. */
  vocabulary?: string[];
  /** Prompts that show the pack at its best (any schema version). */
  examples?: string[];
  /** How the graphs hold their weights (any schema version); absent: float32 (packs/CONTRACT.md). */
  weights?: {
    format: WeightFormat;
    /** The float32 pack these weights were quantized from. */
    source?: string;
    /** The graphs in `format`; the others are float32. */
    graphs?: GraphName[];
  };
  /** Pixels at the decoder's size → codebook indices (schema 4, with the generation sections): image completion. */
  encoder?: { graph: string };
  /** Bytes a candidate holds beside the weights, measured on the pack's graphs (packs/CONTRACT.md, Memory). */
  memory?: { sample_row_bytes: number; decode_image_bytes: number };
  clip: {
    tokenizer: string;
    context_length: number;
    bos_id: number;
    eos_id: number;
    pad_id: number;
    embed_dim: number;
    logit_scale: number;
    graphs: { image: string; text: string };
    preprocess: {
      size: number;
      resize: 'shortest_edge' | 'squash';
      interpolation: 'bicubic' | 'bilinear';
      mean: [number, number, number];
      std: [number, number, number];
    };
    templates: string[];
  };
  files: Record<string, { sha256: string; bytes: number }>;
}

export type GeneratingManifest = Manifest & GenerationSections;

/**
 * How a chunk's tokens were sampled: `kv` the host loop over kv_step (the cache in this
 * process's buffers), `host` the prefill/step loop, `graph` the pack's sample_loop.
 */
export type SamplerPath = 'kv' | 'host' | 'graph';

/** `int8`: MatMul weights int8 with a scale per output column, activations quantized per row at run time. */
export type WeightFormat = 'float32' | 'int8';

/** The pack's weight format; a manifest that states none is float32. */
export const weightFormat = (m: Manifest): WeightFormat => m.weights?.format ?? 'float32';

/**
 * What onnxruntime's arena holds for a row while the sample loop runs, over the step graph's
 * peak: the key/value cache grows by a position every step, so the chunks the loop frees are
 * always a little too small for the next step's, and the arena grows in doubling regions.
 * Measured on the CPU at minDALL-E's full size (331 MB a row by the graph), the Loop carrying each
 * layer's cache apart: 1.5× at 8 and 16 rows after one run; a session that runs batch after batch
 * settles higher, 2.2× at 16 rows from its second run on (freed regions fragment), and a worker's
 * batches of 7 rows held about 2.8× (the arena's regions double, so the ratio moves with the
 * rows); the rest is margin. The decoder's shapes do not grow: it holds what its graph says
 * (126 MB an image measured, 134 MB by the graph).
 */
export const SAMPLE_ARENA_GROWTH = 3.5;

/**
 * Bytes one candidate row holds while its batch samples on `sampler`, then the decoded image and
 * CLIP's input, kept for the whole batch. The weights are a fixed cost of the pack, not counted
 * here. What a memory budget divides to get a batch's rows.
 *
 * kv_step (`kv`): what the chunk's buffers hold, known exactly (kvRowBytes). sample_loop and the
 * prefill/step loop: the step graph's peak at one row (manifest `memory`, measured on the graphs:
 * the key/value cache in and out, what the step builds in between, the logits), else an estimate
 * from the geometry in float32 (the cache at the last position three times: in, out, and a copy
 * between, as exporters make; the logits and their probabilities), times the arena's growth.
 */
export function rowBytes(m: GeneratingManifest, sampler: SamplerPath): number {
  const FLOAT = 4;
  const { text_length, image_grid, codebook_size, image_size } = m.geometry;
  const { layers, heads, head_dim } = m.generator;
  const image = image_size[0] * image_size[1] * 3 * FLOAT;
  const clipInput = m.clip.preprocess.size ** 2 * 3 * FLOAT;
  if (sampler === 'kv') return kvRowBytes(m) + image + clipInput;
  const positions = text_length + image_grid[0] * image_grid[1];
  const estimate = () => 3 * layers * 2 * positions * heads * head_dim * FLOAT + 2 * codebook_size * FLOAT;
  const step = m.memory?.sample_row_bytes ?? estimate();
  return SAMPLE_ARENA_GROWTH * step + image + clipInput;
}

/**
 * What a row holds on kv_step (sampler.ts): its keys and values for every position read (T + N − 1,
 * in float32), the prompt's cache and each step's new position and logits twice (as kv_step returns
 * them and as copied into this process), and each step's values per layer (the row's width a few
 * times over, and its attention over the positions). onnxruntime's arena holds only the last two,
 * whose sizes barely change from step to step.
 */
export function kvRowBytes(m: GeneratingManifest): number {
  const FLOAT = 4;
  const { text_length: T, image_grid, codebook_size } = m.geometry;
  const { layers, heads, head_dim } = m.generator;
  const N = image_grid[0] * image_grid[1];
  const position = 2 * layers * heads * head_dim * FLOAT;
  const buffers = (T + N - 1) * position;
  const returned = 2 * (T * position + position + codebook_size * FLOAT);
  const width = heads * head_dim;
  const stepValues = (8 * width + heads * (T + N)) * FLOAT;
  return buffers + returned + stepValues;
}

/** Bytes the decoder holds per image it decodes (manifest `memory`); unknown without it. */
export const decodeImageBytes = (m: GeneratingManifest): number | undefined => m.memory?.decode_image_bytes;

/**
 * Whether the pack completes images: it generates, has an encoder, and its sample_loop (if any)
 * takes forced tokens (schema 4). Older packs serve text-only generations.
 */
export function completes(m: Manifest): boolean {
  return generates(m) && m.encoder !== undefined && m.schema_version >= 4;
}

export function generates(m: Manifest): m is GeneratingManifest {
  return m.geometry !== undefined && m.generator !== undefined && m.decoder !== undefined;
}

/** `m` as a pack that generates, or a validation_failed error naming the pack when it serves CLIP only. */
export function generatingManifest(m: Manifest): GeneratingManifest {
  if (!generates(m))
    throw new ModelError(
      'validation_failed',
      `model ${m.name} serves CLIP only (classification and embeddings): it cannot generate`,
    );
  return m;
}

// The schema lives beside the packs (the contract); this path holds from src/models and dist/models.
const schemaPath = fileURLToPath(new URL('../../packs/manifest.schema.json', import.meta.url));
const validateSchema = new Ajv2020({ allErrors: true, strict: false }).compile<Manifest>(
  JSON.parse(readFileSync(schemaPath, 'utf8')),
);

function fieldOf(error: ErrorObject): string {
  const path = error.instancePath.slice(1).replaceAll('/', '.');
  const child = error.params as { missingProperty?: string; additionalProperty?: string };
  const extra = child.missingProperty ?? child.additionalProperty;
  const field = [path, extra].filter(Boolean).join('.');
  return field || '(root)';
}

function describe(error: ErrorObject): string {
  const field = fieldOf(error);
  if (error.keyword === 'required') return `${field} is required`;
  if (error.keyword === 'additionalProperties') return `${field} is not allowed`;
  if (error.keyword === 'dependentRequired') {
    const { property, missingProperty } = error.params as { property: string; missingProperty: string };
    const why =
      property === 'encoder'
        ? 'an encoder completes the generations of a pack that generates'
        : 'geometry, generator and decoder come together';
    return `${missingProperty} is required with ${property} (${why})`;
  }
  return `${field} ${error.message ?? 'is invalid'}`;
}

/** Validates a parsed manifest: the schema, then rules the schema cannot express. */
export function validateManifest(data: unknown, source = 'manifest.json'): Manifest {
  if (!validateSchema(data)) {
    const problems = (validateSchema.errors ?? []).map(describe);
    throw new ModelError('pack_invalid_manifest', `${source}: ${problems.join('; ')}`);
  }
  const m = data;
  const fail = (field: string, why: string): never => {
    throw new ModelError('pack_invalid_manifest', `${source}: ${field} ${why}`);
  };
  if (generates(m)) {
    if (m.geometry.image_token_offset !== m.geometry.text_vocab_size) {
      fail('geometry.image_token_offset', 'must equal geometry.text_vocab_size');
    }
    if (m.generator.text_pad_id >= m.geometry.text_vocab_size) {
      fail('generator.text_pad_id', 'must be below geometry.text_vocab_size');
    }
    const k = m.generator.sampling_defaults.top_k;
    if (k > m.geometry.codebook_size) fail('generator.sampling_defaults.top_k', 'must not exceed codebook_size');
  }
  // Completion forces tokens in sample_loop, whose `keep` input came with schema 4.
  if (m.encoder !== undefined && m.schema_version < 4) fail('encoder', 'needs schema_version 4 or later');
  if (m.generator?.graphs.kv_step !== undefined && m.schema_version < 5)
    fail('generator.graphs.kv_step', 'needs schema_version 5 or later');
  for (const [field, file] of namedFiles(m)) {
    if (!(file in m.files)) fail(field, `names "${file}", which is missing from files`);
  }
  return m;
}

/** Every file the manifest refers to, with the field that names it. */
export function namedFiles(m: Manifest): [string, string][] {
  const entries: [string, string | undefined][] = [
    ['generator.tokenizer', m.generator?.tokenizer],
    ['generator.graphs.prefill', m.generator?.graphs.prefill],
    ['generator.graphs.step', m.generator?.graphs.step],
    ['generator.graphs.sample_loop', m.generator?.graphs.sample_loop],
    ['generator.graphs.kv_step', m.generator?.graphs.kv_step],
    ['decoder.graph', m.decoder?.graph],
    ['encoder.graph', m.encoder?.graph],
    ['clip.tokenizer', m.clip.tokenizer],
    ['clip.graphs.image', m.clip.graphs.image],
    ['clip.graphs.text', m.clip.graphs.text],
  ];
  return entries.filter((e): e is [string, string] => e[1] !== undefined);
}

export type GraphName =
  'prefill' | 'step' | 'sample_loop' | 'kv_step' | 'decoder' | 'encoder' | 'clip_image' | 'clip_text';

export function graphFile(m: Manifest, graph: GraphName): string | undefined {
  switch (graph) {
    case 'prefill':
      return m.generator?.graphs.prefill;
    case 'step':
      return m.generator?.graphs.step;
    case 'sample_loop':
      return m.generator?.graphs.sample_loop;
    case 'kv_step':
      return m.generator?.graphs.kv_step;
    case 'decoder':
      return m.decoder?.graph;
    case 'encoder':
      return m.encoder?.graph;
    case 'clip_image':
      return m.clip.graphs.image;
    case 'clip_text':
      return m.clip.graphs.text;
  }
}

/** Size and sha256 of every file in `files`; the first mismatch names its file. */
export async function verifyFiles(dir: string, m: Manifest, options: VerifyOptions = {}): Promise<void> {
  const records = await ChecksumRecords.open(dir, options);
  try {
    for (const [name, expected] of Object.entries(m.files)) {
      const path = join(dir, name);
      const stats = await stat(path).catch(() => undefined);
      if (stats === undefined)
        throw new ModelError('pack_file_missing', `${m.name}: file ${name} is missing from ${dir}`);
      if (stats.size !== expected.bytes) {
        throw new ModelError(
          'pack_checksum_mismatch',
          `${m.name}: file ${name} has ${stats.size} bytes, the manifest says ${expected.bytes}`,
        );
      }
      const actual = await records.sha256(name, path, stats);
      if (actual !== expected.sha256) {
        throw new ModelError(
          'pack_checksum_mismatch',
          `${m.name}: file ${name} has sha256 ${actual}, the manifest says ${expected.sha256}`,
        );
      }
    }
  } finally {
    // What was hashed before a mismatch stays known: fixing one file does not re-hash the rest.
    await records.save();
  }
}

/** Reads, validates and checksums the pack in `dir`. */
export async function readManifest(dir: string, options: VerifyOptions = {}): Promise<Manifest> {
  const path = join(dir, 'manifest.json');
  const text = await readFile(path, 'utf8').catch(() => {
    throw new ModelError('pack_file_missing', `${dir}: manifest.json is missing`);
  });
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ModelError('pack_invalid_manifest', `${path}: not JSON (${(error as Error).message})`);
  }
  const manifest = validateManifest(data, path);
  await verifyFiles(dir, manifest, options);
  return manifest;
}
