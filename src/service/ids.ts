import { randomBytes } from 'node:crypto';

/**
 * A UUIDv7: 48 bits of milliseconds then random bits. Its text sorts by creation time, so a
 * Redis sorted set of ids lists generations newest first without a separate timestamp.
 */
export function newGenerationId(now = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (bytes[6] & 0x0f);
  bytes[8] = 0x80 | (bytes[8] & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const GENERATION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Anything else, whatever its shape, is simply an unknown generation. */
export function isGenerationId(value: string): boolean {
  return GENERATION_ID.test(value);
}

/** The lexical lower bound of ids created at or after `ms`. */
export function idPrefixAt(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}`;
}
