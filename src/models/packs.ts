// Model packs on disk: discovery, validation, and lazily created sessions and tokenizers.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import type { VerifyOptions } from './checksum-cache.js';
import { ModelError } from './errors.js';
import type { Log } from './log.js';
import {
  completes,
  generates,
  rowBytes,
  decodeImageBytes,
  generatingManifest,
  graphFile,
  readManifest,
  type GeneratingManifest,
  type GraphName,
  type Manifest,
  weightFormat,
  type SamplerPath,
} from './manifest.js';
import { probeFeeds } from './placement.js';
import { createSession, type ProviderSettings } from './providers.js';
import { TextTokenizer } from './tokenizers.js';
import type { PackSummary } from './types.js';

export type { GraphName } from './manifest.js';

export interface PackInfo {
  dir: string;
  manifest: Manifest;
}

/** Reads and verifies one pack folder (schema, then every file's size and sha256). */
export async function loadPack(dir: string, options: VerifyOptions = {}): Promise<PackInfo> {
  return { dir, manifest: await readManifest(dir, options) };
}

/** Every folder under `modelsDir` holding a manifest.json, verified, in name order. */
export async function listPacks(modelsDir: string, options: VerifyOptions = {}): Promise<PackInfo[]> {
  const entries = await readdir(modelsDir, { withFileTypes: true }).catch((error: Error) => {
    throw new ModelError('pack_file_missing', `models directory ${modelsDir}: ${error.message}`);
  });
  const dirs = entries
    .filter((e) => e.isDirectory())
    .map((e) => join(modelsDir, e.name))
    .sort();
  const packs: PackInfo[] = [];
  for (const dir of dirs) {
    const hasManifest = await stat(join(dir, 'manifest.json')).then(
      () => true,
      () => false,
    );
    if (hasManifest) packs.push(await loadPack(dir, options));
  }
  const seen = new Set<string>();
  for (const p of packs) {
    if (seen.has(p.manifest.name))
      throw new ModelError('pack_invalid_manifest', `two packs are named ${p.manifest.name}`);
    seen.add(p.manifest.name);
  }
  return packs.sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
}

function generationSummary(m: GeneratingManifest, sampler: SamplerPath): NonNullable<PackSummary['generation']> {
  const d = m.generator.sampling_defaults;
  return {
    textLength: m.geometry.text_length,
    imageSize: m.geometry.image_size,
    imageGrid: m.geometry.image_grid,
    codebookSize: m.geometry.codebook_size,
    completes: completes(m),
    rowBytes: rowBytes(m, sampler),
    decodeImageBytes: decodeImageBytes(m) ?? null,
    samplingDefaults: {
      topK: d.top_k,
      temperature: d.temperature,
      ...(d.top_p !== undefined ? { topP: d.top_p } : {}),
    },
  };
}

/** The pack a call that names none runs on: the first by name that generates, else the first. */
export function defaultPackName(packs: { name: string; generates: boolean }[]): string | undefined {
  const byName = [...packs].sort((a, b) => a.name.localeCompare(b.name));
  return (byName.find((pack) => pack.generates) ?? byName[0])?.name;
}

export const ALL_GRAPHS: readonly GraphName[] = [
  'prefill',
  'step',
  'sample_loop',
  'kv_step',
  'decoder',
  'encoder',
  'clip_image',
  'clip_text',
];
export const CLIP_GRAPHS: readonly GraphName[] = ['clip_image', 'clip_text'];
const SAMPLER_GRAPHS: readonly GraphName[] = ['prefill', 'step', 'sample_loop', 'kv_step'];

/** A pack with its sessions, created once on first use (or all at start-up with `createAll`). */
export class Pack {
  private readonly sessions = new Map<GraphName, Promise<ort.InferenceSession>>();
  private readonly tokenizers = new Map<string, Promise<TextTokenizer>>();
  readonly providers: Record<string, string> = {};

  constructor(
    readonly info: PackInfo,
    private readonly settings: ProviderSettings,
    private readonly log: Log,
  ) {}

  get manifest(): Manifest {
    return this.info.manifest;
  }

  /** The manifest of a pack that generates; a validation_failed error when it serves CLIP only. */
  get generating(): GeneratingManifest {
    return generatingManifest(this.manifest);
  }

  get name(): string {
    return this.info.manifest.name;
  }

  hasGraph(graph: GraphName): boolean {
    return graphFile(this.manifest, graph) !== undefined;
  }

  session(graph: GraphName): Promise<ort.InferenceSession> {
    let pending = this.sessions.get(graph);
    if (!pending) {
      const file = graphFile(this.manifest, graph);
      if (!file) throw new Error(`pack ${this.name} has no ${graph} graph`);
      const label = `${this.name}/${graph}`;
      const probe = this.settings.probePlacement ? probeFeeds(this.manifest, graph) : undefined;
      pending = createSession(join(this.info.dir, file), this.settings, this.log, label, probe).then((created) => {
        this.providers[graph] = created.provider;
        return created.session;
      });
      // A failed creation is not cached: the next call retries and reports again.
      pending.catch(() => this.sessions.delete(graph));
      this.sessions.set(graph, pending);
    }
    return pending;
  }

  tokenizer(which: 'generator' | 'clip'): Promise<TextTokenizer> {
    const file = which === 'generator' ? this.generating.generator.tokenizer : this.manifest.clip.tokenizer;
    let pending = this.tokenizers.get(file);
    if (!pending) {
      pending = TextTokenizer.load(join(this.info.dir, file));
      this.tokenizers.set(file, pending);
    }
    return pending;
  }

  /** Creates the sessions and tokenizers of `graphs` now (default: every graph). */
  async createAll(graphs: readonly GraphName[] = ALL_GRAPHS): Promise<void> {
    for (const graph of graphs.filter((g) => this.hasGraph(g))) await this.session(graph);
    if (graphs.some((g) => SAMPLER_GRAPHS.includes(g) && this.hasGraph(g))) await this.tokenizer('generator');
    if (graphs.includes('clip_text')) await this.tokenizer('clip');
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    // A session that failed to load holds nothing to release.
    for (const pending of all) await (await pending.catch(() => undefined))?.release();
  }

  /** What the pack serves; a row's bytes as `sampler` holds them (the pipeline's choice for it). */
  summary(sampler: SamplerPath): PackSummary {
    const m = this.manifest;
    return {
      name: m.name,
      version: m.version,
      ...(m.description !== undefined ? { description: m.description } : {}),
      ...(m.vocabulary !== undefined ? { vocabulary: [...m.vocabulary] } : {}),
      ...(m.examples !== undefined ? { examples: [...m.examples] } : {}),
      ...(m.license !== undefined ? { license: m.license } : {}),
      generation: generates(m) ? generationSummary(m, sampler) : null,
      embedDim: m.clip.embed_dim,
      weights: { format: weightFormat(m), source: m.weights?.source ?? null },
      providers: { ...this.providers },
    };
  }
}
