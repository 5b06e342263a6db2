// What the routes call: the queues, the generation and CLIP job producers, the object store.
import type { Config } from '../config.js';
import { KeyStore } from '../service/api-keys.js';
import { ClipJobs } from '../service/clip-jobs.js';
import { Generations } from '../service/generations.js';
import { Queues } from '../queue/queues.js';
import { type ObjectStore, createObjectStore } from '../storage/index.js';

export interface Services {
  config: Config;
  queues: Queues;
  store: ObjectStore;
  generations: Generations;
  clip: ClipJobs;
  keyStore: KeyStore;
  close(): Promise<void>;
}

export function createServices(config: Config): Services {
  const queues = new Queues(config);
  const store = createObjectStore(config.storage);
  return {
    config,
    queues,
    store,
    generations: new Generations(config, queues, store),
    clip: new ClipJobs(config, queues),
    keyStore: new KeyStore(queues, config),
    close: () => queues.close(),
  };
}
