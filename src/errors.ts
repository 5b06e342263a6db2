// The error catalogue: every error code of the service, once, with the HTTP status of a
// response carrying it, whether a job failing with it is tried again, and its title. API
// responses are RFC 9457 problem details (application/problem+json) carrying the code; a
// job's failure reason is `code: message` (src/contracts/jobs.ts), and the engine's codes
// (src/lib/model-error-codes.ts) are job failure codes too. docs/errors.md lists them all.
import type { ModelErrorCode } from './lib/model-error-codes.js';

/** `response`: a problem details answer of the API; `job`: a job's failure (a generation's `error.code`). */
export type ErrorSurface = 'response' | 'job';

export interface ErrorSpec {
  status: number;
  /** For a job failing with this code: whether it is tried again (with backoff) while attempts remain. */
  retry: boolean;
  in: readonly ErrorSurface[];
  title: string;
}

const RESPONSE = ['response'] as const;
const JOB = ['job'] as const;
const BOTH = ['response', 'job'] as const;

export const ERRORS = {
  validation_failed: { status: 400, retry: false, in: BOTH, title: 'The request does not match its schema' },
  malformed_body: { status: 400, retry: false, in: RESPONSE, title: 'The request body cannot be parsed' },
  invalid_image: { status: 400, retry: false, in: BOTH, title: 'An image cannot be decoded' },
  unsupported_image_format: {
    status: 400,
    retry: false,
    in: RESPONSE,
    title: 'An image is not PNG, JPEG, WebP, GIF or AVIF',
  },
  invalid_mask: {
    status: 400,
    retry: false,
    in: RESPONSE,
    title: 'A mask does not mark what to regenerate (its size, or no transparent pixel)',
  },
  completion_unsupported: {
    status: 400,
    retry: false,
    in: RESPONSE,
    title: 'The model cannot complete images (its pack has no image encoder)',
  },
  image_fetch_failed: { status: 400, retry: false, in: RESPONSE, title: 'An image URL cannot be fetched' },
  url_not_allowed: { status: 400, retry: false, in: RESPONSE, title: 'A URL points where the server may not connect' },
  unknown_model: { status: 400, retry: false, in: BOTH, title: 'No model pack has this name' },
  webhooks_disabled: { status: 400, retry: false, in: RESPONSE, title: 'Webhooks are not configured on this server' },
  unauthorized: { status: 401, retry: false, in: RESPONSE, title: 'A valid API key is required' },
  not_found: { status: 404, retry: false, in: RESPONSE, title: 'Not found' },
  generation_not_finished: { status: 409, retry: false, in: RESPONSE, title: 'The generation has not finished' },
  generation_finished: { status: 409, retry: false, in: RESPONSE, title: 'The generation has already finished' },
  canceled: { status: 409, retry: false, in: JOB, title: 'The job was canceled' },
  idempotency_key_reused: {
    status: 422,
    retry: false,
    in: RESPONSE,
    title: 'The Idempotency-Key was used with a different request',
  },
  payload_too_large: { status: 413, retry: false, in: RESPONSE, title: 'The request body is too large' },
  images_too_large: {
    status: 413,
    retry: false,
    in: RESPONSE,
    title: 'The images of the request are too large together',
  },
  unsupported_media_type: {
    status: 415,
    retry: false,
    in: RESPONSE,
    title: 'The request content type is not supported',
  },
  rate_limited: { status: 429, retry: false, in: RESPONSE, title: 'Too many requests for this API key; retry later' },
  quota_exceeded: { status: 429, retry: false, in: RESPONSE, title: 'A quota of this API key is used up; retry later' },
  internal_error: { status: 500, retry: true, in: BOTH, title: 'Internal server error' },
  job_failed: { status: 500, retry: true, in: RESPONSE, title: 'The job failed' },
  generation_failed: { status: 500, retry: true, in: JOB, title: 'The generation failed' },
  storage_failed: { status: 503, retry: true, in: JOB, title: 'The object store refused or did not answer' },
  worker_lost: { status: 500, retry: true, in: JOB, title: 'The worker running the job stopped answering' },
  invalid_device: { status: 500, retry: true, in: JOB, title: 'The configured inference device is not valid' },
  device_unavailable: { status: 503, retry: true, in: JOB, title: 'The inference device is not available' },
  pack_invalid_manifest: { status: 500, retry: true, in: JOB, title: 'A model pack manifest is not valid' },
  pack_file_missing: { status: 500, retry: true, in: JOB, title: 'A model pack file is missing' },
  pack_checksum_mismatch: { status: 500, retry: true, in: JOB, title: 'A model pack file does not match its checksum' },
  engine_closed: { status: 503, retry: true, in: JOB, title: 'The inference engine stopped' },
  queue_full: { status: 503, retry: false, in: RESPONSE, title: 'The queue is full; retry later' },
  service_unavailable: { status: 503, retry: false, in: RESPONSE, title: 'A backing service is unavailable' },
  timeout: { status: 504, retry: false, in: RESPONSE, title: 'The job did not finish in time' },
} as const satisfies Record<string, ErrorSpec> & Record<ModelErrorCode, ErrorSpec>;

/** Every code in the catalogue. */
export type CatalogueCode = keyof typeof ERRORS;
type CodesIn<S extends ErrorSurface> = {
  [C in CatalogueCode]: S extends (typeof ERRORS)[C]['in'][number] ? C : never;
}[CatalogueCode];
/** A code the API answers with. */
export type ErrorCode = CodesIn<'response'>;
/** A code a job fails with: a generation's `error.code`. */
export type FailureCode = CodesIn<'job'>;

const CATALOGUE_CODES = Object.keys(ERRORS) as CatalogueCode[];
export const ERROR_CODES = CATALOGUE_CODES.filter((code): code is ErrorCode =>
  (ERRORS[code].in as readonly ErrorSurface[]).includes('response'),
);
export const FAILURE_CODES = CATALOGUE_CODES.filter((code): code is FailureCode =>
  (ERRORS[code].in as readonly ErrorSurface[]).includes('job'),
);

export function isFailureCode(code: unknown): code is FailureCode {
  return (FAILURE_CODES as readonly unknown[]).includes(code);
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return (ERROR_CODES as readonly unknown[]).includes(code);
}

/** One field that failed validation: a dotted path (`images[0].url`) and why. */
export interface FieldError {
  field: string;
  message: string;
}

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  errors?: FieldError[];
}

export class ServiceError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: { errors?: FieldError[]; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'ServiceError';
    this.status = ERRORS[code].status;
  }
}

/** A validation_failed error for one field. */
export function fieldError(field: string, message: string): ServiceError {
  return new ServiceError('validation_failed', `${field} ${message}`, { errors: [{ field, message }] });
}

export function problemType(code: ErrorCode): string {
  return `urn:dalle-serve:error:${code}`;
}

export function toProblem(error: ServiceError, instance?: string): ProblemDetails {
  const problem: ProblemDetails = {
    type: problemType(error.code),
    title: ERRORS[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
  };
  if (instance !== undefined) problem.instance = instance;
  if (error.extra.errors) problem.errors = error.extra.errors;
  return problem;
}
