import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SigningSecretSource } from './object-store.js';
import { isValidKey } from './validation.js';

const MIN_SECRET_LENGTH = 16;
const EXPIRES = /^[0-9]{1,12}$/;
const SIGNATURE = /^[0-9a-f]{64}$/;

export function assertSigningSecret(secret: unknown): asserts secret is string {
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`file URL signing secret must be a string of at least ${MIN_SECRET_LENGTH} characters`);
  }
}

/** The secret itself, or what its source resolves to (checked the same way). */
export async function resolveSigningSecret(secret: string | SigningSecretSource | undefined): Promise<string> {
  const value = typeof secret === 'function' ? await secret() : secret;
  assertSigningSecret(value);
  return value;
}

// A newline cannot occur in a key, so `key\nexpires` is unambiguous where `key + expires`
// would let `a1` + `23` and `a` + `123` share a signature.
function sign(secret: string, key: string, expires: string): string {
  return createHmac('sha256', secret).update(`${key}\n${expires}`).digest('hex');
}

/** The query string that authorises a GET of `key` until `expires` (unix seconds). */
export function fileUrlQuery(secret: string, key: string, expires: number): string {
  const expiresText = String(expires);
  return `expires=${expiresText}&signature=${sign(secret, key, expiresText)}`;
}

/**
 * True when `signature` authorises `key` and `expires` has not passed. Every argument may
 * come from a hostile request: anything malformed is simply false.
 */
export function verifyFileSignature(
  signingSecret: string,
  key: string,
  expires: string,
  signature: string,
  now: Date = new Date(),
): boolean {
  if (typeof expires !== 'string' || !EXPIRES.test(expires)) return false;
  if (typeof signature !== 'string' || !SIGNATURE.test(signature)) return false;
  if (!isValidKey(key)) return false;
  if (Number(expires) * 1000 <= now.getTime()) return false;
  const expected = Buffer.from(sign(signingSecret, key, expires), 'hex');
  return timingSafeEqual(expected, Buffer.from(signature, 'hex'));
}
