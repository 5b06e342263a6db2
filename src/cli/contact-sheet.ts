// A contact sheet: the kept images in a grid, each with its rank and CLIP score under it.
import sharp from 'sharp';
import type { GeneratedImage } from '../models/index.js';

const CAPTION_HEIGHT = 22;
const GAP = 6;
/** Small images are scaled up (nearest neighbour) so that a 64-pixel image stays readable. */
const MIN_CELL = 128;

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export async function contactSheet(images: GeneratedImage[]): Promise<Buffer> {
  if (images.length === 0) throw new Error('no images for a contact sheet');
  const scale = Math.max(1, Math.ceil(MIN_CELL / images[0].width));
  const cellW = images[0].width * scale;
  const cellH = images[0].height * scale;
  const columns = Math.ceil(Math.sqrt(images.length));
  const rows = Math.ceil(images.length / columns);
  const width = columns * (cellW + GAP) + GAP;
  const height = rows * (cellH + CAPTION_HEIGHT + GAP) + GAP;
  const tiles = await Promise.all(
    images.map(async (image, i) => ({
      input: await sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: 3 } })
        .resize(cellW, cellH, { kernel: 'nearest' })
        .png()
        .toBuffer(),
      left: GAP + (i % columns) * (cellW + GAP),
      top: GAP + Math.floor(i / columns) * (cellH + CAPTION_HEIGHT + GAP),
    })),
  );
  const captions = images.map((image, i) => {
    const x = GAP + (i % columns) * (cellW + GAP) + cellW / 2;
    const y = GAP + Math.floor(i / columns) * (cellH + CAPTION_HEIGHT + GAP) + cellH + 16;
    const text = escapeXml(`#${image.rank}  ${image.score.toFixed(2)}`);
    return `<text x="${x}" y="${y}" text-anchor="middle">${text}</text>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="sans-serif" font-size="14" fill="#222">${captions.join('')}</g></svg>`;
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite([...tiles, { input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer();
}
