// A generation's life has one owner: its record, one Redis hash holding everything a client
// reads of it, changed only by the transitions here. Each transition is one Lua script that
// checks the state before it changes it, changes nothing once the generation is terminal, and
// appends the event (with the webhook that event owes) in the same call, so GET, the event
// stream and the webhooks never disagree. BullMQ only moves the work and retries it; its job
// states never decide what a client sees.
//
//   queued ──start──► processing ──commit──► succeeded
//     │  ▲               │ │ └─────fail(final)──► failed
//     │  └─fail(retry)───┘ └──cancel requested, then commit/fail/start──► canceled
//     └────────cancel───────────────────────────────────────────────────► canceled
//
// Every attempt gets a number from `start`; an attempt's progress, commit and failure count only
// while it is the latest one (a worker that lost its lock and runs on beside the next attempt
// changes nothing), and its images live under its own name prefix, so no attempt deletes
// another's. A failed or canceled generation's images are deleted through the storage garbage
// list, retried until the store has done it.
import { ServiceError } from '../errors.js';
import type { RedisClient } from '../queue/redis.js';
import { type GenerationInput, attemptPrefix, generationPrefix } from '../contracts/jobs.js';
import {
  GenerationFailure,
  GenerationResult,
  StoredInput,
  StoredProgress,
  StoredWebhookFailure,
} from '../contracts/records.js';
import type { WebhookFailure } from '../contracts/schemas.js';
import { GENERATION_STATUSES, type GenerationProgress, type GenerationStatus } from '../contracts/status.js';
import type { ServiceKeys } from './redis-keys.js';
import type { Queues } from '../queue/queues.js';
import { type WriteMark, execReplies, isFieldMap, waitForReplicas, writeMark } from '../queue/redis.js';
import type { RedisScript, ScriptArg } from '../queue/script.js';
import { CANCEL, COMMIT, CREATE, DELETE, DISCARD, FAIL, PROGRESS, SET_IF_PRESENT, START } from './lifecycle-scripts.js';
import { jsonCodec } from './redis-codec.js';
import type { StorageGarbage } from './storage-garbage.js';
import type { WebhookOutbox } from './webhooks/outbox.js';

/** What a generation is at one moment: the record's changing part, which each event keeps a copy of. */
export interface GenerationState {
  status: GenerationStatus;
  /** When the latest attempt started (ms since epoch). */
  startedAt: number | null;
  completedAt: number | null;
  progress: GenerationProgress | null;
  result: GenerationResult | null;
  error: GenerationFailure | null;
}

export interface GenerationRecord extends GenerationState {
  id: string;
  owner: string;
  input: GenerationInput;
  createdAt: string;
  /** Attempts started so far. */
  attempt: number;
  /** Its job is known to be on the queue (a request that failed to add it leaves it false). */
  enqueued: boolean;
  cancelRequestedAt: number | null;
  /** The last webhook event given up on (the dead letter). */
  webhookFailure: WebhookFailure | null;
}

export const codecs = {
  input: jsonCodec(StoredInput),
  progress: jsonCodec(StoredProgress),
  result: jsonCodec(GenerationResult),
  error: jsonCodec(GenerationFailure),
  webhookFailure: jsonCodec(StoredWebhookFailure),
};

function isStatus(value: string | undefined): value is GenerationStatus {
  return GENERATION_STATUSES.some((status) => status === value);
}

function numberOrNull(text: string | undefined): number | null {
  return text === undefined ? null : Number(text);
}

/** The changing part of a record or of an event, from its fields; null when there is no status. */
export function stateFromFields(fields: Readonly<Record<string, string>>, what: string): GenerationState | null {
  const status = fields.status;
  if (status === undefined) return null;
  if (!isStatus(status)) throw new Error(`${what} has an unknown status ${JSON.stringify(status)}`);
  return {
    status,
    startedAt: numberOrNull(fields.started_at),
    completedAt: numberOrNull(fields.completed_at),
    progress: fields.progress === undefined ? null : codecs.progress.decode(fields.progress, `${what} progress`),
    result: fields.result === undefined ? null : codecs.result.decode(fields.result, `${what} result`),
    error: fields.error === undefined ? null : codecs.error.decode(fields.error, `${what} error`),
  };
}

export function recordFromFields(id: string, fields: Readonly<Record<string, string>>): GenerationRecord | null {
  const what = `generation ${id}`;
  const state = stateFromFields(fields, what);
  if (!state) return null;
  return {
    id,
    owner: fields.owner,
    input: codecs.input.decode(fields.input, `${what} input`),
    createdAt: fields.created_at,
    attempt: Number(fields.attempt ?? 0),
    enqueued: fields.enqueued === '1',
    cancelRequestedAt: numberOrNull(fields.cancel_requested_at),
    webhookFailure:
      fields.webhook_failure === undefined
        ? null
        : codecs.webhookFailure.decode(fields.webhook_failure, `${what} webhook failure`),
    ...state,
  };
}

export type StartOutcome =
  { outcome: 'run'; attempt: number } | { outcome: 'finished'; status: GenerationStatus } | { outcome: 'missing' };
export type CommitOutcome = (typeof COMMIT_OUTCOMES)[number];
export type FailOutcome = (typeof FAIL_OUTCOMES)[number];
export type CancelOutcome =
  { outcome: 'canceled' | 'requested' | 'missing' } | { outcome: 'finished'; status: GenerationStatus };
export type DeleteOutcome = { outcome: 'deleted' | 'missing' } | { outcome: 'unfinished'; status: GenerationStatus };

/** An attempt, or any attempt (for a failure no attempt reported: a job BullMQ gave up on). */
export type AttemptRef = number | 'any';

export interface CreateRequest {
  id: string;
  owner: string;
  input: GenerationInput;
  createdAt: string;
  idempotency?: { key: string; value: string; ttlSeconds: number };
}

export type CreateOutcome =
  { outcome: 'created'; written: WriteMark } | { outcome: 'exists' } | { outcome: 'replay'; value: string };

interface Reply {
  outcome: string;
  detail: string;
}

const COMMIT_OUTCOMES = ['committed', 'canceled', 'stale', 'missing', ...GENERATION_STATUSES] as const;
const FAIL_OUTCOMES = ['queued', 'stale', 'missing', ...GENERATION_STATUSES] as const;

/** The script's outcome as one of those it may answer; anything else is a script out of step with this code. */
function outcomeOf<T extends string>(allowed: readonly T[], outcome: string): T {
  const found = allowed.find((candidate) => candidate === outcome);
  if (found === undefined) throw new Error(`unexpected lifecycle outcome ${JSON.stringify(outcome)}`);
  return found;
}

/** How long a change waits for its Redis replicas (REDIS_WAIT_REPLICAS) before it counts as in doubt. */
const REPLICA_WAIT_MS = 2000;

export class Lifecycle {
  constructor(
    private readonly queues: Pick<Queues, 'redis' | 'get'>,
    private readonly keys: ServiceKeys,
    private readonly retentionSeconds: number,
    private readonly outbox: WebhookOutbox,
    private readonly garbage: StorageGarbage,
    /** REDIS_WAIT_REPLICAS: replicas that must hold a transition before anything acts on it. */
    private readonly replicas = 0,
  ) {}

  /**
   * Returns once `replicas` Redis replicas hold what was written through `written`'s socket
   * (WAIT): a master acknowledges writes before any replica has them, and a failover to a
   * replica that lacks them takes them back. So a 202 or 204, a webhook, a deleted file, act
   * only on what a failover keeps; otherwise the write is in doubt and the caller is told to
   * retry (a worker's attempt fails and is retried, a request gets 503).
   */
  async confirm(id: string, written: WriteMark): Promise<void> {
    if (this.replicas === 0) return;
    const reached = await waitForReplicas(
      this.redis,
      this.keys.generation(id),
      this.replicas,
      REPLICA_WAIT_MS,
      written,
    );
    if (reached < this.replicas) {
      throw new ServiceError(
        'service_unavailable',
        `${reached} of the ${this.replicas} Redis replicas asked for (REDIS_WAIT_REPLICAS) confirmed the change in time; retry (with the same Idempotency-Key for a new generation)`,
        { retryAfterSeconds: 1 },
      );
    }
  }

  /** The socket a write to this generation just went through; take it right after the write. */
  written(id: string): WriteMark {
    return writeMark(this.redis, this.keys.generation(id));
  }

  // Read on each use: the connection opens on first use and is replaced after a close.
  private get redis(): RedisClient {
    return this.queues.redis;
  }

  async read(id: string): Promise<GenerationRecord | null> {
    return recordFromFields(id, await this.redis.hgetall(this.keys.generation(id)));
  }

  /** Records in the order of `ids`, null where there is none; one round trip. */
  async readMany(ids: readonly string[]): Promise<(GenerationRecord | null)[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.generation(id));
    const replies = await execReplies(pipeline);
    return ids.map((id, i) => {
      const fields = replies[i];
      if (!isFieldMap(fields)) throw new Error(`generation ${id}: HGETALL answered no hash`);
      return recordFromFields(id, fields);
    });
  }

  /** The statuses of `ids`, null where there is no record; one round trip. */
  async statuses(ids: readonly string[]): Promise<(string | null)[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hget(this.keys.generation(id), 'status');
    const replies = await execReplies(pipeline);
    return ids.map((_, i) => {
      const status = replies[i];
      return typeof status === 'string' ? status : null;
    });
  }

  private creationKeys(id: string, owner: string, idempotencyKey?: string): string[] {
    const keys = [
      this.keys.generation(id),
      this.keys.generationIndex,
      this.keys.ownerGenerations(owner),
      this.keys.openGenerations,
    ];
    return idempotencyKey === undefined ? keys : [...keys, idempotencyKey];
  }

  /** The record, queued, listed and (with an Idempotency-Key) claimed for the key, in one step. */
  async create({ id, owner, input, createdAt, idempotency }: CreateRequest): Promise<CreateOutcome> {
    const reply = await CREATE.runList(this.redis, this.creationKeys(id, owner, idempotency?.key), [
      id,
      Date.now(),
      owner,
      codecs.input.encode(input),
      createdAt,
      input.webhook ?? '',
      input.webhook_events_filter.join(','),
      ...(idempotency ? [idempotency.value, idempotency.ttlSeconds] : []),
    ]);
    if (reply[0] === 'replay') return { outcome: 'replay', value: reply[1] };
    return reply[0] === 'exists' ? { outcome: 'exists' } : { outcome: 'created', written: this.written(id) };
  }

  /** A record for a job an older version queued without one, its job known to be on the queue. */
  async adopt(request: Omit<CreateRequest, 'idempotency'>): Promise<void> {
    // Two workers adopting the same job: the first one's record stands.
    await this.create(request);
    await this.markEnqueued(request.id);
  }

  /** Notes that the job is on the queue; false when the record is gone (discarded meanwhile). */
  async markEnqueued(id: string): Promise<boolean> {
    return (await SET_IF_PRESENT.run(this.redis, [this.keys.generation(id)], ['enqueued', '1'])) === 1;
  }

  /** Undoes `create` for a job that never reached the queue; false when it did, or ran. */
  async discard(id: string, owner: string, idempotencyKey?: string): Promise<boolean> {
    return (await DISCARD.run(this.redis, this.creationKeys(id, owner, idempotencyKey), [id])) === 1;
  }

  private async transition(script: RedisScript, id: string, args: ScriptArg[], extraKeys: string[] = []) {
    const keys = [
      this.keys.generation(id),
      this.keys.events(id),
      this.keys.eventIds(id),
      this.keys.webhookOutbox,
      this.keys.openGenerations,
      this.keys.storageGarbage,
      ...extraKeys,
    ];
    const now = Date.now();
    const raw = await script.runList(this.redis, keys, [id, now, this.retentionSeconds, generationPrefix(id), ...args]);
    const written = this.written(id);
    const webhookCount = Number(raw[2]);
    const owedWebhooks = raw.slice(3, 3 + webhookCount);
    const owedGarbage = raw.slice(3 + webhookCount);
    await this.confirm(id, written);
    // What the transition owes is kept in Redis until it is done: settled here at once, by
    // the workers' upkeep after a crash.
    await Promise.all([this.outbox.queueOwed(owedWebhooks), this.garbage.deleteOwed(owedGarbage, now)]);
    const reply: Reply = { outcome: raw[0], detail: raw[1] };
    return reply;
  }

  async start(id: string): Promise<StartOutcome> {
    const { outcome, detail } = await this.transition(START, id, []);
    if (outcome === 'run') return { outcome, attempt: Number(detail) };
    if (outcome === 'finished' && isStatus(detail)) return { outcome, status: detail };
    return { outcome: 'missing' };
  }

  /** The attempt's progress, and an event when `eventId` is given; false when the attempt is not the latest. */
  async progress(id: string, attempt: number, progress: GenerationProgress, eventId?: string): Promise<boolean> {
    const args = [attempt, codecs.progress.encode(progress), eventId ?? ''];
    return (await this.transition(PROGRESS, id, args)).outcome === 'recorded';
  }

  async commit(id: string, attempt: number, result: GenerationResult): Promise<CommitOutcome> {
    const { outcome } = await this.transition(COMMIT, id, [attempt, codecs.result.encode(result)]);
    return outcomeOf(COMMIT_OUTCOMES, outcome);
  }

  async fail(id: string, attempt: AttemptRef, error: GenerationFailure, final: boolean): Promise<FailOutcome> {
    const args = [attempt === 'any' ? '' : attempt, codecs.error.encode(error), final ? '1' : '0'];
    const { outcome } = await this.transition(FAIL, id, args);
    return outcomeOf(FAIL_OUTCOMES, outcome);
  }

  /**
   * An attempt stopped without an outcome (its worker shuts down and hands the job back): the
   * generation is queued again, or canceled when a cancel was requested meanwhile.
   */
  async handBack(id: string, attempt: number): Promise<FailOutcome> {
    return this.fail(id, attempt, { code: 'worker_lost', message: 'its worker shut down' }, false);
  }

  async cancel(id: string): Promise<CancelOutcome> {
    const { outcome, detail } = await this.transition(CANCEL, id, []);
    if (outcome === 'finished' && isStatus(detail)) return { outcome, status: detail };
    return { outcome: outcomeOf(['canceled', 'requested', 'missing'], outcome) };
  }

  /** Removes a finished generation: its record, events and listing; its images through the garbage list. */
  async remove(id: string, owner: string): Promise<DeleteOutcome> {
    const { outcome, detail } = await this.transition(
      DELETE,
      id,
      [],
      [this.keys.generationIndex, this.keys.ownerGenerations(owner)],
    );
    if (outcome === 'unfinished' && isStatus(detail)) return { outcome, status: detail };
    const removed = outcomeOf(['deleted', 'missing'], outcome);
    // The job is only transport, gone with the record: one a worker holds cannot be removed,
    // and is dropped when the worker finds no record; another remover may have taken it first.
    await this.removeJob(id);
    return { outcome: removed };
  }

  /** The generation's queue job, once the record no longer needs it. Best effort. */
  async removeJob(id: string): Promise<void> {
    await this.queues
      .get('generate')
      .remove(id)
      .catch(() => 0);
  }

  /** Lists every image of a generation for deletion (one whose record is gone already). */
  async deleteImages(id: string): Promise<void> {
    await this.garbage.delete(generationPrefix(id));
  }

  /** An attempt that will never commit gives up its images (the next attempt stores its own). */
  async abandonAttempt(id: string, attempt: number): Promise<void> {
    await this.garbage.delete(attemptPrefix(id, attempt));
  }

  /** Keeps a webhook event given up on, for GET /generations/:id, as long as the generation. */
  async recordWebhookFailure(id: string, failure: Omit<WebhookFailure, 'status'>): Promise<void> {
    const value = codecs.webhookFailure.encode({ status: 'failed', ...failure });
    await SET_IF_PRESENT.run(this.redis, [this.keys.generation(id)], ['webhook_failure', value]);
  }

  /** Whether `attempt` is the one running now: checked before storing, so a stale attempt writes nothing. */
  async isCurrent(id: string, attempt: number): Promise<boolean> {
    const [status, current] = await this.redis.hmget(this.keys.generation(id), 'status', 'attempt');
    return status === 'processing' && current === String(attempt);
  }

  /** A page of the open generations created before `before` (ms), oldest first, for upkeep to check on. */
  openBefore(before: number, offset: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.openGenerations, '-inf', before, 'LIMIT', offset, limit);
  }

  /** Drops an id from the open set (its record is gone). */
  async forgetOpen(id: string): Promise<void> {
    await this.redis.zrem(this.keys.openGenerations, id);
  }

  /** The idempotency record's key that `create` claimed for this generation, if any. */
  idempotencyKeyOf(id: string): Promise<string | null> {
    return this.redis.hget(this.keys.generation(id), 'idempotency_key');
  }
}
