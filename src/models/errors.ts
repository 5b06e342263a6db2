// The inference core's errors. Each carries a stable `code`; the engine re-creates them on
// the calling side of the worker thread from { name, code, message, index }. The codes are
// listed in src/lib/model-error-codes.ts, where the service's error catalogue includes them.
import { MODEL_ERROR_CODES, type ModelErrorCode } from '../lib/model-error-codes.js';

export type { ModelErrorCode };

export class ModelError extends Error {
  readonly code: ModelErrorCode;
  constructor(code: ModelErrorCode, message: string) {
    super(message);
    this.name = 'ModelError';
    this.code = code;
  }
}

/** An image that cannot be decoded, is empty, or is over the pixel limit; `index` says which. */
export class InvalidImageError extends ModelError {
  readonly index: number;
  constructor(message: string, index: number) {
    super('invalid_image', message);
    this.name = 'InvalidImageError';
    this.index = index;
  }
}

/** Rejection for a canceled call: `name` is 'AbortError', as with fetch and timers/promises. */
export class AbortError extends Error {
  readonly code = 'aborted';
  constructor(message = 'the operation was aborted') {
    super(message);
    this.name = 'AbortError';
  }
}

export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  index?: number;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof InvalidImageError) {
    return { name: error.name, code: error.code, message: error.message, index: error.index };
  }
  if (error instanceof ModelError || error instanceof AbortError) {
    return { name: error.name, code: error.code, message: error.message };
  }
  const e = error instanceof Error ? error : new Error(String(error));
  return { name: e.name, message: e.message };
}

function isModelErrorCode(code: unknown): code is ModelErrorCode {
  return (MODEL_ERROR_CODES as readonly unknown[]).includes(code);
}

export function deserializeError(data: SerializedError): Error {
  if (data.name === 'InvalidImageError') return new InvalidImageError(data.message, data.index ?? 0);
  if (data.name === 'AbortError') return new AbortError(data.message);
  if (data.name === 'ModelError' && isModelErrorCode(data.code)) return new ModelError(data.code, data.message);
  const error = new Error(data.message);
  error.name = data.name;
  return error;
}
