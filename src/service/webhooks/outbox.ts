// Webhooks owed by generation events: a transition lists each one in the outbox in the same
// script that appends its event (src/service/lifecycle.ts), so no event is written without its
// webhook. Whoever ran the transition queues them at once; the workers' upkeep queues what a
// crash left. A webhook job's id is its event id, so queueing one twice delivers it once. With
// replicas asked for (REDIS_WAIT_REPLICAS), one is unlisted only once they hold its job: a job
// added to a master that a failover has just replaced is lost with that master, while the
// unlisting may already reach the new one.
import type { ServiceKeys } from '../redis-keys.js';
import type { Queues } from '../../queue/queues.js';
import { OwedWebhook } from '../../contracts/records.js';
import { jsonCodec } from '../redis-codec.js';
import { waitForReplicas, writeMark } from '../../queue/redis.js';

/** How long queueing a webhook waits for the replicas before leaving it to the next sweep. */
const REPLICA_WAIT_MS = 2000;

const owedWebhook = jsonCodec(OwedWebhook);

export class WebhookOutbox {
  constructor(
    private readonly queues: Pick<Queues, 'redis' | 'get'>,
    private readonly keys: ServiceKeys,
    /** REDIS_WAIT_REPLICAS: replicas that must hold a webhook's job before it is unlisted. */
    private readonly replicas = 0,
  ) {}

  /** Queues the listed webhooks and unlists each once queued; never throws: what fails stays listed. */
  async queueOwed(owed: readonly string[]): Promise<void> {
    await Promise.all(owed.map((member) => this.queue(member)));
  }

  /** Queues the webhooks listed before `before` (ms); returns how many. */
  async sweep(before: number, limit = 100): Promise<number> {
    const owed = await this.queues.redis.zrangebyscore(this.keys.webhookOutbox, '-inf', before, 'LIMIT', 0, limit);
    const queued = await Promise.all(owed.map((member) => this.queue(member)));
    return queued.filter(Boolean).length;
  }

  private async queue(member: string): Promise<boolean> {
    let webhook: OwedWebhook;
    try {
      webhook = owedWebhook.decode(member, 'an owed webhook');
    } catch {
      // Written by a script of another shape: it can never be sent, so it must not block the rest.
      await this.queues.redis.zrem(this.keys.webhookOutbox, member).catch(() => 0);
      return false;
    }
    try {
      const queue = this.queues.get('webhooks');
      await queue.add('webhook', webhook, { jobId: webhook.event_id });
      const jobKey = queue.toKey(webhook.event_id);
      const written = writeMark(this.queues.redis, jobKey);
      if (this.replicas > 0) {
        const reached = await waitForReplicas(this.queues.redis, jobKey, this.replicas, REPLICA_WAIT_MS, written);
        if (reached < this.replicas) return false;
      }
      await this.queues.redis.zrem(this.keys.webhookOutbox, member);
      return true;
    } catch {
      // Still listed: the next sweep tries again.
      return false;
    }
  }
}
