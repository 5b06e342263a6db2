import { Redis, type RedisOptions } from 'ioredis';

/**
 * A Redis connection. BullMQ workers and blocking readers need `maxRetriesPerRequest: null`;
 * request-path commands fail after a few retries so that the API answers 503 rather than hang.
 */
export function createRedis(url: string, purpose: 'blocking' | 'commands', options: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: purpose === 'blocking' ? null : 2,
    connectionName: `dalle-serve:${purpose}`,
    ...options,
  });
}
