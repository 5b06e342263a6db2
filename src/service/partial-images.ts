// The best image of a running generation so far, kept in Redis while it runs so that a streaming
// client (POST /v1/images/generations with `stream`) can show it before the generation finishes.
import type { Redis } from 'ioredis';
import type { ServiceKeys } from './redis-keys.js';

/** Partial images outlive any stream that waits for them; they are of no use after. */
const PARTIAL_TTL_SECONDS = 3600;

export interface PartialImage {
  /** 0 for the first best image a generation reported, then 1, 2, … */
  index: number;
  png: Buffer;
}

export async function savePartialImage(redis: Redis, keys: ServiceKeys, id: string, image: PartialImage) {
  const key = keys.partialImage(id);
  await redis
    .multi()
    .hset(key, { index: String(image.index), png: image.png })
    .expire(key, PARTIAL_TTL_SECONDS)
    .exec();
}

export async function readPartialImage(redis: Redis, keys: ServiceKeys, id: string): Promise<PartialImage | null> {
  const [index, png] = await redis.hmgetBuffer(keys.partialImage(id), 'index', 'png');
  if (index === null || png === null) return null;
  return { index: Number(index.toString()), png };
}
