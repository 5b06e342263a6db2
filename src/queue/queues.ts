// The BullMQ queues with their job defaults: attempts, backoff, retention. Created on first
// use so that building the API (e.g. to write the OpenAPI document) needs no Redis.
import { Queue } from 'bullmq';
import type { Config } from '../config.js';
import type { QueueData, QueueJobName, QueueResult } from '../contracts/jobs.js';
import { QUEUE_NAMES, type QueueName } from '../contracts/queues.js';
import { ServiceError } from '../errors.js';
import { type RedisClient, createRedis } from './redis.js';

const CONNECT_TIMEOUT_MS = 2000;
/**
 * BullMQ's event stream per queue (`<queue>:events`), trimmed to about this many entries
 * (BullMQ's default is 10,000). Nothing of ours reads it (CLIP replies are published, a
 * generation has its own event log), so it keeps only the last moments, for an operator's
 * dashboard: every job adds four or more entries that Redis would otherwise hold on to.
 */
const EVENTS_KEPT = 100;

export type TypedQueue<Q extends QueueName> = Queue<QueueData<Q>, QueueResult<Q>, QueueJobName<Q>>;

/**
 * The prefix of one queue's keys, BullMQ's and ours used with them: `<prefix>:{<queue>}`. The
 * braces make the queue's name the Redis Cluster hash tag, so a queue's keys share a slot (its
 * Lua scripts need that) and different queues spread over the slots.
 */
export function queueKeyPrefix(prefix: string, queue: QueueName): string {
  return `${prefix}:{${queue}}`;
}

/** A value made on first use. */
class Lazy<T> {
  value: T | undefined;
  get(create: () => T): T {
    return (this.value ??= create());
  }
}

/** One handle per queue name, each typed by the jobs that name carries (src/contracts/jobs.ts). */
type QueueHandles = { [Q in QueueName]: Lazy<TypedQueue<Q>> };

/** Job options per queue; the worker's retry and retention behaviour follows from these. */
export function jobDefaults(config: Config, name: QueueName) {
  switch (name) {
    case 'generate':
      return {
        attempts: config.generateAttempts,
        backoff: { type: 'exponential', delay: config.generateBackoffMs },
        removeOnComplete: { age: config.retentionSeconds },
        removeOnFail: { age: config.retentionSeconds },
      };
    case 'classify':
      // A classify request waits for its job's reply; a finished job is kept for reading back.
      return {
        attempts: 2,
        backoff: { type: 'fixed', delay: 100 },
        removeOnComplete: { age: 300 },
        removeOnFail: { age: 300 },
      };
    case 'webhooks':
      return {
        attempts: config.webhookAttempts,
        backoff: { type: 'exponential', delay: config.webhookBackoffMs },
        removeOnComplete: { age: 3600, count: 10_000 },
        removeOnFail: { age: config.retentionSeconds },
      };
  }
}

export class Queues {
  private readonly queues: QueueHandles = { generate: new Lazy(), classify: new Lazy(), webhooks: new Lazy() };
  private commandConnection: RedisClient | undefined;
  private closed = false;

  constructor(private readonly config: Config) {}

  /** The shared connection for our own keys and BullMQ's producer commands. */
  get redis(): RedisClient {
    // A timer or a job's last step running on after close would otherwise open a connection
    // nobody closes, and keep the process from exiting.
    if (this.closed)
      throw new ServiceError('service_unavailable', 'the service is shutting down', { retryAfterSeconds: 1 });
    if (!this.commandConnection) {
      this.commandConnection = createRedis(this.config.redis, 'commands');
      this.commandConnection.on('error', () => {}); // reported by the commands that fail
    }
    return this.commandConnection;
  }

  /**
   * Waits (briefly) for the command connection. BullMQ would wait for Redis forever; a
   * request must fail fast with 503 instead.
   */
  async connected(timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
    const redis = this.redis;
    if (redis.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        redis.off('ready', onReady);
        reject(new ServiceError('service_unavailable', 'the job queue is unreachable', { retryAfterSeconds: 5 }));
      }, timeoutMs);
      redis.once('ready', onReady);
    });
  }

  get<Q extends QueueName>(name: Q): TypedQueue<Q> {
    return this.queues[name].get(() => this.create(name));
  }

  private create<Q extends QueueName>(name: Q): TypedQueue<Q> {
    const queue = new Queue<QueueData<Q>, QueueResult<Q>, QueueJobName<Q>>(name, {
      connection: this.redis,
      prefix: queueKeyPrefix(this.config.queuePrefix, name),
      defaultJobOptions: jobDefaults(this.config, name),
      streams: { events: { maxLen: EVENTS_KEPT } },
    });
    queue.on('error', () => {}); // connection errors surface as failed commands
    // BullMQ holds a listener per command in flight; a busy API has many at once.
    queue.setMaxListeners(1000);
    return queue;
  }

  /** Live workers per queue, as BullMQ counts them from Redis client names. */
  async workerCounts(): Promise<Record<QueueName, number>> {
    const counts = await Promise.all(QUEUE_NAMES.map((name) => this.get(name).getWorkersCount()));
    return Object.fromEntries(QUEUE_NAMES.map((name, i) => [name, counts[i]])) as Record<QueueName, number>;
  }

  async close(): Promise<void> {
    this.closed = true;
    const handles = Object.values(this.queues);
    await Promise.allSettled(handles.map((handle) => handle.value?.close()));
    for (const handle of handles) handle.value = undefined;
    this.commandConnection?.disconnect();
    this.commandConnection = undefined;
  }
}
