// The images of a CLIP request travel with its job, both ends here. Small ones (most: a
// thumbnail to classify) go inline, base64 in the job's data: nothing more to write, read or
// delete. Larger ones wait beside the job, their bytes (binary, not base64) in one Redis list
// per request, with a TTL a little past the request's wait, deleted as soon as the request
// has its answer or gives up; the job carries `{ key, count }`.
import type { RedisClient } from '../queue/redis.js';
import type { ClipImagesRef, ClipJobImages } from '../contracts/jobs.js';
import type { ServiceKeys } from './redis-keys.js';

/** A request's images up to this many bytes together travel inline in its job. */
export const INLINE_IMAGE_BYTES = 64 * 1024;

/** Past the request's own wait: long enough for a worker that took the job just in time. */
const TTL_MARGIN_MS = 60_000;

/** Images bound for the list beside their job. */
export interface ImagesBeside {
  ref: ClipImagesRef;
  images: Uint8Array[];
}

function byteLength(images: Uint8Array[]): number {
  return images.reduce((sum, image) => sum + image.byteLength, 0);
}

function asBuffer(image: Uint8Array): Buffer {
  return Buffer.from(image.buffer, image.byteOffset, image.byteLength);
}

export class ClipImages {
  constructor(
    private readonly connection: { readonly redis: RedisClient },
    private readonly keys: ServiceKeys,
  ) {}

  /** How request `requestId`'s images travel: inline when small, or by reference to their list. */
  place(requestId: string, images: Uint8Array[]): ClipJobImages {
    if (byteLength(images) <= INLINE_IMAGE_BYTES)
      return { base64: images.map((image) => asBuffer(image).toString('base64')) };
    return { key: this.keys.clipImages(requestId), count: images.length };
  }

  /** Stores the lists of the images going beside their job, until `waitMs` (plus a margin) has passed. */
  async put(beside: ImagesBeside[], waitMs: number): Promise<void> {
    if (beside.length === 0) return;
    const transaction = this.connection.redis.multi();
    for (const { ref, images } of beside)
      transaction.rpush(ref.key, ...images.map(asBuffer)).pexpire(ref.key, waitMs + TTL_MARGIN_MS);
    await transaction.exec();
  }

  /**
   * Each request's images: decoded when inline, read (in one pipeline) when beside the job;
   * null where they are gone (the request gave up, or they expired); none for a request without.
   */
  async load(all: (ClipJobImages | undefined)[]): Promise<(Uint8Array[] | null)[]> {
    const refs = all.filter((images): images is ClipImagesRef => images !== undefined && 'key' in images);
    const lists = new Map<string, Buffer[]>();
    if (refs.length > 0) {
      const pipeline = this.connection.redis.pipeline();
      for (const ref of refs) pipeline.lrangeBuffer(ref.key, 0, -1);
      const replies = (await pipeline.exec()) ?? [];
      refs.forEach((ref, i) => {
        const [error, value] = replies[i] ?? [null, []];
        if (error) throw error;
        if (Array.isArray(value))
          lists.set(
            ref.key,
            value.filter((item): item is Buffer => Buffer.isBuffer(item)),
          );
      });
    }
    return all.map((images) => {
      if (images === undefined) return [];
      if ('base64' in images) return images.base64.map((text) => Buffer.from(text, 'base64'));
      const list = lists.get(images.key) ?? [];
      return list.length === images.count ? list : null;
    });
  }

  async remove(keys: string[]): Promise<void> {
    if (keys.length > 0) await this.connection.redis.del(...keys);
  }
}
