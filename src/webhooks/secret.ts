import { randomBytes } from 'node:crypto';

const PREFIX = 'whsec_';
// Canonical, padded base64: what Standard Webhooks libraries decode without surprises.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// The Standard Webhooks spec asks for keys of 24 to 64 bytes.
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;

/** The HMAC key inside a `whsec_<base64>` secret, or an error saying what is wrong with it. */
export function parseWebhookSecret(secret: unknown): Buffer {
  if (typeof secret !== 'string' || !secret.startsWith(PREFIX)) {
    throw new Error(`webhook secret must start with "${PREFIX}" followed by base64`);
  }
  const encoded = secret.slice(PREFIX.length);
  if (!BASE64.test(encoded)) {
    throw new Error(`webhook secret after "${PREFIX}" must be padded base64 (A-Z, a-z, 0-9, "+", "/", "=")`);
  }
  const key = Buffer.from(encoded, 'base64');
  if (key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw new Error(`webhook secret must encode ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes, got ${key.length}`);
  }
  return key;
}

/** A fresh secret: `whsec_` + 24 random bytes in base64. */
export function generateWebhookSecret(): string {
  return PREFIX + randomBytes(MIN_KEY_BYTES).toString('base64');
}
