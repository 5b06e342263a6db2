import { type ChainableCommander, Redis, type RedisOptions } from 'ioredis';

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

/** The replies of a MULTI or a pipeline, in order; the first failed command's error is thrown. */
export async function execReplies(batch: ChainableCommander): Promise<unknown[]> {
  const results = await batch.exec();
  if (!results) throw new Error('the transaction was discarded');
  return results.map(([error, value]: [Error | null, unknown]) => {
    if (error) throw error;
    return value;
  });
}

/** A hash as HGETALL answers it: field names to values. */
export function isFieldMap(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((field) => typeof field === 'string')
  );
}
