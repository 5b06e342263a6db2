// The images of a CLIP job wait beside it, not inside it: their bytes in one Redis list per
// job (binary, not base64 in the job's JSON), with a TTL a little past the request's wait,
// deleted as soon as the request has its answer or gives up.
import type { Redis } from 'ioredis';
import type { ClipImagesRef } from '../contracts/jobs.js';
import type { ServiceKeys } from './redis-keys.js';

/** Past the request's own wait: long enough for a worker that took the job just in time. */
const TTL_MARGIN_MS = 60_000;

export class ClipImages {
  constructor(
    private readonly connection: { readonly redis: Redis },
    private readonly keys: ServiceKeys,
  ) {}

  /** Where `count` images of job `jobId` are kept. */
  ref(jobId: string, count: number): ClipImagesRef {
    return { key: this.keys.clipImages(jobId), count };
  }

  /** Stores the images of job `jobId` until `waitMs` (plus a margin) has passed. */
  async put(jobId: string, images: Uint8Array[], waitMs: number): Promise<ClipImagesRef> {
    const { key } = this.ref(jobId, images.length);
    const buffers = images.map((image) => Buffer.from(image.buffer, image.byteOffset, image.byteLength));
    await this.connection.redis
      .multi()
      .rpush(key, ...buffers)
      .pexpire(key, waitMs + TTL_MARGIN_MS)
      .exec();
    return { key, count: images.length };
  }

  /** The images, or null when they are gone (the request gave up, or they expired). */
  async load(ref: ClipImagesRef): Promise<Uint8Array[] | null> {
    const images = await this.connection.redis.lrangeBuffer(ref.key, 0, -1);
    return images.length === ref.count ? images : null;
  }

  async remove(ref: ClipImagesRef | undefined): Promise<void> {
    if (ref) await this.connection.redis.del(ref.key);
  }
}
