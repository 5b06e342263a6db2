// RGB pixels at the decoder's size → codebook indices with the pack's encoder graph (image
// completion: the kept cells' codes are forced while the rest is sampled).
import * as ort from 'onnxruntime-node';

/** Encodes `count` images whose RGB bytes ([height, width, 3] each) lie back to back in `pixels`. */
export async function encodePixels(
  session: ort.InferenceSession,
  pixels: Uint8Array,
  count: number,
  [height, width]: [number, number],
): Promise<Int32Array> {
  if (pixels.length !== count * height * width * 3)
    throw new Error(`encoder input holds ${pixels.length} bytes, expected ${count} × ${height} × ${width} × 3`);
  const out = await session.run({ pixels: new ort.Tensor('uint8', pixels, [count, height, width, 3]) });
  return Int32Array.from(out.image_tokens.data as BigInt64Array, Number);
}

/** The tokens a row keeps: `codes` where `keepCells` is 1, else -1 (sample here). */
export function keptTokens(codes: Int32Array, keepCells: Uint8Array): Int32Array {
  if (codes.length !== keepCells.length)
    throw new Error(`${keepCells.length} cells to keep for ${codes.length} image tokens`);
  return codes.map((code, i) => (keepCells[i] ? code : -1));
}
