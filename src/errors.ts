// The error catalogue: every error the API answers with, by stable code. Responses are
// RFC 9457 problem details (application/problem+json) carrying the code.

export const ERRORS = {
  validation_failed: { status: 400, title: 'The request does not match its schema' },
  malformed_body: { status: 400, title: 'The request body cannot be parsed' },
  invalid_image: { status: 400, title: 'An image cannot be decoded' },
  unsupported_image_format: { status: 400, title: 'An image is not PNG, JPEG, WebP, GIF or AVIF' },
  image_fetch_failed: { status: 400, title: 'An image URL cannot be fetched' },
  url_not_allowed: { status: 400, title: 'A URL points where the server may not connect' },
  unknown_model: { status: 400, title: 'No model pack has this name' },
  webhooks_disabled: { status: 400, title: 'Webhooks are not configured on this server' },
  unauthorized: { status: 401, title: 'A valid API key is required' },
  not_found: { status: 404, title: 'Not found' },
  generation_not_finished: { status: 409, title: 'The generation has not finished' },
  generation_finished: { status: 409, title: 'The generation has already finished' },
  idempotency_key_reused: { status: 422, title: 'The Idempotency-Key was used with a different request' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'The request content type is not supported' },
  rate_limited: { status: 429, title: 'Too many requests for this API key; retry later' },
  quota_exceeded: { status: 429, title: 'A quota of this API key is used up; retry later' },
  internal_error: { status: 500, title: 'Internal server error' },
  job_failed: { status: 500, title: 'The job failed' },
  queue_full: { status: 503, title: 'The queue is full; retry later' },
  service_unavailable: { status: 503, title: 'A backing service is unavailable' },
  timeout: { status: 504, title: 'The job did not finish in time' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

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
