// A worker process for the soak: the real worker, its image store wrapped so that every write
// fails while the soak's control file exists (the soak's storage fault; nowhere else).
import { existsSync } from 'node:fs';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { exitOnConfigError, onShutdownSignal } from '../../src/process.js';
import { type ObjectStore, createObjectStore } from '../../src/storage/index.js';
import { startWorker } from '../../src/worker/worker.js';

function failingWhile(store: ObjectStore, controlFile: string): ObjectStore {
  const check = () => {
    if (existsSync(controlFile)) throw new Error('storage unavailable (soak fault)');
  };
  return {
    put: async (key, body, contentType) => {
      check();
      await store.put(key, body, contentType);
    },
    get: (key) => store.get(key),
    delete: (key) => store.delete(key),
    deletePrefix: (prefix) => store.deletePrefix(prefix),
    url: (key, expiresInSeconds) => store.url(key, expiresInSeconds),
  };
}

const config = exitOnConfigError(() => loadConfig(process.env));
const logger = createLogger(config.logLevel, 'worker');
const controlFile = process.env.SOAK_STORAGE_FAULT_FILE ?? '';
const store = failingWhile(createObjectStore(config.storage), controlFile);
const worker = await startWorker(config, logger, { store }).catch((error: unknown) => {
  logger.fatal({ err: error }, 'worker failed to start');
  process.exit(1);
});
onShutdownSignal(logger, () => worker.stop());
