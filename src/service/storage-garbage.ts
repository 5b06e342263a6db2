// Images that must go (a failed, canceled or deleted generation's; an attempt that will never
// commit) are listed in Redis before the store is asked, and stay listed until the store has
// deleted them: a store that fails, or a process that dies in between, delays the deletion but
// never skips it. Whoever lists a prefix deletes it at once; the workers' upkeep retries the rest.
import type { ServiceKeys } from './redis-keys.js';
import type { Queues } from '../queue/queues.js';
import { RedisScript } from '../queue/script.js';
import type { ObjectStore } from '../storage/index.js';

// Unlisted only if nobody listed it again meanwhile (a later listing may cover newer files).
// KEYS: the garbage list. ARGV: prefix, the score it was listed with.
const UNLIST_IF_UNCHANGED = new RedisScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
`);

export class StorageGarbage {
  constructor(
    private readonly queues: Pick<Queues, 'redis'>,
    private readonly keys: ServiceKeys,
    private readonly store: ObjectStore,
  ) {}

  /** Lists the prefix, then deletes it; what fails stays listed for upkeep. */
  async delete(prefix: string): Promise<void> {
    const listedAt = Date.now();
    await this.queues.redis.zadd(this.keys.storageGarbage, listedAt, prefix);
    await this.deleteOwed([prefix], listedAt);
  }

  /** Deletes prefixes a transition listed at `listedAt`; never throws: what fails stays listed. */
  async deleteOwed(prefixes: readonly string[], listedAt: number): Promise<void> {
    await Promise.all(prefixes.map((prefix) => this.collect(prefix, String(listedAt))));
  }

  /** Deletes the listed prefixes listed before `before` (ms); returns how many were deleted. */
  async sweep(before: number, limit = 100): Promise<number> {
    const listed = await this.queues.redis.zrangebyscore(
      this.keys.storageGarbage,
      '-inf',
      before,
      'WITHSCORES',
      'LIMIT',
      0,
      limit,
    );
    let deleted = 0;
    for (let i = 0; i < listed.length; i += 2) {
      if (await this.collect(listed[i], listed[i + 1])) deleted += 1;
    }
    return deleted;
  }

  private async collect(prefix: string, listedAt: string): Promise<boolean> {
    try {
      await this.store.deletePrefix(prefix);
      await UNLIST_IF_UNCHANGED.run(this.queues.redis, [this.keys.storageGarbage], [prefix, listedAt]);
      return true;
    } catch {
      // Still listed: the next sweep tries again.
      return false;
    }
  }
}
