// Per-key rate limits and quotas, counted in Redis so that every API replica shares them:
// requests per minute (a sliding window over one-minute counters), candidates per UTC day,
// and generations queued or processing at once. A limit that is not set costs nothing.
import type { RedisClient } from '../queue/redis.js';
import { ServiceError } from '../errors.js';
import type { Principal } from './api-keys.js';
import type { Lifecycle } from './lifecycle.js';
import type { ServiceKeys } from './redis-keys.js';
import type { Queues } from '../queue/queues.js';
import { execReplies } from '../queue/redis.js';
import { RedisScript } from '../queue/script.js';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** How long a generation may sit in the active set before its record exists. */
const PENDING_ADD_MS = 30_000;

function utcDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}

function secondsUntil(ms: number, now: number): number {
  return Math.max(1, Math.ceil((ms - now) / 1000));
}

export interface Usage {
  requests_this_minute: number;
  candidates_today: number;
  concurrent_generations: number;
}

// KEYS: the active set. ARGV: limit, now, id. 1: added; 0: the set already holds the limit.
const ADMIT_GENERATION = new RedisScript(`
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1`);

/**
 * The sliding window in Lua, for any script that counts a request (this one's, and the CLIP
 * admission's, which counts it and books its queue place in one step): `hit(counter, previous,
 * limit, weight)` adds the request to this minute's counter and refuses it (taking it back
 * out) when this minute's count plus the previous minute's, weighted, passes the limit.
 * Answers `{1 accepted | 0 refused, this minute's count, the previous minute's}`.
 */
export const RATE_WINDOW_LUA = `
local function hit(counter, previous, limit, weight)
  local count = redis.call('INCR', counter)
  redis.call('EXPIRE', counter, 120)
  local before = tonumber(redis.call('GET', previous) or '0')
  if count + before * weight > limit then
    redis.call('DECR', counter)
    return {0, count, before}
  end
  return {1, count, before}
end
`;

const HIT_REQUEST = new RedisScript(`${RATE_WINDOW_LUA}
return hit(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))`);

/** What a request counted against its key's per-minute limit may still do. */
export interface RequestBudget {
  limit?: number;
  remaining?: number;
  resetSeconds: number;
}

/** The budget of a key without a per-minute limit, which is not counted. */
export function unlimitedBudget(now: number): RequestBudget {
  return { resetSeconds: secondsUntil((Math.floor(now / MINUTE_MS) + 1) * MINUTE_MS, now) };
}

/** The keys and arguments of `hit` for one request of `principal` at `now` under `limit`. */
export function rateWindow(keys: ServiceKeys, principal: Principal, limit: number, now: number) {
  const minute = Math.floor(now / MINUTE_MS);
  return {
    keys: [keys.requests(principal.id, minute), keys.requests(principal.id, minute - 1)],
    // The previous minute's share of the last 60 s: 1 at this minute's start, 0 at its end.
    args: [limit, 1 - (now - minute * MINUTE_MS) / MINUTE_MS],
  };
}

/**
 * The budget `hit` left (accepted) or the 429 it means (refused): this minute's count plus
 * the previous minute's weighted by how much of it the last 60 s still cover. A fixed window
 * would let a client spend two minutes' budget across a boundary.
 */
export function rateVerdict(
  accepted: boolean,
  count: number,
  previous: number,
  limit: number,
  now: number,
): RequestBudget {
  const minute = Math.floor(now / MINUTE_MS);
  const inWindow = count + previous * (1 - (now - minute * MINUTE_MS) / MINUTE_MS);
  // The weight falls to 0 at the end of this minute, when only this minute's count is left.
  const resetSeconds = secondsUntil((minute + 1) * MINUTE_MS, now);
  if (!accepted) {
    // A refused request is not served, so it does not count (the script took it back out): a
    // client retrying too fast gets back in as soon as its accepted requests allow, not later.
    // It waits until enough of the previous minute has slid out (or this minute ends).
    const excess = inWindow - limit;
    const waitMs = previous > 0 && count <= limit ? (excess / previous) * MINUTE_MS : (minute + 1) * MINUTE_MS - now;
    throw new ServiceError('rate_limited', `more than ${limit} requests per minute for this key`, {
      retryAfterSeconds: secondsUntil(now + waitMs, now),
    });
  }
  return { limit, remaining: Math.floor(limit - inWindow), resetSeconds };
}

export class RateLimiter {
  constructor(
    private readonly queues: Queues,
    private readonly keys: ServiceKeys,
    private readonly retentionSeconds: number,
    private readonly lifecycle: Pick<Lifecycle, 'statuses'>,
  ) {}

  private get redis(): RedisClient {
    return this.queues.redis;
  }

  /**
   * Counts one request against the key's per-minute limit (a sliding window, see rateVerdict),
   * in one script. A key without a limit is not counted at all: no Redis command.
   */
  async hitRequest(principal: Principal, now = Date.now()): Promise<RequestBudget> {
    const limit = principal.limits.requests_per_minute;
    if (limit === undefined) return unlimitedBudget(now);
    const window = rateWindow(this.keys, principal, limit, now);
    const [accepted, count, previous] = (await HIT_REQUEST.runList(this.redis, window.keys, window.args)).map(Number);
    return rateVerdict(accepted === 1, count, previous, limit, now);
  }

  /** Books `candidates` against today's quota; the returned function gives them back. */
  async reserveCandidates(principal: Principal, candidates: number, now = Date.now()): Promise<() => Promise<void>> {
    const key = this.keys.candidates(principal.id, utcDay(now));
    const limit = principal.limits.candidates_per_day;
    const [totalReply] = await execReplies(
      this.redis
        .multi()
        .incrby(key, candidates)
        .expire(key, 2 * 86_400),
    );
    const total = Number(totalReply);
    const refund = async () => {
      await this.redis.decrby(key, candidates);
    };
    if (limit !== undefined && total > limit) {
      await refund();
      const midnight = (Math.floor(now / DAY_MS) + 1) * DAY_MS;
      throw new ServiceError(
        'quota_exceeded',
        `this key may ask for ${limit} candidates per day; ${Math.max(0, limit - (total - candidates))} are left today`,
        {
          retryAfterSeconds: secondsUntil(midnight, now),
        },
      );
    }
    return refund;
  }

  /**
   * Adds a generation to the key's active set unless the set already holds the limit: finished
   * ones are pruned first, then one script counts and adds, so racing requests take exactly the
   * places left (a refused one never sits in the set where it would turn others away).
   */
  async admitGeneration(principal: Principal, id: string, now = Date.now()): Promise<() => Promise<void>> {
    const key = this.keys.activeGenerations(principal.id);
    await this.redis.zremrangebyscore(key, '-inf', String(now - this.retentionSeconds * 1000));
    const release = async () => {
      await this.redis.zrem(key, id);
    };
    const limit = principal.limits.concurrent_generations;
    if (limit === undefined) {
      await this.redis.zadd(key, String(now), id);
      return release;
    }
    await this.countActive(principal.id, now);
    if ((await ADMIT_GENERATION.run(this.redis, [key], [limit, now, id])) !== 1) {
      throw new ServiceError('quota_exceeded', `this key may have ${limit} generations queued or processing at once`, {
        retryAfterSeconds: 5,
      });
    }
    return release;
  }

  /** Generations of the key still queued or processing; finished and removed ones leave the set. */
  async countActive(owner: string, now = Date.now()): Promise<number> {
    const key = this.keys.activeGenerations(owner);
    const entries = await this.redis.zrange(key, '0', '-1', 'WITHSCORES');
    const ids = entries.filter((_, i) => i % 2 === 0);
    const statuses = await this.lifecycle.statuses(ids);
    let active = 0;
    for (const [i, id] of ids.entries()) {
      const status = statuses[i];
      // No record: either being created by its request right now, or gone (deleted, expired).
      const running =
        status === null
          ? now - Number(entries[2 * i + 1]) < PENDING_ADD_MS
          : status === 'queued' || status === 'processing';
      if (running) active += 1;
      else await this.redis.zrem(key, id);
    }
    return active;
  }

  async usage(principal: Principal, now = Date.now()): Promise<Usage> {
    const [requests, candidates] = await this.redis.mget(
      this.keys.requests(principal.id, Math.floor(now / MINUTE_MS)),
      this.keys.candidates(principal.id, utcDay(now)),
    );
    return {
      requests_this_minute: Number(requests ?? 0),
      candidates_today: Number(candidates ?? 0),
      concurrent_generations: await this.countActive(principal.id),
    };
  }
}
