// One event log per generation, a capped Redis stream: `start`, `progress` and the terminal
// `completed`, each a copy of the generation's state when it was written. Only the lifecycle's
// transitions write it (src/service/lifecycle.ts), in the same script that changes the record;
// webhooks and GET /generations/:id/events both read it, so they never disagree. Event ids are
// deterministic (`<id>-start`, `<id>-progress-<stage>-<n>`, `<id>-completed`) and each is
// written once, so a retried attempt neither duplicates nor renumbers events.
import type { Config } from '../config.js';
import type { WebhookEvent } from '../contracts/jobs.js';
import { WEBHOOK_EVENTS } from '../contracts/jobs.js';
import type { Generation } from '../contracts/schemas.js';
import type { ServiceKeys } from './redis-keys.js';
import type { Queues } from '../queue/queues.js';
import type { ObjectStore } from '../storage/index.js';
import { type GenerationRecord, type GenerationState, stateFromFields } from './lifecycle.js';
import { renderGeneration } from './generation-view.js';

export type GenerationEventName = WebhookEvent;

export interface GenerationEvent {
  /** Our id: stable across attempts; the SSE `id:` and the webhook-id. */
  id: string;
  /** The stream entry's id: where a reader resumes. */
  entryId: string;
  event: GenerationEventName;
  /** When it was written (ms since epoch). */
  at: number;
  /** The generation's state as the event's transition left it. */
  state: GenerationState;
}

export type GenerationEventBody = Generation & { event: GenerationEventName };

export const terminalEventId = (generationId: string) => `${generationId}-completed`;

type StreamEntry = [string, string[]];

function isEventName(name: string | undefined): name is GenerationEventName {
  return WEBHOOK_EVENTS.some((event) => event === name);
}

export function parseEntry([entryId, list]: StreamEntry): GenerationEvent {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) fields[list[i]] = list[i + 1];
  const what = `event ${fields.id ?? entryId}`;
  const state = stateFromFields(fields, what);
  if (!state || !isEventName(fields.event) || fields.id === undefined)
    throw new Error(`${what} is not an event of this version`);
  return { id: fields.id, entryId, event: fields.event, at: Number(fields.at), state };
}

/** Orders stream entry ids (`<ms>-<seq>`). */
export function compareEntryIds(a: string, b: string): number {
  const [ams, aseq] = a.split('-').map(BigInt);
  const [bms, bseq] = b.split('-').map(BigInt);
  if (ams !== bms) return ams < bms ? -1 : 1;
  return aseq === bseq ? 0 : aseq < bseq ? -1 : 1;
}

export class GenerationEventLog {
  constructor(
    private readonly queues: Pick<Queues, 'redis'>,
    private readonly keys: ServiceKeys,
  ) {}

  // Read on each use: the connection opens on first use and is replaced after a close.
  private get redis() {
    return this.queues.redis;
  }

  /** The events written after the entry `afterEntryId` (all of them by default), oldest first. */
  async read(generationId: string, afterEntryId = '0-0'): Promise<GenerationEvent[]> {
    const entries = await this.redis.xrange(this.keys.events(generationId), `(${afterEntryId}`, '+');
    return entries.map(parseEntry);
  }

  /** Where an event sits in the log, or null when the log has no event of that id. */
  entryIdOf(generationId: string, eventId: string): Promise<string | null> {
    return this.redis.hget(this.keys.eventIds(generationId), eventId);
  }

  async find(generationId: string, eventId: string): Promise<GenerationEvent | null> {
    const entryId = await this.entryIdOf(generationId, eventId);
    if (entryId === null) return null;
    const entries = await this.redis.xrange(this.keys.events(generationId), entryId, entryId);
    return entries.length > 0 ? parseEntry(entries[0]) : null;
  }

  terminal(generationId: string): Promise<GenerationEvent | null> {
    return this.find(generationId, terminalEventId(generationId));
  }
}

/** The body of an event, for its webhook and its SSE `data:` alike: GET /generations/:id as of the event, plus `event`. */
export async function renderEvent(
  config: Pick<Config, 'publicBaseUrl' | 'imageUrlTtlSeconds'>,
  store: ObjectStore,
  record: GenerationRecord,
  logged: GenerationEvent,
): Promise<GenerationEventBody> {
  return { ...(await renderGeneration(config, store, record, logged.state)), event: logged.event };
}
