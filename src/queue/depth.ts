import { ServiceError } from '../errors.js';
import type { Queue } from 'bullmq';

/** Refuses new work with 503 + Retry-After once the jobs waiting reach `maxQueued`. */
export async function assertQueueHasRoom(queue: Queue, maxQueued: number, retryAfterSeconds: number): Promise<void> {
  const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
  const queued = Object.values(counts).reduce((sum, count) => sum + count, 0);
  if (queued >= maxQueued) {
    throw new ServiceError('queue_full', `the ${queue.name} queue holds ${queued} jobs, its limit is ${maxQueued}`, {
      retryAfterSeconds,
    });
  }
}
