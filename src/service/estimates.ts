// Where a generation stands and when it should end, both ends in one place. Each worker measures
// how many candidates per second its engine gets through (sampling to reranking, over whole
// batches, smoothed) and publishes it with an expiry; the API reads the live rates and the open
// generations to tell a client its queue position and an estimate of the seconds left.
//
// The estimate follows the scheduler's policy (src/models/SCHEDULER.md): running generations
// share every batch equally, so one with r candidates left ends once each running one has had
// min(its own rest, r) more; a queued one waits for all running work and the queued work ahead
// of it, then its own. Work is counted in candidates, which is what a batch is made of.
import type { RedisClient } from '../queue/redis.js';
import type { Queues } from '../queue/queues.js';
import type { GenerationRecord, Lifecycle } from './lifecycle.js';
import type { ServiceKeys } from './redis-keys.js';

/** How often a worker publishes its rate, and how long an entry outlives its worker. */
export const THROUGHPUT_PUBLISH_MS = 2000;
const THROUGHPUT_TTL_MS = 15_000;
/** Weight of the newest batch in the smoothed rate. */
const SMOOTHING = 0.3;
/** Open generations read per estimate: past it the queue is long and the estimate a floor. */
const OPEN_SCAN_LIMIT = 500;

/** The worker's end: measures its engine and keeps its rate published while it lives. */
export class ThroughputMeter {
  private rate: number | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: ServiceKeys,
    private readonly workerId: string,
  ) {}

  /** One batch that ran to the end: `rows` candidates in `seconds`. */
  observe(rows: number, seconds: number): void {
    if (rows <= 0 || seconds <= 0) return;
    const sample = rows / seconds;
    this.rate = this.rate === undefined ? sample : SMOOTHING * sample + (1 - SMOOTHING) * this.rate;
  }

  /** Publishes the rate measured so far (nothing before the first batch). */
  async publish(now = Date.now()): Promise<void> {
    if (this.rate === undefined) return;
    await this.redis
      .multi()
      .hset(this.keys.throughputRates, this.workerId, String(this.rate))
      .zadd(this.keys.throughputWorkers, now + THROUGHPUT_TTL_MS, this.workerId)
      .exec();
  }

  /** A worker that stops takes its rate with it at once. */
  async withdraw(): Promise<void> {
    await this.redis
      .multi()
      .hdel(this.keys.throughputRates, this.workerId)
      .zrem(this.keys.throughputWorkers, this.workerId)
      .exec();
  }
}

/** Candidates per second all live workers get through together; 0 before any has measured. */
export async function liveThroughput(redis: RedisClient, keys: ServiceKeys, now = Date.now()): Promise<number> {
  const live = await redis.zrangebyscore(keys.throughputWorkers, now, '+inf');
  if (live.length === 0) return 0;
  const rates = await redis.hmget(keys.throughputRates, ...live);
  return rates.reduce((sum, rate) => sum + (Number(rate) > 0 ? Number(rate) : 0), 0);
}

export interface GenerationEstimate {
  /** Generations ahead of it in the queue while it is queued (0: next); null otherwise. */
  queue_position: number | null;
  /** Seconds until it should end, while queued or processing; null when finished or not measured yet. */
  eta_seconds: number | null;
}

const NO_ESTIMATE: GenerationEstimate = { queue_position: null, eta_seconds: null };

/** Candidates a generation has still to sample: all while queued, the rest of sampling while running. */
function remaining(record: GenerationRecord): number {
  const { candidates } = record.input;
  const progress = record.progress;
  if (record.status !== 'processing' || !progress) return candidates;
  if (progress.stage !== 'sampling') return 0;
  return Math.max(0, candidates - progress.completed);
}

/** The API's end. */
export class GenerationEstimates {
  constructor(
    private readonly queues: Pick<Queues, 'redis' | 'get'>,
    private readonly keys: ServiceKeys,
    private readonly lifecycle: Lifecycle,
  ) {}

  async of(record: GenerationRecord, now = Date.now()): Promise<GenerationEstimate> {
    if (record.status !== 'queued' && record.status !== 'processing') return NO_ESTIMATE;
    const [position, throughput, open] = await Promise.all([
      record.status === 'queued' ? this.queuePosition(record.id) : Promise.resolve(null),
      liveThroughput(this.queues.redis, this.keys, now),
      this.openRecords(),
    ]);
    if (throughput <= 0) return { queue_position: position, eta_seconds: null };
    const own = remaining(record);
    const others = open.filter((other) => other.id !== record.id);
    const running = others.filter((other) => other.status === 'processing').map(remaining);
    let work: number;
    if (record.status === 'processing') {
      work = own + running.reduce((sum, rest) => sum + Math.min(rest, own), 0);
    } else {
      // Ids are time-ordered (UUIDv7): those queued before it are ahead of it.
      const ahead = others.filter((other) => other.status === 'queued' && other.id < record.id);
      work =
        own + running.reduce((sum, rest) => sum + rest, 0) + ahead.reduce((sum, other) => sum + remaining(other), 0);
    }
    return { queue_position: position, eta_seconds: Math.round((work / throughput) * 10) / 10 };
  }

  /**
   * Jobs ahead of this one in BullMQ's wait list (workers take from its tail); null when its job
   * is not waiting there (delayed for a retry, or being added).
   */
  private async queuePosition(id: string): Promise<number | null> {
    const wait = this.queues.get('generate').keys.wait;
    const [index, length] = await Promise.all([this.queues.redis.lpos(wait, id), this.queues.redis.llen(wait)]);
    return index === null ? null : Math.max(0, length - 1 - index);
  }

  private async openRecords(): Promise<GenerationRecord[]> {
    const ids = await this.queues.redis.zrange(this.keys.openGenerations, '0', String(OPEN_SCAN_LIMIT - 1));
    const records = await this.lifecycle.readMany(ids);
    return records.filter((record): record is GenerationRecord => record !== null);
  }
}
