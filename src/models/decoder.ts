// Image tokens → RGB pixels with the pack's decoder graph (uint8 NHWC, rounded in the graph).
import * as ort from 'onnxruntime-node';

export interface DecodedChunk {
  /** [count, height, width, 3] */
  pixels: Uint8Array;
  width: number;
  height: number;
}

/** Decodes `count` candidates whose codebook indices lie back to back in `tokens`. */
export async function decodeTokens(
  session: ort.InferenceSession,
  tokens: Int32Array,
  count: number,
  imageTokens: number,
): Promise<DecodedChunk> {
  const ids = BigInt64Array.from(tokens.subarray(0, count * imageTokens), (t) => BigInt(t));
  const out = await session.run({ image_tokens: new ort.Tensor('int64', ids, [count, imageTokens]) });
  const [, height, width, channels] = out.pixels.dims;
  if (channels !== 3) throw new Error(`decoder returned ${channels} channels, expected 3`);
  return { pixels: out.pixels.data as Uint8Array, width, height };
}
