import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import {
  type AllowList,
  EMPTY_ALLOW_LIST,
  OutboundRefusedError,
  checkOutboundUrl,
  guardedLookup,
} from '../net/outbound.js';
import { WebhookDeliveryError, isRetryableStatus } from './errors.js';
import { signWebhook } from './sign.js';

// package.json sits two folders up from both src/webhooks/ and dist/webhooks/.
const packageJson: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
const version =
  packageJson && typeof packageJson === 'object' && 'version' in packageJson && typeof packageJson.version === 'string'
    ? packageJson.version
    : 'unknown';
export const WEBHOOK_USER_AGENT = `dalle-serve-webhooks/${version}`;

/** Receivers answer with a status; anything past this much body is not worth reading. */
const RESPONSE_BODY_LIMIT_BYTES = 64 * 1024;

export interface WebhookDelivery {
  /** An http(s) URL; redirects are not followed. */
  url: string;
  /** The Standard Webhooks message id: the same for every attempt, so receivers can dedupe. */
  id: string;
  /** The JSON text to POST. */
  body: string;
  /** `whsec_<base64>` */
  secret: string;
  /** Limit for the whole exchange, connect to last byte read. */
  timeoutMs: number;
  /** Aborts the delivery, e.g. on shutdown. */
  signal?: AbortSignal;
  /**
   * Refuse receivers on private, loopback and link-local addresses, checked when connecting.
   * Default false; turn it on wherever clients choose webhook URLs and the worker can reach
   * internal services.
   */
  blockPrivateAddresses?: boolean;
  /** With blockPrivateAddresses: hosts and CIDRs exempt from it (OUTBOUND_ALLOW). */
  allow?: AllowList;
}

export interface WebhookDeliveryResult {
  status: number;
  durationMs: number;
}

function parseTarget(url: string, blockPrivateAddresses: boolean, allow: AllowList | undefined): URL {
  let target: URL | undefined;
  try {
    target = new URL(url);
  } catch {
    target = undefined;
  }
  if (!target || !['http:', 'https:'].includes(target.protocol)) {
    throw new Error('webhook URL must be an absolute http(s) URL');
  }
  if (blockPrivateAddresses) checkOutboundUrl(target, allow ?? EMPTY_ALLOW_LIST);
  return target;
}

/** Everything checkable before connecting; a problem here is the job's, and permanent. */
function prepare(delivery: WebhookDelivery): { target: URL; headers: Record<string, string> } {
  const { url, id, body, secret, timeoutMs, blockPrivateAddresses = false, allow } = delivery;
  const target = parseTarget(url, blockPrivateAddresses, allow);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new Error(`webhook timeoutMs must be a positive number, got ${timeoutMs}`);
  }
  const headers = {
    ...signWebhook(secret, id, Math.floor(Date.now() / 1000), body),
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'user-agent': WEBHOOK_USER_AGENT,
  };
  return { target, headers };
}

/** POSTs the body and resolves with the status once the response is read (or cut off). */
function post(
  target: URL,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
  publicOnly: boolean,
  allow: AllowList | undefined,
): Promise<number> {
  const transport = target.protocol === 'https:' ? https : http;
  // Without an agent, every delivery connects afresh: a pooled socket would skip the lookup.
  const options: http.RequestOptions = {
    method: 'POST',
    headers,
    signal,
    ...(publicOnly ? { lookup: guardedLookup(allow ?? EMPTY_ALLOW_LIST), agent: false } : {}),
  };
  return new Promise((resolve, reject) => {
    const request = transport.request(target, options, (response) => {
      // The status is the answer, taken with the headers: a body still trickling at the
      // timeout (whose abort would otherwise reject) or cut off changes nothing.
      resolve(response.statusCode ?? 0);
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > RESPONSE_BODY_LIMIT_BYTES) response.destroy();
      });
      response.on('error', () => {});
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** A socket error's code (ECONNREFUSED, ETIMEDOUT…) says most; its message otherwise. */
function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return 'code' in error && typeof error.code === 'string' ? error.code : error.message;
}

/**
 * POSTs one signed webhook. Resolves on a 2xx answer; otherwise throws a
 * WebhookDeliveryError (and nothing else) that says whether a retry can help.
 */
export async function deliverWebhook(delivery: WebhookDelivery): Promise<WebhookDeliveryResult> {
  let prepared;
  try {
    prepared = prepare(delivery);
  } catch (error) {
    throw new WebhookDeliveryError(error instanceof Error ? error.message : String(error), {
      retryable: false,
      cause: error,
    });
  }
  const { target, headers } = prepared;
  const { body, timeoutMs, signal, blockPrivateAddresses = false, allow } = delivery;

  // Messages name the origin only: a receiver URL may carry credentials in its path or query.
  const where = target.origin;
  const timeout = AbortSignal.timeout(timeoutMs);
  const started = performance.now();
  let status: number;
  try {
    status = await post(
      target,
      headers,
      body,
      signal ? AbortSignal.any([timeout, signal]) : timeout,
      blockPrivateAddresses,
      allow,
    );
  } catch (error) {
    if (error instanceof OutboundRefusedError) {
      throw new WebhookDeliveryError(error.message, { retryable: false, cause: error });
    }
    const reason = timeout.aborted
      ? `timed out after ${timeoutMs} ms`
      : signal?.aborted
        ? 'was aborted'
        : `failed: ${describeFailure(error)}`;
    throw new WebhookDeliveryError(`webhook delivery to ${where} ${reason}`, { retryable: true, cause: error });
  }
  const durationMs = Math.round(performance.now() - started);
  if (status >= 200 && status < 300) return { status, durationMs };
  throw rejection(where, status);
}

/** The error for a receiver that answered, but not with a 2xx. */
function rejection(where: string, status: number): WebhookDeliveryError {
  if (status >= 300 && status < 400) {
    return new WebhookDeliveryError(`webhook receiver ${where} answered ${status}; redirects are not followed`, {
      retryable: false,
      status,
    });
  }
  return new WebhookDeliveryError(`webhook receiver ${where} answered ${status}`, {
    retryable: isRetryableStatus(status),
    status,
  });
}
