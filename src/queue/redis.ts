import { type ChainableCommander, Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisNode, RedisTopology } from '../config.js';

/** A connection on any topology: ioredis's Cluster speaks the same commands as one server. */
export type RedisClient = Redis | Cluster;

/** Whether a demoted master's refusal means "reconnect to the new one" (Sentinel failover). */
function isReadOnlyError(error: Error): boolean {
  return error.message.startsWith('READONLY');
}

/**
 * A connection. BullMQ workers and blocking readers need `maxRetriesPerRequest: null`;
 * request-path commands fail after a few retries so that the API answers 503 rather than hang.
 */
export function createRedis(
  topology: RedisTopology,
  purpose: 'blocking' | 'commands',
  options: RedisOptions = {},
): RedisClient {
  const common: RedisOptions = {
    maxRetriesPerRequest: purpose === 'blocking' ? null : 2,
    connectionName: `dalle-serve:${purpose}`,
    ...options,
  };
  switch (topology.kind) {
    case 'single':
      return new Redis(topology.url, common);
    case 'sentinel':
      return reconnectingAfterStrayClose(new Redis(sentinelOptions(topology, common)));
    case 'cluster': {
      // What a Cluster client decides for itself rather than per node connection.
      const { lazyConnect, retryStrategy, enableOfflineQueue, ...nodeOptions } = common;
      return new Cluster(topology.nodes, {
        lazyConnect,
        clusterRetryStrategy: retryStrategy,
        enableOfflineQueue,
        redisOptions: { ...nodeOptions, password: topology.password },
        // Every read at the masters: a replica would show a generation's record late.
        scaleReads: 'master',
      });
    }
  }
}

/**
 * Reconnects a Sentinel client that ended without being closed. ioredis's failover detector
 * closes the connector when the sentinels announce a new master; if that announcement comes
 * while the client is asking the sentinels where the master is (its master was killed, so it has
 * no socket), the connect attempt fails with "Connection is closed" and ioredis ends the client
 * for good: every command after it fails and BullMQ's workers stop taking jobs. That end comes
 * straight from `connecting` with no close before it and without `disconnect()` having been
 * called; an end the caller asked for, or a close after a connection, goes the usual way.
 */
function reconnectingAfterStrayClose(client: Redis): Redis {
  let closed = false;
  client.on('connecting', () => (closed = false));
  client.on('close', () => (closed = true));
  client.on('end', () => {
    // ioredis marks a disconnect() it was asked for until the next close; no public flag says so.
    const askedToClose = (client as unknown as { manuallyClosing: boolean }).manuallyClosing;
    if (closed || askedToClose) return;
    setTimeout(() => {
      // A failed attempt is reported by the client's 'error' events, and retried by ioredis.
      if (client.status === 'end') client.connect().catch(() => undefined);
    }, STRAY_CLOSE_RECONNECT_MS).unref();
  });
  return client;
}

const STRAY_CLOSE_RECONNECT_MS = 100;

/** The slot of `key` on a Redis Cluster: CRC16 (XMODEM) of its hash tag, or of the whole key, mod 16384. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** The connection that holds `key`: on a Cluster its slot's master (once known), else `redis`. */
function holderOf(redis: RedisClient, key: string): Redis | undefined {
  if (!(redis instanceof Cluster)) return redis;
  const master = redis.slots[keySlot(key)]?.[0];
  return redis.nodes('master').find(({ options }) => `${options.host}:${options.port}` === master);
}

/**
 * The socket that carried a write to `key`, taken as soon as the write's reply arrives (before
 * anything else can run). WAIT counts the writes of its own socket only: on a socket opened
 * since, say to the master a failover promoted, it answers at once whatever the earlier write's
 * fate, so a confirmation counts only on the socket the write went through.
 */
export type WriteMark = { readonly socket: unknown };

export function writeMark(redis: RedisClient, key: string): WriteMark {
  return { socket: holderOf(redis, key)?.stream };
}

/**
 * Waits (WAIT) until the writes made through `written`'s socket reached `replicas` replicas, for
 * at most `timeoutMs`; answers how many did. Redis replicates asynchronously: a write a master
 * acknowledged is lost when a replica that lacks it is promoted, and a master that just lost its
 * replica to a failover still takes writes for a moment, so "no replica to wait for" is no
 * excuse: fewer than asked is in doubt, and so is a write whose socket has been replaced.
 */
export async function waitForReplicas(
  redis: RedisClient,
  key: string,
  replicas: number,
  timeoutMs: number,
  written: WriteMark,
): Promise<number> {
  if (replicas === 0) return 0;
  const holder = holderOf(redis, key);
  if (!holder || holder.stream !== written.socket || written.socket === undefined) return 0;
  const reached = await holder.wait(replicas, timeoutMs);
  return holder.stream === written.socket ? reached : 0;
}

/** Another connection like `redis` (same server or cluster), with `options` for each server. */
export function duplicateClient(redis: RedisClient, options: RedisOptions): RedisClient {
  if (redis instanceof Cluster)
    return redis.duplicate(undefined, { redisOptions: { ...redis.options.redisOptions, ...options } });
  const copy = redis.duplicate(options);
  return redis.options.sentinels ? reconnectingAfterStrayClose(copy) : copy;
}

function sentinelOptions(topology: Extract<RedisTopology, { kind: 'sentinel' }>, common: RedisOptions): RedisOptions {
  return {
    ...common,
    sentinels: topology.sentinels,
    name: topology.master,
    password: topology.password,
    sentinelPassword: topology.sentinelPassword,
    // A failover announced by the sentinels drops the connection to the old master at once,
    // instead of leaving blocked commands waiting on a server that no longer takes work.
    failoverDetector: true,
    // The failover detector's own connections to the sentinels are not retried once lost (ioredis
    // retries them every minute, forever): one whose detector a close raced with leaks and keeps
    // the process alive. The detector is made anew at each connection, and a missed announcement
    // still ends in a reconnect, when the sentinels close the demoted master's clients.
    sentinelReconnectStrategy: () => null,
    // A write that reaches the old master, now a replica, reconnects through the sentinels.
    reconnectOnError: isReadOnlyError,
  };
}

/**
 * A BullMQ worker's connection: options for one server, so that BullMQ makes and closes its
 * connections itself; a client for Sentinel and Cluster (only a client reaches them), which the
 * caller closes after the worker.
 */
export function workerConnection(
  topology: RedisTopology,
  connectionName: string,
): { url: string; maxRetriesPerRequest: null; connectionName: string } | RedisClient {
  if (topology.kind === 'single') return { url: topology.url, maxRetriesPerRequest: null, connectionName };
  return createRedis(topology, 'blocking', { connectionName });
}

/** A shorter name for logs and errors: the URL without its password, or the nodes. */
export function describeTopology(topology: RedisTopology): string {
  const nodes = (list: RedisNode[]) => list.map(({ host, port }) => `${host}:${port}`).join(',');
  switch (topology.kind) {
    case 'single':
      return redactedUrl(topology.url);
    case 'sentinel':
      return `sentinel master "${topology.master}" via ${nodes(topology.sentinels)}`;
    case 'cluster':
      return `cluster ${nodes(topology.nodes)}`;
  }
}

/** The servers that hold keys: every master of a Cluster (once it knows them), else the one server. */
export async function keyHolders(redis: RedisClient): Promise<Redis[]> {
  if (!(redis instanceof Cluster)) return [redis];
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  return redis.nodes('master');
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
 * Waits until Redis (`topology`) answers PING, for at most `waitMs`, logging each failed try (every
 * few seconds) with the URL and the reason; then gives up with an error that says what to fix.
 * A process that started against a Redis that is not there would otherwise wait silently.
 */
export async function waitForRedis(
  topology: RedisTopology,
  waitMs: number,
  log: StartupLog,
  hint = 'start Redis there, or point REDIS_URL at one that runs',
): Promise<void> {
  const deadline = Date.now() + waitMs;
  let lastError = 'no answer';
  let lastLogged = 0;
  for (;;) {
    const client = createRedis(topology, 'commands', {
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
      if ((await client.ping()) === 'PONG') {
        await warnOnEviction(client, log);
        return;
      }
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
        { redis: describeTopology(topology), reason: lastError },
        `Redis does not answer; retrying for ${secondsLeft} s`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, Math.max(0, deadline - now))));
  }
  throw new RedisUnreachableError(
    `Redis at ${describeTopology(topology)} did not answer within ${Math.round(waitMs / 1000)} s (${lastError}): ${hint}`,
  );
}

/**
 * Warns when a Redis that holds keys may evict them (maxmemory-policy other than noeviction):
 * an evicted job or generation record is work lost without a trace. A Redis that refuses
 * CONFIG (some managed ones) is not checked.
 */
async function warnOnEviction(redis: RedisClient, log: StartupLog): Promise<void> {
  for (const server of await keyHolders(redis)) {
    const reply = await server.config('GET', 'maxmemory-policy').catch(() => []);
    const policy = Array.isArray(reply) ? reply[1] : undefined;
    if (typeof policy === 'string' && policy !== 'noeviction') {
      log.warn(
        { redis: `${server.options.host}:${server.options.port}`, maxmemoryPolicy: policy },
        `Redis may evict keys (maxmemory-policy ${policy}): set it to noeviction, or jobs and generations can vanish under memory pressure`,
      );
    }
  }
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
