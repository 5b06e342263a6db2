import { createHmac } from 'node:crypto';
import { parseWebhookSecret } from './secret.js';

// Visible ASCII only: the id travels as a header value.
const MESSAGE_ID = /^[\x21-\x7e]{1,256}$/;

/**
 * Standard Webhooks headers for one message: `webhook-signature` is `v1,` + base64
 * HMAC-SHA256 of `<id>.<timestamp>.<body>`, keyed with the secret's decoded bytes.
 */
export function signWebhook(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): Record<string, string> {
  const key = parseWebhookSecret(secret);
  if (typeof id !== 'string' || !MESSAGE_ID.test(id)) {
    throw new Error('webhook id must be 1 to 256 visible ASCII characters');
  }
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new Error(`webhook timestamp must be whole unix seconds, got ${timestampSeconds}`);
  }
  if (typeof body !== 'string') throw new Error('webhook body must be a string');
  const signature = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${signature}`,
  };
}
