// Images named in requests: base64 decoded here, URLs fetched here. Every outbound fetch of
// an image goes through fetchImage, the one place to restrict where the server may connect.
import type { Config } from '../config.js';
import type { ImageInput } from '../contracts/schemas.js';
import { ServiceError } from '../errors.js';
import { IMAGE_FORMATS, sniffImageFormat } from '../lib/image-format.js';
import { type AllowList, OutboundFetchError, OutboundRefusedError, outboundGet } from '../net/outbound.js';

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export interface FetchLimits {
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
  allow: AllowList;
}

/**
 * GETs an image under the outbound policy (src/net/outbound.ts), with a time and a size
 * limit; a refused address is url_not_allowed, any other failure image_fetch_failed.
 */
export async function fetchImage(url: string, limits: FetchLimits, field: string): Promise<Uint8Array> {
  try {
    return (await outboundGet(url, limits)).bytes;
  } catch (error) {
    // Each refusal names the ways round it: the image's bytes need no fetch at all.
    if (error instanceof OutboundRefusedError) {
      throw new ServiceError(
        'url_not_allowed',
        `${field}: ${error.message}. Send the image itself instead (base64, or a multipart upload), or let the server fetch from this host with OUTBOUND_ALLOW`,
        { errors: [{ field, message: error.message }] },
      );
    }
    const why = error instanceof OutboundFetchError ? error.message : 'the URL cannot be reached';
    throw new ServiceError(
      'image_fetch_failed',
      `${field}: ${why}. Send the image itself instead (base64, or a multipart upload)`,
      { errors: [{ field, message: why }] },
    );
  }
}

export function decodeBase64Image(text: string, field: string, maxBytes: number): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  if (!BASE64.test(compact))
    throw new ServiceError('validation_failed', `${field} is not base64`, {
      errors: [{ field, message: 'is not base64' }],
    });
  const bytes = Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64');
  if (bytes.byteLength === 0)
    throw new ServiceError('invalid_image', `${field} is empty`, { errors: [{ field, message: 'is empty' }] });
  if (bytes.byteLength > maxBytes)
    throw new ServiceError('payload_too_large', `${field} is larger than ${maxBytes} bytes`);
  return bytes;
}

/** Refuses bytes of a format outside the allow-list before any decoder sees them. */
export function assertImageFormat(bytes: Uint8Array, field: string): void {
  if (bytes.byteLength === 0)
    throw new ServiceError('invalid_image', `${field} is empty`, { errors: [{ field, message: 'is empty' }] });
  if (sniffImageFormat(bytes) === undefined) {
    const message = `is not one of the accepted formats (${IMAGE_FORMATS.join(', ')})`;
    throw new ServiceError('unsupported_image_format', `${field} ${message}`, { errors: [{ field, message }] });
  }
}

/** The image's bytes: decoded from base64, or fetched from its URL. */
export async function resolveImage(input: ImageInput, field: string, config: Config): Promise<Uint8Array> {
  if (input.base64 !== undefined) {
    const bytes = decodeBase64Image(input.base64, `${field}.base64`, config.imageMaxBytes);
    assertImageFormat(bytes, `${field}.base64`);
    return bytes;
  }
  const bytes = await fetchImage(
    input.url as string,
    {
      timeoutMs: config.imageFetchTimeoutMs,
      maxBytes: config.imageMaxBytes,
      maxRedirects: config.imageFetchMaxRedirects,
      allow: config.outboundAllow,
    },
    `${field}.url`,
  );
  assertImageFormat(bytes, `${field}.url`);
  return bytes;
}

/** Fetches at once per request: bounds the bytes held past the total cap. */
const FETCH_CONCURRENCY = 4;

/**
 * Every image of one request, in order, a few fetches at a time; refused with 413
 * images_too_large as soon as their bytes together pass CLIP_REQUEST_MAX_IMAGE_BYTES.
 */
export async function resolveImages(inputs: ImageInput[], field: string, config: Config): Promise<Uint8Array[]> {
  const images: Uint8Array[] = new Array(inputs.length);
  const cap = config.clipRequestMaxImageBytes;
  let total = 0;
  let next = 0;
  let failed = false;
  const fetchNext = async (): Promise<void> => {
    // After one failure the request is lost: the other lanes start nothing new.
    while (next < inputs.length && !failed) {
      const index = next++;
      const name = field === 'image' ? field : `${field}[${index}]`;
      try {
        images[index] = await resolveImage(inputs[index], name, config);
        total += images[index].byteLength;
        if (total > cap)
          throw new ServiceError('images_too_large', `the images of this request pass ${cap} bytes together`, {
            errors: [{ field, message: `together larger than ${cap} bytes` }],
          });
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FETCH_CONCURRENCY, inputs.length) }, fetchNext));
  return images;
}
