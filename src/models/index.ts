// The inference core: packs, CLIP, sampler, decoder, rerank — tensors in, tensors out.
export { createEngine } from './engine.js';
export { AbortError, InvalidImageError, ModelError, type ModelErrorCode } from './errors.js';
export { defaultPackName, listPacks, loadPack, type PackInfo } from './packs.js';
export { validateManifest, type Manifest } from './manifest.js';
export { sha256File, type VerifyOptions } from './checksum-cache.js';
export { parseDevice, VALID_DEVICE_NAMES, type Device } from './providers.js';
export { type Log, silentLog } from './log.js';
export type * from './types.js';
export {
  GenerationScheduler,
  type BatchStats,
  type ChunkRunner,
  type ScheduledGeneration,
  type SchedulerOptions,
} from './scheduler.js';
