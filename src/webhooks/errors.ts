/** Why a delivery failed, and whether trying again later can help. */
export class WebhookDeliveryError extends Error {
  override readonly name = 'WebhookDeliveryError';
  readonly retryable: boolean;
  /** The receiver's HTTP status, when it answered at all. */
  readonly status?: number;

  constructor(message: string, options: { retryable: boolean; status?: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable;
    if (options.status !== undefined) this.status = options.status;
  }
}

/** 408, 429 and 5xx say "not now"; any other 4xx says "never" (a gone or wrong endpoint). */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
