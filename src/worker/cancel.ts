// Cross-process cancel. The API records the cancel on the generation's record and publishes
// the id; whichever worker runs the generation aborts it (the engine stops at its next chunk).
// A poll of the running generations' records covers messages missed while the subscriber was
// reconnecting.
import type { ServiceKeys } from '../service/redis-keys.js';
import type { RedisTopology } from '../config.js';
import { type RedisClient, createRedis } from '../queue/redis.js';

/** The abort reason of a canceled generation (distinct from a shutdown). */
export const CANCELED = 'canceled';
export const SHUTDOWN = 'shutdown';

export class CancelWatcher {
  private readonly running = new Map<string, AbortController>();
  private subscriber: RedisClient | undefined;
  private poll: NodeJS.Timeout | undefined;

  constructor(
    private readonly topology: RedisTopology,
    private readonly redis: RedisClient,
    private readonly keys: ServiceKeys,
    private readonly pollIntervalMs = 1000,
  ) {}

  async start(): Promise<void> {
    this.subscriber = createRedis(this.topology, 'blocking', { connectionName: 'dalle-serve:cancel' });
    this.subscriber.on('message', (_channel: string, id: string) => this.abort(id, CANCELED));
    this.subscriber.on('error', () => {});
    await this.subscriber.subscribe(this.keys.cancelChannel);
    this.poll = setInterval(() => void this.pollRunning(), this.pollIntervalMs).unref();
  }

  /** An AbortSignal for one running generation; release it when the job ends. */
  track(id: string): { signal: AbortSignal; release(): void } {
    const controller = new AbortController();
    this.running.set(id, controller);
    return { signal: controller.signal, release: () => this.running.delete(id) };
  }

  /** Aborts every running generation, e.g. when shutdown cannot wait any longer. */
  abortAll(reason: string): void {
    for (const id of this.running.keys()) this.abort(id, reason);
  }

  private abort(id: string, reason: string): void {
    const controller = this.running.get(id);
    if (controller && !controller.signal.aborted) controller.abort(reason);
  }

  private async pollRunning(): Promise<void> {
    for (const id of this.running.keys()) {
      // A poll that fails is the next tick's to repeat.
      const requested = await this.redis.hexists(this.keys.generation(id), 'cancel_requested_at').catch(() => 0);
      if (requested === 1) this.abort(id, CANCELED);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.poll);
    this.subscriber?.disconnect();
  }
}
