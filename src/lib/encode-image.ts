// Encodes the raw RGB pixels the engine returns: stored results and streamed partial images.
import sharp from 'sharp';

/** RGB pixels (width × height × 3) to PNG, WebP or JPEG bytes. */
export async function encodeImage(
  pixels: Uint8Array,
  width: number,
  height: number,
  format: 'png' | 'webp' | 'jpeg',
): Promise<Buffer> {
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  switch (format) {
    case 'png':
      return image.png().toBuffer();
    case 'webp':
      return image.webp({ quality: 90 }).toBuffer();
    case 'jpeg':
      return image.jpeg({ quality: 90 }).toBuffer();
  }
}
