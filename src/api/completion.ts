// An image completion request (POST /generations with `image`): the image read under the same
// rules as classify's (base64, upload or a URL fetched under the outbound policy, each image under
// IMAGE_MAX_BYTES and both together under CLIP_REQUEST_MAX_IMAGE_BYTES), resized to the pack's
// image size, and the grid cells to keep, from `keep_rows` or from a mask's transparent pixels.
// The job carries the resized image (small) and the cells; the worker encodes and forces them.
import sharp from 'sharp';
import type { Config } from '../config.js';
import type { GenerationCompletion } from '../contracts/jobs.js';
import type { CreateGenerationBody, ModelInfo } from '../contracts/schemas.js';
import { ServiceError, fieldError } from '../errors.js';
import { resolveImage } from './images.js';

export interface PreparedCompletion {
  completion: GenerationCompletion;
  /** The image at the pack's image size, PNG, base64. */
  image: string;
}

type Generation = NonNullable<ModelInfo['generation']>;

/** What a completion needs of the request before any image is read: a model that completes, and one way to keep cells. */
export function checkCompletionRequest(body: CreateGenerationBody, model: ModelInfo | undefined): Generation | null {
  if (body.image === undefined) {
    if (body.rank_by === 'image') throw fieldError('image', 'is required with rank_by image');
    if (body.keep_rows !== undefined) throw fieldError('image', 'is required with keep_rows');
    if (body.mask !== undefined) throw fieldError('image', 'is required with mask');
    return null;
  }
  if ((body.keep_rows === undefined) === (body.mask === undefined))
    throw fieldError('keep_rows', 'or mask is required with image, and not both');
  const generation = model?.generation;
  if (!model || !generation)
    throw new ServiceError('service_unavailable', 'no worker has reported its models yet; retry', {
      retryAfterSeconds: 1,
    });
  if (generation.completes !== true) {
    const message = `cannot be completed by ${model.name}: its pack has no image encoder (pack schema 4); GET /models shows generation.completes`;
    throw new ServiceError('completion_unsupported', `image ${message}`, { errors: [{ field: 'image', message }] });
  }
  const [rows] = generation.image_grid;
  if (body.keep_rows !== undefined && body.keep_rows >= rows)
    throw fieldError(
      'keep_rows',
      `must be below the grid's ${rows} rows of ${model.name}, so that some are regenerated`,
    );
  return generation;
}

function invalid(field: string, why: string): ServiceError {
  return new ServiceError('invalid_image', `${field} ${why}`, { errors: [{ field, message: why }] });
}

function invalidMask(field: string, why: string): ServiceError {
  return new ServiceError('invalid_mask', `${field} ${why}`, { errors: [{ field, message: why }] });
}

/** The size as the image is shown: after its EXIF orientation, as it is encoded and as a mask is read. */
async function sizeOf(bytes: Uint8Array, field: string, config: Config) {
  try {
    const { autoOrient } = await sharp(bytes, { limitInputPixels: config.imageMaxPixels }).metadata();
    const { width, height } = autoOrient ?? {};
    if (!width || !height) throw new Error('no size');
    return { width, height };
  } catch (error) {
    throw invalid(field, `cannot be decoded as an image (${(error as Error).message})`);
  }
}

/**
 * The image squashed to the pack's image size (both sides scaled, no crop, as the mask's cells are
 * mapped), after EXIF orientation, transparency flattened onto white, in sRGB; PNG, lossless.
 */
async function resized(bytes: Uint8Array, [height, width]: number[], config: Config): Promise<Buffer> {
  try {
    return await sharp(bytes, { limitInputPixels: config.imageMaxPixels })
      .rotate()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
      .png()
      .toBuffer();
  } catch (error) {
    throw invalid('image', `cannot be decoded as an image (${(error as Error).message})`);
  }
}

/** `#` for a kept cell, `.` for a regenerated one, one string per grid row. */
function rowsOfCells(keep: (row: number, col: number) => boolean, [rows, cols]: number[]): string[] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: cols }, (_, c) => (keep(r, c) ? '#' : '.')).join(''),
  );
}

/**
 * Cells to regenerate from the mask's alpha (OpenAI's convention: a fully transparent pixel marks
 * what to regenerate), on the image's own pixels as shown (both after their EXIF orientation, as
 * the image is encoded): a cell is regenerated when any pixel in it is.
 */
async function maskCells(
  bytes: Uint8Array,
  image: { width: number; height: number },
  grid: number[],
  config: Config,
  field: string,
) {
  const size = await sizeOf(bytes, field, config);
  if (size.width !== image.width || size.height !== image.height)
    throw invalidMask(
      field,
      `is ${size.width}×${size.height}; it must have the image's size, ${image.width}×${image.height}`,
    );
  const { data, info } = await sharp(bytes, { limitInputPixels: config.imageMaxPixels })
    .rotate()
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const [rows, cols] = grid;
  const regenerate = new Uint8Array(rows * cols);
  let transparent = 0;
  for (let y = 0; y < info.height; y++) {
    const row = Math.floor((y * rows) / info.height);
    for (let x = 0; x < info.width; x++) {
      if (data[(y * info.width + x) * info.channels + info.channels - 1] !== 0) continue;
      transparent += 1;
      regenerate[row * cols + Math.floor((x * cols) / info.width)] = 1;
    }
  }
  if (transparent === 0)
    throw invalidMask(field, 'has no fully transparent pixel (alpha 0): nothing is marked to regenerate');
  return rowsOfCells((r, c) => regenerate[r * cols + c] === 0, grid);
}

/**
 * Reads the image (and mask), checks them and prepares what the job carries. `maskField` names the
 * field a bad mask is blamed on: OpenAI's edits take the image's own transparency when no mask
 * comes, and then the image is at fault.
 */
export async function prepareCompletion(
  body: CreateGenerationBody,
  generation: Generation,
  config: Config,
  maskField = 'mask',
): Promise<PreparedCompletion> {
  const image = await resolveImage(body.image!, 'image', config);
  // An OpenAI edit without a mask sends the image as its own mask: read and counted once.
  const itself = body.mask?.base64 !== undefined && body.mask.base64 === body.image?.base64;
  const mask = body.mask === undefined ? undefined : itself ? image : await resolveImage(body.mask, 'mask', config);
  const total = image.byteLength + (mask && !itself ? mask.byteLength : 0);
  const cap = config.clipRequestMaxImageBytes;
  if (total > cap)
    throw new ServiceError('images_too_large', `image and mask pass ${cap} bytes together`, {
      errors: [{ field: mask ? 'mask' : 'image', message: `together larger than ${cap} bytes` }],
    });
  const size = await sizeOf(image, 'image', config);
  const grid = generation.image_grid;
  const keepRows = body.keep_rows;
  const kept =
    mask === undefined ? rowsOfCells((r) => r < keepRows!, grid) : await maskCells(mask, size, grid, config, maskField);
  const png = await resized(image, generation.image_size, config);
  return {
    image: png.toString('base64'),
    completion: {
      grid: [...grid],
      image_size: [...generation.image_size],
      keep_rows: keepRows ?? null,
      kept_cells: kept.join('').split('#').length - 1,
      kept,
    },
  };
}
