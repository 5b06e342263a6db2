// An exported CLIP pack against PyTorch's answers on the same checkpoint
// (training/eval/openai_clip_reference.py): the pack's tokenizer must give the reference token ids
// and the service's CLIP path (tokenizer layout, sharp preprocessing, onnxruntime) the same
// embeddings, up to float error.
import { Clip, l2normalize } from './clip.js';
import { DEFAULT_MAX_IMAGE_PIXELS } from './preprocess.js';
import type { Log } from './log.js';
import { loadPack, Pack } from './packs.js';
import type { ProviderSettings } from './providers.js';

export interface ClipReference {
  texts: string[];
  token_ids: number[][];
  /** Raw (unnormalised) embeddings, one per text. */
  text_embeds: number[][];
  /** An image at the CLIP input size, so that preprocessing is the normalisation alone. */
  image_png_base64: string;
  image_embeds: number[][];
}

export interface ClipCheck {
  /** The texts whose token ids differ from the reference's. */
  tokenMismatches: string[];
  /** Cosine of each text's embedding with the reference's, in order. */
  textCosines: number[];
  imageCosine: number;
}

/** Cosine similarity of two vectors of any scale. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const x = l2normalize(Float32Array.from(a));
  const y = l2normalize(Float32Array.from(b));
  return x.reduce((sum, v, i) => sum + v * y[i], 0);
}

export async function checkClipPack(
  packDir: string,
  reference: ClipReference,
  settings: ProviderSettings,
  log: Log,
): Promise<ClipCheck> {
  const pack = new Pack(await loadPack(packDir), settings, log);
  try {
    const clip = new Clip(pack, 16, DEFAULT_MAX_IMAGE_PIXELS);
    const tokenizer = await pack.tokenizer('clip');
    const tokenMismatches = reference.texts.filter(
      (text, i) => JSON.stringify(tokenizer.encode(text)) !== JSON.stringify(reference.token_ids[i]),
    );
    const texts = await clip.embedTexts(reference.texts);
    const pixels = await clip.preprocess([Buffer.from(reference.image_png_base64, 'base64')]);
    const [image] = await clip.embedPixels(pixels, 1);
    return {
      tokenMismatches,
      textCosines: texts.map((embedding, i) => cosine(embedding, reference.text_embeds[i])),
      imageCosine: cosine(image, reference.image_embeds[0]),
    };
  } finally {
    await pack.release();
  }
}
