// One call per job kind — a mixed generation chunk, classify, embed — over the loaded packs.
// Runs wherever it is constructed; the engine runs it in a worker thread.
import { Clip } from './clip.js';
import type { DecodedChunk } from './decoder.js';
import { InvalidImageError, ModelError } from './errors.js';
import type { Log } from './log.js';
import { completes, type SamplerPath } from './manifest.js';
import { CLIP_GRAPHS, type GraphName, type Pack } from './packs.js';
import { preprocessRaw, type Preprocess } from './preprocess.js';
import { runMixedChunk } from './mixed-chunk.js';
import type { Device } from './providers.js';
import { sampleChunkHost, sampleChunkKv, sampleChunkLoop, type SampleRow } from './sampler.js';
import type { ChunkResult, ClassifyOutcome, ClassifyRequest, MixedChunk, LabelScore } from './types.js';

export interface PipelineSettings {
  clipBatch: number;
  samplerMode: 'auto' | 'host' | 'graph';
  /** Where the sessions run: `auto` picks the sampler for it. */
  device: Device['kind'];
  maxImagePixels: number;
}

export interface JobHooks {
  /** Throws an AbortError once the engine is closing. */
  checkpoint: () => void;
}

export class Pipeline {
  private readonly clips = new Map<string, Clip>();

  constructor(
    private readonly packs: Map<string, Pack>,
    private readonly defaultPack: string,
    private readonly settings: PipelineSettings,
    private readonly log: Log,
  ) {}

  pack(name: string | undefined): Pack {
    const pack = this.packs.get(name ?? this.defaultPack);
    if (!pack) throw new ModelError('unknown_model', this.unknownModel(name));
    return pack;
  }

  private unknownModel(name: string | undefined): string {
    return `unknown model "${name}": available are ${[...this.packs.keys()].join(', ')}`;
  }

  get clipBatch(): number {
    return this.settings.clipBatch;
  }

  clip(pack: Pack): Clip {
    let clip = this.clips.get(pack.name);
    if (!clip) {
      clip = new Clip(pack, this.settings.clipBatch, this.settings.maxImagePixels);
      this.clips.set(pack.name, clip);
    }
    return clip;
  }

  /**
   * On the CPU, kv_step when the pack has it: the cache lies in buffers sized once for the
   * chunk, read in place (sample_loop's Loop copies the part it grows every step, and
   * onnxruntime's arena holds 1.5–2.8× what the cache needs), so a batch holds what it was
   * budgeted; as fast as sample_loop at the demo's size and at minDALL-E's (README). On CUDA,
   * sample_loop: the cache stays on the device. The prefill/step loop only for a pack with
   * neither (it copies the whole cache through this process every step).
   */
  samplerFor(pack: Pack): SamplerPath {
    const mode = this.settings.samplerMode;
    const kv = pack.hasGraph('kv_step');
    if (mode === 'host') return kv ? 'kv' : 'host';
    if (mode === 'graph' && !pack.hasGraph('sample_loop'))
      throw new ModelError('validation_failed', `pack ${pack.name} has no sample_loop graph`);
    if (mode === 'auto' && kv && this.settings.device === 'cpu') return 'kv';
    if (pack.hasGraph('sample_loop')) return 'graph';
    return kv ? 'kv' : 'host';
  }

  /** The graphs a generation on `pack` runs, sessions only for its sampler's (at full size each holds GBs). */
  generationGraphs(pack: Pack): GraphName[] {
    const sampler = this.samplerFor(pack);
    const sampling: GraphName[] =
      sampler === 'graph' ? ['sample_loop'] : sampler === 'kv' ? ['kv_step'] : ['prefill', 'step'];
    const encoder: GraphName[] = completes(pack.manifest) ? ['encoder'] : [];
    return [...sampling, 'decoder', ...encoder, ...CLIP_GRAPHS];
  }

  /** Codebook indices of `rows` ([rows × N]) in one sampler call; rows may mix generations. */
  async sampleRows(pack: Pack, rows: SampleRow[], sampler: SamplerPath, checkpoint: () => void) {
    const g = pack.generating.geometry;
    const chunk = {
      rows,
      imageTokens: g.image_grid[0] * g.image_grid[1],
      codebookSize: g.codebook_size,
      perRowSettings: pack.manifest.schema_version >= 2,
      checkpoint,
    };
    if (sampler === 'graph') return sampleChunkLoop({ sampleLoop: await pack.session('sample_loop') }, chunk);
    if (sampler === 'kv') return sampleChunkKv({ kvStep: await pack.session('kv_step') }, chunk);
    return sampleChunkHost({ prefill: await pack.session('prefill'), step: await pack.session('step') }, chunk);
  }

  /** One mixed chunk of several generations: sampled, decoded and scored (mixed-chunk.ts). */
  runChunk(chunk: MixedChunk, hooks: JobHooks): Promise<ChunkResult> {
    return runMixedChunk(this, chunk, hooks.checkpoint);
  }

  async embedDecoded(clip: Clip, decoded: DecodedChunk, count: number, p: Preprocess): Promise<Float32Array[]> {
    const { width, height } = decoded;
    const bytes = width * height * 3;
    const pixels = clip.pixelBuffer(count);
    const stride = pixels.length / count;
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        preprocessRaw(
          { width, height, pixels: decoded.pixels.subarray(i * bytes, (i + 1) * bytes) },
          p,
          pixels,
          i * stride,
        ),
      ),
    );
    return clip.embedPixels(pixels, count);
  }

  async classify(requests: ClassifyRequest[]): Promise<ClassifyOutcome[]> {
    const outcomes: ClassifyOutcome[] = new Array(requests.length);
    const byModel = new Map<Pack, number[]>();
    requests.forEach((r, i) => {
      const pack = this.packs.get(r.model ?? this.defaultPack);
      if (!pack) {
        outcomes[i] = { ok: false, error: { code: 'unknown_model', message: this.unknownModel(r.model), index: -1 } };
        return;
      }
      byModel.set(pack, [...(byModel.get(pack) ?? []), i]);
    });
    for (const [pack, indices] of byModel) await this.classifyWith(pack, requests, indices, outcomes);
    return outcomes;
  }

  private requestProblem(r: ClassifyRequest, templates: string[]): string | undefined {
    if (r.images.length === 0) return 'images must not be empty';
    if (r.labels.length === 0) return 'labels must not be empty';
    if (r.labels.some((l) => typeof l !== 'string' || l.trim() === '')) return 'labels must be non-empty strings';
    if (templates.length === 0 || templates.some((t) => !t.includes('{}')))
      return 'templates must be non-empty and each contain {}';
    if (r.topK !== undefined && !(Number.isInteger(r.topK) && r.topK >= 1)) return 'topK must be a positive integer';
    return undefined;
  }

  // One CLIP image pass over every valid image of the requests that use this pack.
  private async classifyWith(
    pack: Pack,
    requests: ClassifyRequest[],
    indices: number[],
    outcomes: ClassifyOutcome[],
  ): Promise<void> {
    const clip = this.clip(pack);
    const accepted: { index: number; pixels: Float32Array; templates: string[] }[] = [];
    for (const index of indices) {
      const r = requests[index];
      const templates = r.templates ?? pack.manifest.clip.templates;
      const problem = this.requestProblem(r, templates);
      if (problem) {
        outcomes[index] = { ok: false, error: { code: 'validation_failed', message: problem, index: -1 } };
        continue;
      }
      try {
        accepted.push({ index, pixels: await clip.preprocess(r.images), templates });
      } catch (error) {
        if (!(error instanceof InvalidImageError)) throw error;
        outcomes[index] = { ok: false, error: { code: 'invalid_image', message: error.message, index: error.index } };
      }
    }
    const total = accepted.reduce((n, a) => n + requests[a.index].images.length, 0);
    const all = clip.pixelBuffer(total);
    let offset = 0;
    for (const a of accepted) {
      all.set(a.pixels, offset);
      offset += a.pixels.length;
    }
    const embeddings = await clip.embedPixels(all, total);
    let next = 0;
    for (const a of accepted) {
      const r = requests[a.index];
      const labels = await clip.labelEmbeddings(r.labels, a.templates);
      const results = r.images.map(() => {
        const probabilities = clip.labelProbabilities(embeddings[next++], labels);
        const ranked: LabelScore[] = r.labels.map((label, i) => ({ label, score: probabilities[i] }));
        ranked.sort((x, y) => y.score - x.score);
        return r.topK ? ranked.slice(0, r.topK) : ranked;
      });
      outcomes[a.index] = { ok: true, results };
    }
  }

  async embedImages(images: Uint8Array[], model?: string): Promise<Float32Array[]> {
    const clip = this.clip(this.pack(model));
    return clip.embedPixels(await clip.preprocess(images), images.length);
  }

  async embedTexts(texts: string[], model?: string): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    return this.clip(this.pack(model)).embedTexts(texts);
  }

  async countTextTokens(texts: string[], model?: string): Promise<number[]> {
    return this.clip(this.pack(model)).textTokenCounts(texts);
  }
}
