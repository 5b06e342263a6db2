// What the routes call: the queues, the generation and CLIP job producers, the object store.
import type { Config } from '../config.js';
import { KeyStore } from '../service/api-keys.js';
import { EventHub } from '../service/event-hub.js';
import { ClipJobs } from '../service/clip-jobs.js';
import { Generations } from '../service/generations.js';
import { PartialImages } from '../service/partial-images.js';
import { serviceKeys } from '../service/redis-keys.js';
import { Queues } from '../queue/queues.js';
import { type ObjectStore, type StorageOptions, createObjectStore } from '../storage/index.js';
import { withSharedFileUrlSecret } from '../service/file-url-secret.js';

export interface Services {
  config: Config;
  queues: Queues;
  store: ObjectStore;
  /** config.storage with the secret the /files/ route checks (shared through Redis when unset). */
  storage: StorageOptions;
  generations: Generations;
  clip: ClipJobs;
  keyStore: KeyStore;
  /** Follows event logs for the open event streams, on one Redis connection. */
  eventHub: EventHub;
  /** The newest best image of a running generation, for streamed partial images. */
  partialImages: PartialImages;
  close(): Promise<void>;
}

export function createServices(config: Config): Services {
  const queues = new Queues(config);
  const keys = serviceKeys(config.queuePrefix);
  const storage = withSharedFileUrlSecret(config.storage, queues, keys);
  const store = createObjectStore(storage);
  const eventHub = new EventHub(config.redis, queues, keys);
  const clip = new ClipJobs(config, queues);
  return {
    config,
    storage,
    queues,
    store,
    generations: new Generations(config, queues, store),
    clip,
    keyStore: new KeyStore(queues, config),
    eventHub,
    partialImages: new PartialImages(queues.redis, keys),
    close: async () => {
      eventHub.close();
      await clip.close();
      await queues.close();
    },
  };
}
