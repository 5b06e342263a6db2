// A CLIP request's admission, in one script sent by its SHA: it counts the request against its
// key's per-minute limit (when the key has one: see limits.ts) and books it a place in the
// classify queue, refused past CLASSIFY_MAX_QUEUED. Places are counted per request, not per
// job, since one job carries the requests that arrived together: `<prefix>:{classify}:svc:clip-places`
// holds one entry per request admitted and not yet taken by a worker (score: when it was
// booked). The worker that takes a job releases its requests' places; a request that gives up
// first releases its own, with the job when nobody waits for it any more; a place left by a
// crashed API is forgotten after the request's longest wait.
import type { RedisClient } from '../queue/redis.js';
import { ServiceError } from '../errors.js';
import { RedisScript } from '../queue/script.js';
import type { Principal } from './api-keys.js';
import { RATE_WINDOW_LUA, type RequestBudget, rateVerdict, rateWindow, unlimitedBudget } from './limits.js';
import type { ServiceKeys } from './redis-keys.js';

/** Past the request's own wait: an API that crashed meanwhile never released the place. */
const PLACE_MARGIN_MS = 60_000;

// KEYS: the places; with a limit, this minute's counter and the previous minute's. ARGV: now,
// forget-before, the request's id, the queue's limit, the rate limit, the previous minute's
// weight. Answers {1 admitted | 0 rate limited | 2 queue full, count, previous, queued}.
const ADMIT = new RedisScript(`${RATE_WINDOW_LUA}
local verdict = {1, 0, 0}
if #KEYS == 3 then
  verdict = hit(KEYS[2], KEYS[3], tonumber(ARGV[5]), tonumber(ARGV[6]))
  if verdict[1] == 0 then return verdict end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local queued = redis.call('ZCARD', KEYS[1])
if queued >= tonumber(ARGV[4]) then return {2, verdict[2], verdict[3], queued} end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
return verdict`);

export interface AdmissionOptions {
  maxQueued: number;
  retryAfterSeconds: number;
  /** The longest a request waits for its job (CLASSIFY_TIMEOUT_MS). */
  timeoutMs: number;
}

export class ClipAdmission {
  constructor(
    private readonly connection: { readonly redis: RedisClient },
    private readonly keys: ServiceKeys,
    private readonly options: AdmissionOptions,
  ) {}

  /**
   * Counts request `id` against its key's limit and books its place. Refusals: 429
   * rate_limited, thrown (the request is not counted); 503 queue_full, returned with the
   * budget (the request counts, as any request answered), so that its headers go out too.
   */
  async admit(
    principal: Principal,
    id: string,
    now = Date.now(),
  ): Promise<{ budget: RequestBudget; refusal?: ServiceError }> {
    const limit = principal.limits.requests_per_minute;
    const window = limit === undefined ? undefined : rateWindow(this.keys, principal, limit, now);
    const { maxQueued, retryAfterSeconds, timeoutMs } = this.options;
    const [answer, count, previous, queued] = (
      await ADMIT.runList(
        this.connection.redis,
        [this.keys.clipPlaces, ...(window?.keys ?? [])],
        [now, now - timeoutMs - PLACE_MARGIN_MS, id, maxQueued, ...(window?.args ?? [])],
      )
    ).map(Number);
    const budget = limit === undefined ? unlimitedBudget(now) : rateVerdict(answer !== 0, count, previous, limit, now);
    if (answer !== 2) return { budget };
    const refusal = new ServiceError(
      'queue_full',
      `the classify queue holds ${queued} requests, its limit is ${maxQueued}`,
      { retryAfterSeconds },
    );
    return { budget, refusal };
  }

  release(ids: string[]): Promise<void> {
    return releasePlaces(this.connection.redis, this.keys, ids);
  }
}

/** Frees the places of requests `ids`: their job was taken, removed, or never added. */
export async function releasePlaces(redis: RedisClient, keys: ServiceKeys, ids: string[]): Promise<void> {
  if (ids.length > 0) await redis.zrem(keys.clipPlaces, ...ids);
}
