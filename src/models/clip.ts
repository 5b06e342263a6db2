// CLIP: image and text encoders, L2-normalised embeddings, zero-shot label scores with
// template ensembling (mean of normalised text embeddings, normalised again), and a cache of
// label embeddings so that repeated label sets cost no text-encoder run.
import * as ort from 'onnxruntime-node';
import type { Pack } from './packs.js';
import { preprocessEncoded } from './preprocess.js';
import { clipText } from './tokenizers.js';

export function l2normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] * scale;
  return out;
}

export function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

export function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function rowsOf(data: Float32Array, count: number, width: number): Float32Array[] {
  return Array.from({ length: count }, (_, i) => l2normalize(data.subarray(i * width, (i + 1) * width)));
}

/** Label embeddings kept per pack; oldest dropped past this many. */
const LABEL_CACHE_LIMIT = 4096;

export class Clip {
  private readonly labelCache = new Map<string, Float32Array>();

  constructor(
    private readonly pack: Pack,
    private readonly batchSize: number,
    private readonly maxImagePixels: number,
  ) {}

  private get config() {
    return this.pack.manifest.clip;
  }

  /** Floats for `count` preprocessed images ([count, 3, S, S]). */
  pixelBuffer(count: number): Float32Array {
    const size = this.config.preprocess.size;
    return new Float32Array(count * 3 * size * size);
  }

  /**
   * Encoded images → normalised pixels, decoded in parallel (sharp works on libuv's pool).
   * A bad image throws InvalidImageError naming the first bad index.
   */
  async preprocess(images: Uint8Array[]): Promise<Float32Array> {
    const p = this.config.preprocess;
    const out = this.pixelBuffer(images.length);
    const stride = 3 * p.size * p.size;
    const settled = await Promise.allSettled(
      images.map((bytes, i) => preprocessEncoded(bytes, p, i, this.maxImagePixels, out, i * stride)),
    );
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return out;
  }

  /** Normalised image embeddings of preprocessed pixels, in batches of `batchSize`. */
  async embedPixels(pixels: Float32Array, count: number): Promise<Float32Array[]> {
    const session = await this.pack.session('clip_image');
    const size = this.config.preprocess.size;
    const stride = 3 * size * size;
    const E = this.config.embed_dim;
    const embeddings: Float32Array[] = [];
    for (let start = 0; start < count; start += this.batchSize) {
      const n = Math.min(this.batchSize, count - start);
      const input = new ort.Tensor('float32', pixels.subarray(start * stride, (start + n) * stride), [
        n,
        3,
        size,
        size,
      ]);
      const out = await session.run({ pixel_values: input });
      embeddings.push(...rowsOf(out.image_embeds.data as Float32Array, n, E));
    }
    return embeddings;
  }

  /** Normalised text embeddings of raw texts (no template). */
  async embedTexts(texts: string[]): Promise<Float32Array[]> {
    const [session, tokenizer] = await Promise.all([this.pack.session('clip_text'), this.pack.tokenizer('clip')]);
    const c = this.config;
    const layout = { contextLength: c.context_length, bosId: c.bos_id, eosId: c.eos_id, padId: c.pad_id };
    const embeddings: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += this.batchSize) {
      const batch = texts.slice(start, start + this.batchSize);
      const ids = new BigInt64Array(batch.length * c.context_length);
      batch.forEach((text, i) => ids.set(clipText(tokenizer, text, layout), i * c.context_length));
      const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [batch.length, c.context_length]) });
      embeddings.push(...rowsOf(out.text_embeds.data as Float32Array, batch.length, c.embed_dim));
    }
    return embeddings;
  }

  /** How many tokens each text takes in CLIP's context: start and end tokens included, after truncation. */
  async textTokenCounts(texts: string[]): Promise<number[]> {
    const tokenizer = await this.pack.tokenizer('clip');
    const room = this.config.context_length - 2;
    return texts.map((text) => Math.min(tokenizer.encode(text).length, room) + 2);
  }

  /** One ensembled embedding per label: templates filled, embedded, averaged, normalised. */
  async labelEmbeddings(labels: string[], templates: string[]): Promise<Float32Array[]> {
    const keyOf = (label: string) => JSON.stringify([templates, label]);
    const missing = [...new Set(labels.filter((l) => !this.labelCache.has(keyOf(l))))];
    if (missing.length > 0) {
      const prompts = missing.flatMap((label) => templates.map((t) => t.replaceAll('{}', label)));
      const embedded = await this.embedTexts(prompts);
      missing.forEach((label, i) => {
        const mean = new Float32Array(this.config.embed_dim);
        for (const e of embedded.slice(i * templates.length, (i + 1) * templates.length)) {
          for (let d = 0; d < mean.length; d++) mean[d] += e[d];
        }
        this.remember(keyOf(label), l2normalize(mean));
      });
    }
    return labels.map((l) => this.labelCache.get(keyOf(l))!);
  }

  /** A generation prompt's embedding, embedded alone (so it never depends on company) and cached. */
  async promptEmbedding(prompt: string): Promise<Float32Array> {
    const key = JSON.stringify(['prompt', prompt]);
    let embedding = this.labelCache.get(key);
    if (!embedding) {
      [embedding] = await this.embedTexts([prompt]);
      this.remember(key, embedding);
    }
    return embedding;
  }

  private remember(key: string, value: Float32Array): void {
    if (this.labelCache.size >= LABEL_CACHE_LIMIT) {
      this.labelCache.delete(this.labelCache.keys().next().value!);
    }
    this.labelCache.set(key, value);
  }

  get cachedLabels(): number {
    return this.labelCache.size;
  }

  /** logit_scale × cosine of each label, softmaxed over labels. */
  labelProbabilities(image: Float32Array, labels: Float32Array[]): number[] {
    return softmax(labels.map((l) => this.config.logit_scale * dot(image, l)));
  }

  /** logit_scale × cosine: the rerank score. */
  score(image: Float32Array, text: Float32Array): number {
    return this.config.logit_scale * dot(image, text);
  }
}
