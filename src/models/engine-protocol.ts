// Messages between the engine (calling thread) and the inference thread.
import type { SerializedError } from './errors.js';
import type { LogLevel } from './log.js';
import type { ChunkResult, ClassifyOutcome, ClassifyRequest, EngineOptions, MixedChunk, PackSummary } from './types.js';

/**
 * What a thread serves: `generate` runs generation chunks (and the CLIP reranking inside them),
 * `clip` classification and embeddings, so that neither waits behind the other.
 */
export type ThreadRole = 'generate' | 'clip';

/** EngineOptions as they cross the thread boundary (everything but the logger), and the role. */
export type ThreadOptions = Omit<EngineOptions, 'logger'> & { role: ThreadRole };

/** Every call the threads serve: its arguments (a tuple) and its result. */
export interface EngineCalls {
  runChunk: { args: [chunk: MixedChunk]; result: ChunkResult };
  classify: { args: [requests: ClassifyRequest[]]; result: ClassifyOutcome[] };
  embedImages: { args: [images: Uint8Array[], model: string | undefined]; result: Float32Array[] };
  embedTexts: { args: [texts: string[], model: string | undefined]; result: Float32Array[] };
  countTextTokens: { args: [texts: string[], model: string | undefined]; result: number[] };
}

export type CallMethod = keyof EngineCalls;

/** One call message per method, discriminated by `method`, so the thread reads typed args. */
export interface CallOf<M extends CallMethod> {
  type: 'call';
  id: number;
  method: M;
  args: EngineCalls[M]['args'];
  /** Raised (set to 1) to stop the call at its next checkpoint. */
  cancel?: SharedArrayBuffer;
}

export type CallMessage = { [M in CallMethod]: CallOf<M> }[CallMethod];

export type ToThread = CallMessage | { type: 'close' };

/** A call's answer names its method, so the engine checks it against the call it made. */
export interface AnswerOf<M extends CallMethod> {
  method: M;
  result: EngineCalls[M]['result'];
}

export type Answer = { [M in CallMethod]: AnswerOf<M> }[CallMethod];

export type ResultMessage = Answer & { type: 'result'; id: number; packs: PackSummary[] };

/** Narrows an answer to the result of the method that was called. */
export function isAnswerOf<M extends CallMethod>(
  method: M,
  answer: { method: CallMethod; result: unknown },
): answer is AnswerOf<M> {
  return answer.method === method;
}

export type FromThread =
  | { type: 'ready'; packs: PackSummary[] }
  | { type: 'init-error'; error: SerializedError }
  | ResultMessage
  | { type: 'error'; id: number; error: SerializedError; packs: PackSummary[] }
  | { type: 'log'; level: LogLevel; obj: object; msg?: string }
  | { type: 'closed' };
