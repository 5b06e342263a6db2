// The secret that signs /files/ URLs when FILE_URL_SECRET is unset: made once, by whichever
// process starts first (SET NX), and read by every API and worker on the same Redis, so a
// URL a worker signs for a webhook is one the API accepts.
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../queue/redis.js';
import type { StorageOptions } from '../storage/index.js';
import type { ServiceKeys } from './redis-keys.js';

/** A source that asks Redis until it has the shared secret, then keeps it. */
export function sharedFileUrlSecret(
  connection: { readonly redis: RedisClient },
  keys: ServiceKeys,
): () => Promise<string> {
  let secret: Promise<string> | undefined;
  return () => {
    secret ??= (async () => {
      const redis = connection.redis;
      await redis.set(keys.fileUrlSecret, randomBytes(32).toString('hex'), 'NX');
      const stored = await redis.get(keys.fileUrlSecret);
      if (stored === null) throw new Error('the shared file URL secret vanished from RedisClient; set FILE_URL_SECRET');
      return stored;
    })().catch((error: unknown) => {
      secret = undefined;
      throw error;
    });
    return secret;
  };
}

/** The storage options with the shared secret in place of a FILE_URL_SECRET that was not set. */
export function withSharedFileUrlSecret(
  storage: StorageOptions,
  connection: { readonly redis: RedisClient },
  keys: ServiceKeys,
): StorageOptions {
  if (storage.kind !== 'fs' || storage.signingSecret !== undefined) return storage;
  return { ...storage, signingSecret: sharedFileUrlSecret(connection, keys) };
}
