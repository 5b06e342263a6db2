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
import type { Redis } from 'ioredis';
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
import { execReplies, isFieldMap } from '../queue/redis.js';
import { RedisScript, type ScriptArg } from '../queue/script.js';
import { jsonCodec } from './redis-codec.js';
import type { StorageGarbage } from './storage-garbage.js';
import type { WebhookOutbox } from '../webhooks/outbox.js';

/** Entries kept per event log; the terminal event is the last one written, so never trimmed away. */
const EVENT_LOG_MAX_EVENTS = 1000;

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

// Shared by the transitions. KEYS: record, event log, event ids, webhook outbox, open set,
// storage garbage. ARGV: id, now (ms), event log TTL (s), the generation's storage prefix.
// `append` writes an event once per id, a copy of the record's state, and owes its webhook when
// the generation asked for that event; `finish` makes the generation terminal. What a transition
// owes (webhooks to queue, prefixes to delete) is returned after its outcome, for the caller to
// settle at once; the outbox and the garbage list keep them until someone has.
const LIBRARY = `
local record, events, event_ids, outbox, open, garbage = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, ttl, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local TERMINAL = { succeeded = true, failed = true, canceled = true }
local owed_webhooks, owed_garbage = {}, {}

local function append(event_id, name)
  if redis.call('HEXISTS', event_ids, event_id) == 1 then return end
  local f = redis.call('HMGET', record, 'status', 'started_at', 'completed_at', 'progress', 'result', 'error',
    'webhook', 'webhook_events')
  local entry = { 'id', event_id, 'event', name, 'at', now, 'status', f[1] }
  local copied = { 'started_at', 'completed_at', 'progress', 'result', 'error' }
  for i, field in ipairs(copied) do
    if f[i + 1] then
      entry[#entry + 1] = field
      entry[#entry + 1] = f[i + 1]
    end
  end
  local entry_id = redis.call('XADD', events, 'MAXLEN', ${EVENT_LOG_MAX_EVENTS}, '*', unpack(entry))
  redis.call('HSET', event_ids, event_id, entry_id)
  redis.call('EXPIRE', events, ttl)
  redis.call('EXPIRE', event_ids, ttl)
  if f[7] and string.find(',' .. (f[8] or '') .. ',', ',' .. name .. ',', 1, true) then
    local owed = cjson.encode({ generation_id = id, event = name, event_id = event_id, url = f[7] })
    redis.call('ZADD', outbox, now, owed)
    owed_webhooks[#owed_webhooks + 1] = owed
  end
end

local function delete_later(storage_prefix)
  redis.call('ZADD', garbage, now, storage_prefix)
  owed_garbage[#owed_garbage + 1] = storage_prefix
end

local function finish(status)
  redis.call('HSET', record, 'status', status, 'completed_at', now)
  redis.call('ZREM', open, id)
  if status ~= 'succeeded' then delete_later(prefix) end
  append(id .. '-completed', 'completed')
end

local function reply(outcome, detail)
  local out = { outcome, tostring(detail or ''), #owed_webhooks }
  for _, owed in ipairs(owed_webhooks) do out[#out + 1] = owed end
  for _, owed in ipairs(owed_garbage) do out[#out + 1] = owed end
  return out
end
`;

// Runs the next attempt: 'run' with its number; 'finished' when there is nothing to run (terminal,
// or canceled now because a cancel was requested while no attempt ran); 'missing' without a record.
const START = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'cancel_requested_at')
if not f[1] then return reply('missing') end
if TERMINAL[f[1]] then return reply('finished', f[1]) end
if f[2] then
  finish('canceled')
  return reply('finished', 'canceled')
end
local attempt = redis.call('HINCRBY', record, 'attempt', 1)
-- Earlier attempts are dead, or alive without their lock and about to find out: their images go.
for earlier = 1, attempt - 1 do delete_later(prefix .. 'a' .. earlier .. '-') end
redis.call('HSET', record, 'status', 'processing', 'started_at', now, 'enqueued', '1')
append(id .. '-start', 'start')
return reply('run', attempt)
`);

// ARGV[5]: attempt, ARGV[6]: progress JSON, ARGV[7]: the progress event's id, or '' for none.
const PROGRESS = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'attempt')
if f[1] ~= 'processing' or f[2] ~= ARGV[5] then return reply('stale') end
redis.call('HSET', record, 'progress', ARGV[6])
if ARGV[7] ~= '' then append(ARGV[7], 'progress') end
return reply('recorded')
`);

// ARGV[5]: attempt, ARGV[6]: result JSON. 'committed' (now or by this attempt before), 'canceled'
// (a cancel was requested first), 'stale' (a later attempt runs), a terminal status, or 'missing'.
const COMMIT = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'attempt', 'cancel_requested_at')
if not f[1] then return reply('missing') end
if f[2] ~= ARGV[5] then return reply('stale') end
if f[1] == 'succeeded' then return reply('committed') end
if TERMINAL[f[1]] then return reply(f[1]) end
if f[1] ~= 'processing' then return reply('stale') end
if f[3] then
  finish('canceled')
  return reply('canceled')
end
redis.call('HSET', record, 'result', ARGV[6])
finish('succeeded')
return reply('committed')
`);

// ARGV[5]: attempt, or '' for whichever runs; ARGV[6]: error JSON; ARGV[7]: '1' when final.
// 'queued' (to be retried), 'failed', 'canceled' (a cancel was requested), 'stale', a terminal
// status, or 'missing'.
const FAIL = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'attempt', 'cancel_requested_at')
if not f[1] then return reply('missing') end
if ARGV[5] ~= '' and f[2] ~= ARGV[5] then return reply('stale') end
if TERMINAL[f[1]] then return reply(f[1]) end
if f[3] then
  finish('canceled')
  return reply('canceled')
end
if ARGV[7] == '1' then
  redis.call('HSET', record, 'error', ARGV[6])
  finish('failed')
  return reply('failed')
end
redis.call('HSET', record, 'status', 'queued')
return reply('queued')
`);

// 'canceled' (it was queued), 'requested' (it runs: the attempt stops at its next chunk and
// ends canceled), 'finished' with its terminal status, or 'missing'.
const CANCEL = new RedisScript(`${LIBRARY}
local status = redis.call('HGET', record, 'status')
if not status then return reply('missing') end
if TERMINAL[status] then return reply('finished', status) end
redis.call('HSETNX', record, 'cancel_requested_at', now)
if status == 'processing' then return reply('requested') end
finish('canceled')
return reply('canceled')
`);

// KEYS[7], KEYS[8]: the id index and the owner's. 'deleted', 'unfinished' with its status, or 'missing'.
const DELETE = new RedisScript(`${LIBRARY}
local status = redis.call('HGET', record, 'status')
if not status then return reply('missing') end
if not TERMINAL[status] then return reply('unfinished', status) end
redis.call('DEL', record, events, event_ids)
redis.call('ZREM', open, id)
redis.call('ZREM', KEYS[7], id)
redis.call('ZREM', KEYS[8], id)
delete_later(prefix)
return reply('deleted')
`);

// KEYS: record, id index, owner's index, open set, and the idempotency record when there is one.
// ARGV: id, now, owner, input JSON, created_at, webhook URL or '', its events (comma-separated),
// then the idempotency record's value and TTL. An idempotency record already there wins: its
// value comes back for the caller to replay.
const CREATE = new RedisScript(`
if KEYS[5] then
  local previous = redis.call('GET', KEYS[5])
  if previous then return { 'replay', previous } end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return { 'exists' } end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'input', ARGV[4], 'created_at', ARGV[5], 'status', 'queued', 'attempt', 0)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'webhook', ARGV[6], 'webhook_events', ARGV[7]) end
if KEYS[5] then redis.call('HSET', KEYS[1], 'idempotency_key', KEYS[5]) end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[8], 'EX', ARGV[9]) end
return { 'created' }
`);

// Undoes CREATE for a generation whose job never made it onto the queue: only while it is
// queued, never started and not known to be enqueued. KEYS as CREATE's; ARGV: id. 1: undone.
const DISCARD = new RedisScript(`
local f = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'enqueued')
if f[1] ~= 'queued' or f[2] ~= '0' or f[3] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if KEYS[5] then
  local value = redis.call('GET', KEYS[5])
  if value and string.find(value, ARGV[1], 1, true) then redis.call('DEL', KEYS[5]) end
end
return 1
`);

/** Sets a field only on a record that exists (a plain HSET would bring a deleted one back). */
const SET_IF_PRESENT = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`);

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

export type CreateOutcome = { outcome: 'created' | 'exists' } | { outcome: 'replay'; value: string };

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

export class Lifecycle {
  constructor(
    private readonly queues: Pick<Queues, 'redis'>,
    private readonly keys: ServiceKeys,
    private readonly retentionSeconds: number,
    private readonly outbox: WebhookOutbox,
    private readonly garbage: StorageGarbage,
  ) {}

  // Read on each use: the connection opens on first use and is replaced after a close.
  private get redis(): Redis {
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
    return { outcome: reply[0] === 'exists' ? 'exists' : 'created' };
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
    const webhookCount = Number(raw[2]);
    const owedWebhooks = raw.slice(3, 3 + webhookCount);
    const owedGarbage = raw.slice(3 + webhookCount);
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
    return { outcome: outcomeOf(['deleted', 'missing'], outcome) };
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
