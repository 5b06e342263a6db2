// Tells a waiting CLIP request its job's outcome: published to the channel the job names
// (`reply_to`) once BullMQ has recorded the outcome, so a request never answers ahead of Redis.
// Retried failures are not final and say nothing. A lost message costs the request a read-back.
import type { EventEmitter } from 'node:events';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ClipReply } from '../contracts/jobs.js';

function publish(redis: Redis, job: Job, reply: Omit<ClipReply, 'id'>, logger: Logger): void {
  const channel = (job.data as { reply_to?: unknown }).reply_to;
  if (typeof channel !== 'string' || !job.id) return;
  redis
    .publish(channel, JSON.stringify({ id: job.id, ...reply }))
    .catch((error: unknown) => logger.warn({ err: error, jobId: job.id }, 'clip reply not published'));
}

/** `worker`: the classify queue's BullMQ worker. */
export function replyToClipRequests(worker: EventEmitter, redis: Redis, logger: Logger): void {
  worker.on('completed', (job: Job, result: unknown) => publish(redis, job, { result }, logger));
  worker.on('failed', (job: Job | undefined, error: Error) => {
    // finishedOn: failed for good, not moved back for another attempt.
    if (job?.finishedOn) publish(redis, job, { failure: error.message }, logger);
  });
}
