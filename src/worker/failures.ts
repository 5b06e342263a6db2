// A job's failure as BullMQ needs it: the reason `code: message`, and an UnrecoverableError
// when the catalogue says a failure with this code is not worth another attempt.
import { UnrecoverableError } from 'bullmq';
import { formatFailure, parseFailure } from '../contracts/jobs.js';
import { ERRORS, type FailureCode, isFailureCode } from '../errors.js';

export function jobFailure(code: FailureCode, message: string): Error {
  const reason = formatFailure(code, message);
  return ERRORS[code].retry ? new Error(reason) : new UnrecoverableError(reason);
}

/**
 * Any error thrown while running a job, as its failure: an error carrying a catalogue code
 * (the engine's) keeps it, a reason already in `code: message` form keeps its code, anything
 * else fails with `fallback`.
 */
export function failureOf(error: unknown, fallback: FailureCode): Error {
  if (error instanceof UnrecoverableError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  if (isFailureCode(code)) return jobFailure(code, message);
  const parsed = parseFailure(message);
  if (message.startsWith(`${parsed.code}: `)) return jobFailure(parsed.code, parsed.message);
  return jobFailure(fallback, message);
}
