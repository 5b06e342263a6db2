// CLIP image preprocessing with sharp, driven by the pack's `clip.preprocess`:
// decode, EXIF orientation, alpha flattened onto white, sRGB, resize (+ centre crop), mean/std.
import sharp, { type Sharp } from 'sharp';
import type { Manifest } from './manifest.js';
import { InvalidImageError } from './errors.js';
import { IMAGE_FORMATS, sniffImageFormat } from '../lib/image-format.js';

export type Preprocess = Manifest['clip']['preprocess'];

/** sharp's own default: about 16384 × 16384 pixels. */
export const DEFAULT_MAX_IMAGE_PIXELS = 268_402_689;

export interface RawImage {
  width: number;
  height: number;
  /** RGB, row-major. */
  pixels: Uint8Array;
}

function resized(image: Sharp, p: Preprocess): Sharp {
  const kernel = p.interpolation === 'bicubic' ? 'cubic' : 'linear';
  // `cover` scales the short side to `size` and crops the centre, as shortest_edge + centre crop.
  const fit = p.resize === 'shortest_edge' ? 'cover' : 'fill';
  return image.resize(p.size, p.size, { fit, position: 'centre', kernel });
}

/** Pixel bytes (S × S × 3) → channel-first floats, `(x/255 - mean) / std`. */
export function normalize(rgb: Uint8Array, p: Preprocess, out: Float32Array, offset = 0): void {
  const plane = p.size * p.size;
  for (let c = 0; c < 3; c++) {
    const scale = 1 / (255 * p.std[c]);
    const shift = p.mean[c] / p.std[c];
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = rgb[i * 3 + c] * scale - shift;
  }
}

async function toRgb(image: Sharp, p: Preprocess): Promise<Uint8Array> {
  const { data, info } = await resized(image, p).raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== p.size || info.height !== p.size) {
    throw new Error(`unexpected ${info.width}×${info.height}×${info.channels} after preprocessing`);
  }
  return data;
}

/** Encoded image bytes → normalised pixels, written into `out` at `offset`. */
export async function preprocessEncoded(
  bytes: Uint8Array,
  p: Preprocess,
  index: number,
  maxPixels: number,
  out: Float32Array,
  offset: number,
): Promise<void> {
  if (sniffImageFormat(bytes) === undefined) {
    throw new InvalidImageError(
      `image ${index}: unsupported image format; accepted are ${IMAGE_FORMATS.join(', ')}`,
      index,
    );
  }
  let rgb: Uint8Array;
  try {
    // pages: 1 — an animated image is classified by its first frame.
    const image = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated', pages: 1, page: 0 })
      .autoOrient()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .removeAlpha();
    rgb = await toRgb(image, p);
  } catch (error) {
    throw new InvalidImageError(`image ${index}: ${(error as Error).message}`, index);
  }
  normalize(rgb, p, out, offset);
}

/** Raw RGB pixels (decoder output) → normalised pixels, written into `out` at `offset`. */
export async function preprocessRaw(image: RawImage, p: Preprocess, out: Float32Array, offset: number): Promise<void> {
  const needsResize = image.width !== p.size || image.height !== p.size;
  const rgb = needsResize
    ? await toRgb(sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: 3 } }), p)
    : image.pixels;
  normalize(rgb, p, out, offset);
}
