// Images named in requests: base64 decoded here, URLs fetched here. Every outbound fetch of
// an image goes through fetchImage, the one place to restrict where the server may connect.
import type { Config } from '../config.js';
import type { ImageInput } from '../contracts/schemas.js';
import { ServiceError } from '../errors.js';

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export interface FetchLimits {
  timeoutMs: number;
  maxBytes: number;
}

/** GETs an image with a time limit and a size limit; any failure is image_fetch_failed. */
export async function fetchImage(url: string, limits: FetchLimits, field: string): Promise<Uint8Array> {
  const fail = (why: string) =>
    new ServiceError('image_fetch_failed', `${field}: ${why}`, { errors: [{ field, message: why }] });
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(limits.timeoutMs), redirect: 'follow' });
  } catch (error) {
    throw fail(error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${limits.timeoutMs} ms` : 'the URL cannot be reached');
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw fail(`the URL answered HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > limits.maxBytes) {
    await response.body.cancel();
    throw fail(`the image is larger than ${limits.maxBytes} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body) {
      size += chunk.byteLength;
      if (size > limits.maxBytes) throw fail(`the image is larger than ${limits.maxBytes} bytes`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof ServiceError) throw error;
    throw fail('the download broke off');
  }
  return Buffer.concat(chunks);
}

export function decodeBase64Image(text: string, field: string, maxBytes: number): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  if (!BASE64.test(compact)) throw new ServiceError('validation_failed', `${field} is not base64`, { errors: [{ field, message: 'is not base64' }] });
  const bytes = Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64');
  if (bytes.byteLength === 0) throw new ServiceError('invalid_image', `${field} is empty`, { errors: [{ field, message: 'is empty' }] });
  if (bytes.byteLength > maxBytes) throw new ServiceError('payload_too_large', `${field} is larger than ${maxBytes} bytes`);
  return bytes;
}

/** The image's bytes, base64-encoded for the job payload. */
export async function resolveImage(input: ImageInput, field: string, config: Config): Promise<string> {
  if (input.base64 !== undefined) {
    return Buffer.from(decodeBase64Image(input.base64, `${field}.base64`, config.imageMaxBytes)).toString('base64');
  }
  const bytes = await fetchImage(input.url as string, { timeoutMs: config.imageFetchTimeoutMs, maxBytes: config.imageMaxBytes }, `${field}.url`);
  return Buffer.from(bytes).toString('base64');
}
