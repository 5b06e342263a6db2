// One event log per generation, a capped Redis stream: `start`, `progress` and the terminal
// `completed`. Webhooks and GET /generations/:id/events both read it, so they never disagree.
// Event ids are deterministic (`<id>-start`, `<id>-progress-<stage>-<n>`, `<id>-completed`)
// and each is written once, so a retried attempt neither duplicates nor renumbers events.
import type { JobState } from 'bullmq';
import type { Config } from '../config.js';
import type { GenerateJobResult, GenerationInput, WebhookEvent } from '../contracts/jobs.js';
import type { Generation } from '../contracts/schemas.js';
import type { GenerationProgress } from '../contracts/status.js';
import type { ServiceKeys } from '../queue/keys.js';
import type { Queues } from '../queue/queues.js';
import type { ObjectStore } from '../storage/index.js';
import {
  type GenerateJob,
  type GenerationMarks,
  type GenerationSnapshot,
  buildGenerationView,
} from './generation-view.js';

/** Entries kept per generation; the terminal event is the last one written, so never trimmed away. */
const EVENT_LOG_MAX_EVENTS = 1000;

export type GenerationEventName = WebhookEvent;

/** How a generation ended, as its terminal event records it. */
export type GenerationOutcome = { state: 'completed'; result: GenerateJobResult } | { state: 'failed'; reason: string };

export interface GenerationEvent {
  /** Our id: stable across attempts; the SSE `id:` and the webhook-id. */
  id: string;
  /** The stream entry's id: where a reader resumes. */
  entryId: string;
  event: GenerationEventName;
  /** When it was written (ms since epoch). */
  at: number;
  /** When the attempt that wrote it started (ms since epoch): the body's `started_at`. */
  startedAt?: number;
  progress?: GenerationProgress;
  outcome?: GenerationOutcome;
}

export type GenerationEventBody = Generation & { event: GenerationEventName };

export const terminalEventId = (generationId: string) => `${generationId}-completed`;

// Written once per event id: the id → entry map says whether an earlier attempt wrote it.
const APPEND_ONCE = `
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then return {0, known} end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], '*', 'id', ARGV[1], 'event', ARGV[2], 'data', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], entry)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {1, entry}`;

type StreamEntry = [string, string[]];

export function parseEntry([entryId, fields]: StreamEntry): GenerationEvent {
  const field = (name: string) => fields[fields.indexOf(name) + 1];
  const data = JSON.parse(field('data')) as Pick<GenerationEvent, 'at' | 'startedAt' | 'progress' | 'outcome'>;
  return { id: field('id'), entryId, event: field('event') as GenerationEventName, ...data };
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
    private readonly retentionSeconds: number,
  ) {}

  // Read on each use: the connection opens on first use and is replaced after a close.
  private get redis() {
    return this.queues.redis;
  }

  /** Writes the event unless an event with this id was written before; true when written now. */
  async append(
    generationId: string,
    event: Omit<GenerationEvent, 'entryId' | 'at'>,
    at = Date.now(),
  ): Promise<boolean> {
    const { id, event: name, ...rest } = event;
    const [written] = (await this.redis.eval(
      APPEND_ONCE,
      2,
      this.keys.events(generationId),
      this.keys.eventIds(generationId),
      id,
      name,
      JSON.stringify({ at, ...rest }),
      EVENT_LOG_MAX_EVENTS,
      this.retentionSeconds,
    )) as [number, string];
    return written === 1;
  }

  /** The events written after the entry `afterEntryId` (all of them by default), oldest first. */
  async read(generationId: string, afterEntryId = '0-0'): Promise<GenerationEvent[]> {
    const entries = (await this.redis.xrange(this.keys.events(generationId), `(${afterEntryId}`, '+')) as StreamEntry[];
    return entries.map(parseEntry);
  }

  /** Where an event sits in the log, or null when the log has no event of that id. */
  entryIdOf(generationId: string, eventId: string): Promise<string | null> {
    return this.redis.hget(this.keys.eventIds(generationId), eventId);
  }

  async find(generationId: string, eventId: string): Promise<GenerationEvent | null> {
    const entryId = await this.entryIdOf(generationId, eventId);
    if (entryId === null) return null;
    const entries = (await this.redis.xrange(this.keys.events(generationId), entryId, entryId)) as StreamEntry[];
    return entries.length > 0 ? parseEntry(entries[0]) : null;
  }

  terminal(generationId: string): Promise<GenerationEvent | null> {
    return this.find(generationId, terminalEventId(generationId));
  }
}

/**
 * The job as it stood when the event was written, from the event alone (and the job's id and
 * data), so that every reader renders the same body whenever it reads.
 */
function snapshotAt(job: GenerateJob, logged: GenerationEvent): { job: GenerationSnapshot; state: JobState } {
  const outcome = logged.outcome;
  const snapshot: GenerationSnapshot = {
    id: job.id,
    data: job.data,
    processedOn: logged.startedAt,
    progress: logged.progress ?? 0,
    returnvalue: outcome?.state === 'completed' ? outcome.result : (null as unknown as GenerateJobResult),
    failedReason: outcome?.state === 'failed' ? outcome.reason : '',
    finishedOn: outcome ? logged.at : undefined,
  };
  return { job: snapshot, state: outcome ? outcome.state : 'active' };
}

/** The body of an event, for its webhook and its SSE `data:` alike: GET /generations/:id as of the event, plus `event`. */
export async function renderEvent(
  config: Pick<Config, 'publicBaseUrl' | 'imageUrlTtlSeconds'>,
  store: ObjectStore,
  job: GenerateJob,
  logged: GenerationEvent,
  marks: GenerationMarks,
): Promise<GenerationEventBody> {
  const { job: snapshot, state } = snapshotAt(job, logged);
  const view = await buildGenerationView(config, store, snapshot, state, marks);
  return { ...view, event: logged.event };
}

/** The producer side: writes events to the log and queues a webhook for each one the generation asked for. */
export class GenerationEvents {
  readonly log: GenerationEventLog;
  /** Progress events still being written, per generation: the terminal event waits for them. */
  private readonly pending = new Map<string, Promise<void>>();

  constructor(
    private readonly queues: Queues,
    keys: ServiceKeys,
    retentionSeconds: number,
  ) {
    this.log = new GenerationEventLog(queues, keys, retentionSeconds);
  }

  /**
   * Appends the event (once per id) and queues its webhook (once per id: the job id is the event
   * id). The webhook is queued even when the event was already logged, so an attempt cut short
   * between the two is repaired by the next attempt.
   */
  async record(
    generationId: string,
    input: GenerationInput,
    event: Omit<GenerationEvent, 'entryId' | 'at'>,
  ): Promise<void> {
    await this.log.append(generationId, event);
    if (!input.webhook || !input.webhook_events_filter.includes(event.event)) return;
    await this.queues
      .get('webhooks')
      .add(
        'webhook',
        { generation_id: generationId, event: event.event, url: input.webhook, event_id: event.id },
        { jobId: event.id },
      );
  }

  start(job: GenerateJob): Promise<void> {
    const id = job.id as string;
    return this.record(id, job.data.input, { id: `${id}-start`, event: 'start', startedAt: job.processedOn });
  }

  /**
   * The terminal event, after the progress events still being written; it keeps the last
   * progress reported, which GET /generations/:id goes on showing.
   */
  async finished(
    job: Pick<GenerateJob, 'id' | 'data' | 'processedOn'>,
    outcome: GenerationOutcome,
    progress?: GenerationProgress,
  ): Promise<void> {
    const id = job.id as string;
    await this.settle(id);
    await this.record(id, job.data.input, {
      id: terminalEventId(id),
      event: 'completed',
      outcome,
      startedAt: job.processedOn,
      progress,
    });
  }

  /** Waits for the generation's progress events being written, and forgets them. */
  async settle(generationId: string): Promise<void> {
    await this.pending.get(generationId);
    this.pending.delete(generationId);
  }

  /**
   * A job's progress as events: one at each stage change, then at most one per `intervalMs`
   * within the stage, numbered per stage so that a retried attempt writes the same ids.
   * They are written in order; `settle` (and so `finished`) waits for them.
   */
  progressReporter(job: GenerateJob, intervalMs: number, onError: (error: unknown) => void) {
    const id = job.id as string;
    let stage = '';
    let sequence = 0;
    let lastAt = 0;
    return (progress: GenerationProgress) => {
      const now = Date.now();
      if (progress.stage === stage && now - lastAt < intervalMs) return;
      sequence = progress.stage === stage ? sequence + 1 : 1;
      stage = progress.stage;
      lastAt = now;
      const event = {
        id: `${id}-progress-${stage}-${sequence}`,
        event: 'progress' as const,
        progress,
        startedAt: job.processedOn,
      };
      const before = this.pending.get(id) ?? Promise.resolve();
      this.pending.set(id, before.then(() => this.record(id, job.data.input, event)).catch(onError));
    };
  }
}
