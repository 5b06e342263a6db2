// The point of no return of a generation, decided in Redis so a cancel and a success cannot
// both win: the worker commits (only while no cancel is recorded) before it reports success,
// and the API records a cancel (only while no commit is recorded). Each is one script, so
// exactly one of them finds the other's mark absent.
import type { Redis } from 'ioredis';
import type { ServiceKeys } from '../queue/keys.js';

/** Long enough to outlive the job's move to completed, retried through a Redis outage. */
const COMMIT_TTL_SECONDS = 24 * 3600;

// KEYS: the cancel mark, the commit mark. ARGV: TTL. 1: committed; 0: a cancel came first.
const COMMIT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return 1`;

// KEYS: the commit mark, the cancel mark. ARGV: now (ms), TTL. 1: canceled; 0: committed first.
const CANCEL = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2], 'NX')
return 1`;

/** The worker's last step before success: false when a cancel was recorded first. */
export async function commitGeneration(redis: Redis, keys: ServiceKeys, id: string): Promise<boolean> {
  return (await redis.eval(COMMIT, 2, keys.cancel(id), keys.committed(id), COMMIT_TTL_SECONDS)) === 1;
}

/** Records a cancel unless the worker has committed the result: false when it is too late. */
export async function recordCancel(redis: Redis, keys: ServiceKeys, id: string, ttlSeconds: number): Promise<boolean> {
  return (await redis.eval(CANCEL, 2, keys.committed(id), keys.cancel(id), Date.now(), ttlSeconds)) === 1;
}
