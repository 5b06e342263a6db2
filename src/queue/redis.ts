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

/** The URL as it may be shown: without its password. */
export function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString().replace(/\/$/, '');
}

export class RedisUnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUnreachableError';
  }
}

interface StartupLog {
  warn(obj: object, msg: string): void;
}

/**
 * Waits until Redis at `url` answers PING, for at most `waitMs`, logging each failed try (every
 * few seconds) with the URL and the reason; then gives up with an error that says what to fix.
 * A process that started against a Redis that is not there would otherwise wait silently.
 */
export async function waitForRedis(
  url: string,
  waitMs: number,
  log: StartupLog,
  hint = 'start Redis there, or point REDIS_URL at one that runs',
): Promise<void> {
  const deadline = Date.now() + waitMs;
  let lastError = 'no answer';
  let lastLogged = 0;
  for (;;) {
    const client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: 1000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectionName: 'dalle-serve:startup-check',
    });
    // The socket's own error (ECONNREFUSED, ENOTFOUND…) says more than the failed connect.
    let socketError: string | undefined;
    client.on('error', (error: Error) => (socketError ??= error.message));
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch (error) {
      lastError = socketError ?? (error instanceof Error ? error.message : String(error));
    } finally {
      client.disconnect();
    }
    const now = Date.now();
    if (now >= deadline) break;
    if (now - lastLogged >= 5000) {
      lastLogged = now;
      const secondsLeft = Math.ceil((deadline - now) / 1000);
      log.warn(
        { redisUrl: redactedUrl(url), reason: lastError },
        `Redis does not answer; retrying for ${secondsLeft} s`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, Math.max(0, deadline - now))));
  }
  throw new RedisUnreachableError(
    `Redis at ${redactedUrl(url)} did not answer within ${Math.round(waitMs / 1000)} s (${lastError}): ${hint}`,
  );
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
