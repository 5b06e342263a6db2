// How CLIP requests wait for their job, both ends: one pub/sub subscription per API process
// (ClipReplies), on a channel each job names (`reply_to`); the worker publishes the job's
// outcome there once BullMQ has recorded it (replyToClipRequests), so a request never answers
// ahead of Redis. No per-request subscription, no reading of the queue's whole event stream.
// A message can be lost (the subscription dropped for a moment): after a reconnect the jobs
// waited for are read back from BullMQ instead, which keeps finished CLIP jobs a while (and
// the requests read their job back at their own deadline too: see clip-batches.ts).
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { Job } from 'bullmq';
import type { ClipReply } from '../contracts/jobs.js';
import type { Logger } from '../logger.js';
import type { ServiceKeys } from './redis-keys.js';
import type { RedisTopology } from '../config.js';
import { type RedisClient, createRedis } from '../queue/redis.js';

/** `lost`: the job is not in Redis any more, unfinished (a failover took it back). */
export type ClipOutcome = { result: unknown } | { failure: string } | { lost: true };

/** The outcome of a job as BullMQ holds it; undefined while it is unfinished. */
export type ReadBack = (jobId: string) => Promise<ClipOutcome | undefined>;

function isClipReply(value: unknown): value is ClipReply {
  return typeof value === 'object' && value !== null && 'id' in value && typeof value.id === 'string';
}

function outcomeOf(reply: ClipReply): ClipOutcome {
  return reply.failure !== undefined ? { failure: reply.failure } : { result: reply.result };
}

export class ClipReplies {
  /** This process's channel; jobs carry it as `reply_to`. */
  readonly channel: string;
  private readonly processId = randomUUID();
  private subscriber: RedisClient | undefined;
  private listening: Promise<void> | undefined;
  private readonly waiting = new Map<string, (outcome: ClipOutcome) => void>();

  constructor(
    private readonly topology: RedisTopology,
    keys: ServiceKeys,
    private readonly readBack: ReadBack,
  ) {
    this.channel = keys.clipReplies(this.processId);
  }

  /** Subscribes once; resolves when messages on the channel are received. */
  listen(): Promise<void> {
    this.listening ??= this.subscribe().catch((error: unknown) => {
      this.listening = undefined;
      throw error;
    });
    return this.listening;
  }

  /**
   * Hands job `jobId`'s outcome to `deliver` once it comes, until `forget`. Call before the job
   * is added, so that no reply can come first.
   */
  expect(jobId: string, deliver: (outcome: ClipOutcome) => void): void {
    this.waiting.set(jobId, deliver);
  }

  forget(jobId: string): void {
    this.waiting.delete(jobId);
  }

  async close(): Promise<void> {
    this.waiting.clear();
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.listening = undefined;
    subscriber?.disconnect();
  }

  private async subscribe(): Promise<void> {
    const subscriber = createRedis(this.topology, 'blocking', {
      // Named after its channel, so that an operator can tell whose it is.
      connectionName: `dalle-serve:clip-replies:${this.processId}`,
    });
    this.subscriber = subscriber;
    subscriber.on('error', () => {}); // a lost subscription is covered by the read-backs
    subscriber.on('message', (_channel: string, text: string) => this.deliver(text));
    await subscriber.subscribe(this.channel);
    // ioredis subscribes again after a reconnect; what was published meanwhile is read back.
    subscriber.on('ready', () => {
      for (const [jobId, deliver] of this.waiting)
        void this.readBack(jobId)
          .catch(() => undefined)
          .then((outcome) => outcome && deliver(outcome));
    });
  }

  private deliver(text: string): void {
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch {
      return; // not ours
    }
    if (!isClipReply(reply)) return;
    this.waiting.get(reply.id)?.(outcomeOf(reply));
  }
}

function publish(redis: RedisClient, job: Job, reply: Omit<ClipReply, 'id'>, logger: Logger): void {
  const channel: unknown = job.data?.reply_to;
  if (typeof channel !== 'string' || !job.id) return;
  redis
    .publish(channel, JSON.stringify({ id: job.id, ...reply }))
    .catch((error: unknown) => logger.warn({ err: error, jobId: job.id }, 'clip reply not published'));
}

/**
 * The worker's end: each outcome of the classify queue's BullMQ `worker`, published to the
 * channel its job names. A failure that will be retried is not final and says nothing.
 */
export function replyToClipRequests(worker: EventEmitter, redis: RedisClient, logger: Logger): void {
  worker.on('completed', (job: Job, result: unknown) => publish(redis, job, { result }, logger));
  worker.on('failed', (job: Job | undefined, error: Error) => {
    // finishedOn: failed for good, not moved back for another attempt.
    if (job?.finishedOn) publish(redis, job, { failure: error.message }, logger);
  });
}
