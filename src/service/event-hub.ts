// Follows the event logs of the generations someone is watching, for a whole API process, on
// one blocking Redis connection: a thousand open streams cost one XREAD, not a thousand
// connections. The connection opens with the first subscriber and closes with the last.
import type { Queues } from '../queue/queues.js';
import type { ServiceKeys } from './redis-keys.js';
import type { RedisTopology } from '../config.js';
import { type RedisClient, createRedis } from '../queue/redis.js';
import { type GenerationEvent, compareEntryIds, parseEntry } from './generation-events.js';

/** Bounds how long a new subscriber waits when its wake-up raced the start of a blocking read. */
const BLOCK_MS = 1000;
const READ_COUNT = 100;
const RETRY_MS = 250;

interface Subscriber {
  generationId: string;
  /** The last entry delivered to it (exclusive start of what it gets next). */
  cursor: string;
  onEvent: (event: GenerationEvent) => void;
}

type XReadReply = [string, [string, string[]][]][] | null;

export class EventHub {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  private reader: RedisClient | undefined;
  private readerId: Promise<number> | undefined;

  constructor(
    private readonly topology: RedisTopology,
    /** Its command connection sends CLIENT UNBLOCK; read on use, as it opens on first use. */
    private readonly queues: Pick<Queues, 'redis'>,
    private readonly keys: ServiceKeys,
  ) {}

  /** Open subscriptions (one per open event stream). */
  get size(): number {
    let count = 0;
    for (const set of this.subscribers.values()) count += set.size;
    return count;
  }

  /** Calls `onEvent` for each entry of the generation's log after `afterEntryId`, in order; returns the unsubscribe. */
  subscribe(generationId: string, afterEntryId: string, onEvent: (event: GenerationEvent) => void): () => void {
    const subscriber: Subscriber = { generationId, cursor: afterEntryId, onEvent };
    let set = this.subscribers.get(generationId);
    if (!set) this.subscribers.set(generationId, (set = new Set()));
    set.add(subscriber);
    if (this.reader) this.wake();
    else this.startReader();
    return () => this.unsubscribe(subscriber);
  }

  private unsubscribe(subscriber: Subscriber): void {
    const set = this.subscribers.get(subscriber.generationId);
    if (!set?.delete(subscriber)) return;
    if (set.size === 0) this.subscribers.delete(subscriber.generationId);
    if (this.subscribers.size === 0) this.stopReader();
  }

  close(): void {
    this.subscribers.clear();
    this.stopReader();
  }

  private startReader(): void {
    const reader = createRedis(this.topology, 'blocking', { connectionName: 'dalle-serve:events' });
    reader.on('error', () => {}); // a failed read is retried by the loop
    this.reader = reader;
    // Sent before the first XREAD on the same connection, so it answers first.
    this.readerId = reader.client('ID').then(Number);
    // eslint-disable-next-line no-restricted-syntax -- without the id, wake() does nothing and reads end within BLOCK_MS
    this.readerId.catch(() => {});
    void this.follow(reader);
  }

  private stopReader(): void {
    this.reader?.disconnect();
    this.reader = undefined;
    this.readerId = undefined;
  }

  /** Ends the reader's blocking read early, so the next one includes a new subscriber. */
  private wake(): void {
    const readerId = this.readerId;
    readerId
      ?.then((id) => this.queues.redis.client('UNBLOCK', id))
      // eslint-disable-next-line no-restricted-syntax -- harmless when it fails: the read ends within BLOCK_MS anyway
      .catch(() => {});
  }

  private async follow(reader: RedisClient): Promise<void> {
    while (this.reader === reader && this.subscribers.size > 0) {
      const ids = [...this.subscribers.keys()];
      const cursors = ids.map((id) => this.earliestCursor(id));
      let reply: XReadReply;
      try {
        // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- ioredis types both protocols' shapes; this connection speaks RESP2
        reply = (await reader.xread(
          'COUNT',
          READ_COUNT,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          ...ids.map((id) => this.keys.events(id)),
          ...cursors,
        )) as XReadReply;
      } catch {
        if (this.reader !== reader) return;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      for (const [key, entries] of reply ?? [])
        this.deliver(ids[ids.findIndex((id) => this.keys.events(id) === key)], entries);
    }
  }

  private earliestCursor(generationId: string): string {
    let earliest: string | undefined;
    for (const { cursor } of this.subscribers.get(generationId) ?? []) {
      if (earliest === undefined || compareEntryIds(cursor, earliest) < 0) earliest = cursor;
    }
    return earliest ?? '$';
  }

  private deliver(generationId: string | undefined, entries: [string, string[]][]): void {
    if (generationId === undefined) return;
    for (const entry of entries) {
      let event: GenerationEvent;
      try {
        event = parseEntry(entry);
      } catch {
        // Not an event this version can read: passed over, so that it stops no one's stream.
        for (const subscriber of this.subscribers.get(generationId) ?? [])
          if (compareEntryIds(entry[0], subscriber.cursor) > 0) subscriber.cursor = entry[0];
        continue;
      }
      for (const subscriber of [...(this.subscribers.get(generationId) ?? [])]) {
        if (compareEntryIds(event.entryId, subscriber.cursor) <= 0) continue;
        subscriber.cursor = event.entryId;
        subscriber.onEvent(event);
      }
    }
  }
}
