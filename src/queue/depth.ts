import { ServiceError } from '../errors.js';
import type { Queue } from 'bullmq';
import type { RedisClient } from './redis.js';
import { RedisScript } from './script.js';

/** An admission whose job is not in the queue yet is forgotten after this long (a crashed API). */
const ADMISSION_TTL_MS = 30_000;

// Counts the queued jobs plus admissions still being added, and books one more only when
// that stays under the limit, in one step: two racing requests cannot both take the last place.
// An admission whose job already exists is dropped first: that job is counted in the queue.
const ADMIT = new RedisScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[2])
for _, jobId in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  if redis.call('EXISTS', ARGV[5] .. jobId) == 1 then redis.call('ZREM', KEYS[5], jobId) end
end
local queued = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
  + redis.call('ZCARD', KEYS[4]) + redis.call('ZCARD', KEYS[5])
if queued >= tonumber(ARGV[4]) then return queued end
redis.call('ZADD', KEYS[5], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[5], ${ADMISSION_TTL_MS})
return -1
`);

export interface QueuePlace {
  queue: Queue;
  maxQueued: number;
  retryAfterSeconds: number;
}

/**
 * Books a place in `place.queue` for the job `jobId` and runs `add`, which must add the job
 * under that id; or refuses with 503 queue_full + Retry-After once the jobs waiting (plus
 * those being admitted) reach `place.maxQueued`. The booking ends with `add`, added or not.
 */
export async function withQueuePlace<T>(
  redis: RedisClient,
  place: QueuePlace,
  jobId: string,
  add: () => Promise<T>,
): Promise<T> {
  const { queue, maxQueued, retryAfterSeconds } = place;
  const admissions = queue.toKey('admissions');
  const now = Date.now();
  const keys = [queue.keys.wait, queue.keys.paused, queue.keys.prioritized, queue.keys.delayed, admissions];
  const queued = Number(await ADMIT.run(redis, keys, [now, now - ADMISSION_TTL_MS, jobId, maxQueued, queue.toKey('')]));
  if (queued >= 0) {
    throw new ServiceError('queue_full', `the ${queue.name} queue holds ${queued} jobs, its limit is ${maxQueued}`, {
      retryAfterSeconds,
    });
  }
  try {
    return await add();
  } finally {
    // eslint-disable-next-line no-restricted-syntax -- an admission left behind is forgotten after 30 s
    await redis.zrem(admissions, jobId).catch(() => {});
  }
}
