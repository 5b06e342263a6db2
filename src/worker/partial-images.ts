// Records each new best candidate a generation reports while reranking (the engine's progress
// carries it as `best`) as a PNG in Redis, for streamed partial images; the rest of the
// progress goes on to the usual reporter.
import type { Redis } from 'ioredis';
import type { GenerationProgress as JobProgress } from '../contracts/status.js';
import type { Logger } from '../logger.js';
import type { GenerationProgress } from '../models/types.js';
import type { ServiceKeys } from '../service/redis-keys.js';
import { savePartialImage } from '../service/partial-images.js';
import { encodeImage } from './encode.js';

export interface PartialImageStore {
  redis: Redis;
  keys: ServiceKeys;
}

export interface PartialImageRecorder {
  onProgress(progress: GenerationProgress): void;
  /** Settles once every best image reported so far is written, so none lands after the result. */
  flush(): Promise<void>;
}

export function recordPartialImages(
  store: PartialImageStore | undefined,
  id: string,
  report: (progress: JobProgress) => void,
  log: Logger,
): PartialImageRecorder {
  let index = 0;
  // One write at a time, in order: a later best image never gets overwritten by an earlier one.
  let writes = Promise.resolve();
  return {
    onProgress({ best, ...progress }) {
      report(progress);
      if (!best || !store) return;
      const image = { ...best, index: index++ };
      writes = writes
        .then(async () => {
          const png = await encodeImage(image.pixels, image.width, image.height, 'png');
          await savePartialImage(store.redis, store.keys, id, { index: image.index, png });
        })
        .catch((error) => log.warn({ err: error }, 'storing a partial image failed'));
    },
    flush: () => writes,
  };
}
