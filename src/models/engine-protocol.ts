// Messages between the engine (calling thread) and the inference thread.
import type { SerializedError } from './errors.js';
import type { LogLevel } from './log.js';
import type { EngineOptions, GenerationProgress, PackSummary } from './types.js';

/**
 * What a thread serves: `generate` runs generations (and the CLIP reranking inside them),
 * `clip` classification and embeddings, so that neither waits behind the other.
 */
export type ThreadRole = 'generate' | 'clip';

/** EngineOptions as they cross the thread boundary (everything but the logger), and the role. */
export type ThreadOptions = Omit<EngineOptions, 'logger'> & { role: ThreadRole };

export type CallMethod = 'generate' | 'classify' | 'embedImages' | 'embedTexts';

export type ToThread =
  { type: 'call'; id: number; method: CallMethod; args: unknown[]; cancel?: SharedArrayBuffer } | { type: 'close' };

export type FromThread =
  | { type: 'ready'; packs: PackSummary[] }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'result'; id: number; result: unknown; packs: PackSummary[] }
  | { type: 'error'; id: number; error: SerializedError; packs: PackSummary[] }
  | { type: 'progress'; id: number; progress: GenerationProgress }
  | { type: 'log'; level: LogLevel; obj: object; msg?: string }
  | { type: 'closed' };
