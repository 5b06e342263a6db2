// Streamed partial images, both ends: while a generation runs, its worker records each new best
// candidate as a PNG in Redis; a streaming client (POST /v1/images/generations with `stream`)
// reads the newest one each time the generation's event log moves, before the generation ends.
import type { RedisClient } from '../queue/redis.js';
import { encodeImage } from '../lib/encode-image.js';
import type { Logger } from '../logger.js';
import type { ServiceKeys } from './redis-keys.js';

/** Partial images outlive any stream that waits for them; they are of no use after. */
const PARTIAL_TTL_SECONDS = 3600;

export interface PartialImage {
  /** 0 for the first best image a generation reported, then 1, 2, … */
  index: number;
  png: Buffer;
}

/** RGB pixels, as the engine reports its best candidate so far. */
export interface BestCandidate {
  pixels: Uint8Array;
  width: number;
  height: number;
}

export interface PartialImageRecorder {
  record(best: BestCandidate): void;
  /** Settles once every best image reported so far is written, so none lands after the result. */
  flush(): Promise<void>;
}

export class PartialImages {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: ServiceKeys,
  ) {}

  /** The worker's end: one recorder per running attempt. A failed write is logged, never fatal. */
  recorder(id: string, log: Logger): PartialImageRecorder {
    let index = 0;
    // One write at a time, in order: a later best image never gets overwritten by an earlier one.
    let writes = Promise.resolve();
    return {
      record: (best) => {
        const next = index++;
        writes = writes
          .then(async () =>
            this.save(id, { index: next, png: await encodeImage(best.pixels, best.width, best.height, 'png') }),
          )
          .catch((error) => log.warn({ err: error }, 'storing a partial image failed'));
      },
      flush: () => writes,
    };
  }

  /** The stream's end: the newest best image, when it is newer than `index`. */
  async newerThan(id: string, index: number): Promise<PartialImage | null> {
    const [stored, png] = await this.redis.hmgetBuffer(this.keys.partialImage(id), 'index', 'png');
    if (stored === null || png === null) return null;
    const image = { index: Number(stored.toString()), png };
    return image.index > index ? image : null;
  }

  private async save(id: string, image: PartialImage): Promise<void> {
    const key = this.keys.partialImage(id);
    await this.redis
      .multi()
      .hset(key, { index: String(image.index), png: image.png })
      .expire(key, PARTIAL_TTL_SECONDS)
      .exec();
  }
}
