// The producer side of generations: enqueue (with idempotency and backpressure), read,
// list, cancel across processes, delete.
import { createHash, randomInt } from 'node:crypto';
import { Type } from '@fastify/type-provider-typebox';
import type { Config } from '../config.js';
import { type GenerationCompletion, type GenerationInput, WEBHOOK_EVENTS } from '../contracts/jobs.js';
import {
  type CreateGenerationBody,
  type Generation,
  GenerationAccepted,
  type ListGenerationsQuery,
  type ModelInfo,
} from '../contracts/schemas.js';
import { ServiceError, fieldError } from '../errors.js';
import { OutboundRefusedError, checkOutboundUrl } from '../net/outbound.js';
import type { ObjectStore } from '../storage/index.js';
import type { Principal } from './api-keys.js';
import { withQueuePlace } from '../queue/depth.js';
import { generationUrls, renderGeneration } from './generation-view.js';
import { isGenerationId, newGenerationId } from './ids.js';
import { type ServiceKeys, serviceKeys } from './redis-keys.js';
import { servedModel } from './model-registry.js';
import { RateLimiter } from './limits.js';
import type { Queues } from '../queue/queues.js';
import { GenerationEventLog } from './generation-events.js';
import { type GenerationRecord, Lifecycle } from './lifecycle.js';
import { jsonCodec } from './redis-codec.js';
import { GenerationEstimates } from './estimates.js';
import { StorageGarbage } from './storage-garbage.js';
import { WebhookOutbox } from './webhooks/outbox.js';

const DEFAULT_N = 32;
const LIST_SCAN_LIMIT = 1000;
/** How long a replayed request waits for the first request with its key to finish adding the job. */
const REPLAY_WAIT_MS = 5000;
const REPLAY_POLL_MS = 50;

const IdempotencyRecord = Type.Object({ fingerprint: Type.String(), accepted: GenerationAccepted });
const idempotencyRecords = jsonCodec(IdempotencyRecord);

/**
 * The stored input: every default applied, `defaultCandidates` those of the workers serving the
 * model, and `defaultModel` (the pack the workers serve by default, when one has reported) the
 * model of a request that names none, so that the generation names its model from the start
 * and runs on the pack whose defaults it was given.
 */
export function normalizeGenerationInput(
  body: CreateGenerationBody,
  defaultCandidates: number,
  defaultModel?: string,
): GenerationInput {
  const model = body.model ?? defaultModel;
  const candidates = body.candidates ?? defaultCandidates;
  const n = body.n ?? Math.min(DEFAULT_N, candidates);
  if (n > candidates) throw fieldError('n', `must be at most candidates (${candidates})`);
  return {
    prompt: body.prompt.normalize('NFC'),
    candidates,
    n,
    ...(body.top_k !== undefined && { top_k: body.top_k }),
    ...(body.temperature !== undefined && { temperature: body.temperature }),
    ...(body.top_p !== undefined && { top_p: body.top_p }),
    seed: body.seed ?? randomInt(0, 2 ** 32),
    ...(model !== undefined && { model }),
    output_format: body.output_format ?? 'png',
    ...(body.webhook !== undefined && { webhook: body.webhook }),
    webhook_events_filter: body.webhook_events_filter ?? [...WEBHOOK_EVENTS],
    ...(body.rank_by !== undefined && { rank_by: body.rank_by }),
  };
}

/** Same JSON for the same request, whatever the key order: the idempotency fingerprint. */
function fingerprint(value: unknown): string {
  const canonical = JSON.stringify(value, (_key, inner) =>
    inner && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => a.localeCompare(b)))
      : inner,
  );
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * A completion's image read and checked for the model the request runs on, inside its queue place
 * (so no URL is fetched for a request the queue refuses): the API's (src/api/completion.ts).
 * Undefined for a generation from the prompt alone.
 */
export type CompletionPreparer = (
  model: ModelInfo | undefined,
) => Promise<{ completion: GenerationCompletion; image: string } | undefined>;

export class Generations {
  private readonly keys: ServiceKeys;
  readonly lifecycle: Lifecycle;
  private readonly estimates: GenerationEstimates;
  readonly events: GenerationEventLog;
  readonly limiter: RateLimiter;

  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
    private readonly store: ObjectStore,
  ) {
    this.keys = serviceKeys(config.queuePrefix);
    const outbox = new WebhookOutbox(queues, this.keys, config.redisWaitReplicas);
    const garbage = new StorageGarbage(queues, this.keys, store);
    this.lifecycle = new Lifecycle(
      queues,
      this.keys,
      config.retentionSeconds,
      outbox,
      garbage,
      config.redisWaitReplicas,
    );
    this.events = new GenerationEventLog(queues, this.keys);
    this.estimates = new GenerationEstimates(queues, this.keys, this.lifecycle);
    this.limiter = new RateLimiter(queues, this.keys, config.retentionSeconds, this.lifecycle);
  }

  private get redis() {
    return this.queues.redis;
  }

  async create(
    body: CreateGenerationBody,
    owner: Principal,
    idempotencyKey?: string,
    prepareCompletion?: CompletionPreparer,
  ): Promise<{ accepted: GenerationAccepted; replayed: boolean }> {
    await this.queues.connected();
    const model = await servedModel(this.redis, this.keys, body.model, 'generations');
    // The serving workers' defaults (their device's candidates, their default pack); this
    // process's own candidates and no model until one has reported.
    const input = normalizeGenerationInput(
      body,
      model?.generation?.default_candidates ?? this.config.defaultCandidates,
      model?.name,
    );
    if (input.webhook !== undefined) this.assertWebhookUsable(input.webhook, owner);
    // Strictly null: a worker from before CLIP-only packs publishes no `generation` at all.
    if (model?.generation === null) {
      throw fieldError(
        'model',
        `${model.name} serves CLIP only (classification and embeddings); see GET /models for the models that generate`,
      );
    }
    if (model?.generation && input.top_k !== undefined && input.top_k > model.generation.codebook_size) {
      throw fieldError(
        'top_k',
        `must be at most the codebook size of ${model.name} (${model.generation.codebook_size})`,
      );
    }
    // Scoped to the key: another client's Idempotency-Key never replays (or blocks) ours.
    const recordKey =
      idempotencyKey === undefined
        ? undefined
        : this.keys.idempotency(createHash('sha256').update(`${owner.id}\n${idempotencyKey}`).digest('hex'));
    const bodyFingerprint = fingerprint(body);
    if (recordKey) {
      const text = await this.redis.get(recordKey);
      const replay = text === null ? null : await this.replay(recordKey, text, bodyFingerprint);
      if (replay) return { accepted: replay, replayed: true };
    }
    const id = newGenerationId();
    const place = {
      queue: this.queues.get('generate'),
      maxQueued: this.config.generateMaxQueued,
      retryAfterSeconds: this.config.queueFullRetryAfterSeconds,
    };
    return withQueuePlace(this.redis, place, id, async () => {
      const prepared = await prepareCompletion?.(model);
      const completed = prepared ? { ...input, completion: prepared.completion } : input;
      return this.enqueue(id, completed, owner, recordKey, bodyFingerprint, prepared?.image);
    });
  }

  private async enqueue(
    id: string,
    input: GenerationInput,
    owner: Principal,
    recordKey: string | undefined,
    bodyFingerprint: string,
    image?: string,
  ): Promise<{ accepted: GenerationAccepted; replayed: boolean }> {
    const releaseSlot = await this.limiter.admitGeneration(owner, id);
    let refundCandidates: () => Promise<void>;
    try {
      refundCandidates = await this.limiter.reserveCandidates(owner, input.candidates);
    } catch (error) {
      await releaseSlot();
      throw error;
    }
    // Best effort: the error that made the request fail is the one to report, and a refund that
    // fails too means Redis is down for it as well.
    const refund = () =>
      Promise.all([releaseSlot(), refundCandidates()]).then(
        () => undefined,
        () => undefined,
      );
    const createdAt = new Date().toISOString();
    const accepted: GenerationAccepted = {
      id,
      status: 'queued',
      created_at: createdAt,
      seed: input.seed,
      urls: generationUrls(this.config.publicBaseUrl, id),
      ...(input.completion && { completion: input.completion }),
    };
    const idempotency = recordKey && {
      key: recordKey,
      value: idempotencyRecords.encode({ fingerprint: bodyFingerprint, accepted }),
      ttlSeconds: this.config.idempotencyTtlSeconds,
    };
    let created;
    try {
      created = await this.lifecycle.create({
        id,
        owner: owner.id,
        input,
        createdAt,
        ...(idempotency && { idempotency }),
      });
    } catch (error) {
      await refund();
      throw error;
    }
    // Ids are UUIDv7: one that exists already is a bug, not a race.
    if (created.outcome === 'exists') throw new Error(`generation ${id} exists already`);
    if (created.outcome === 'replay') {
      // Another request with this key won the race between our read and our record.
      await refund();
      const replay = recordKey ? await this.replay(recordKey, created.value, bodyFingerprint) : null;
      if (replay) return { accepted: replay, replayed: true };
      throw new ServiceError('service_unavailable', 'a request with this Idempotency-Key was just withdrawn; retry', {
        retryAfterSeconds: 1,
      });
    }
    try {
      await this.queues
        .get('generate')
        .add(
          'generate',
          { input, created_at: createdAt, owner: owner.id, recorded: true, ...(image !== undefined && { image }) },
          { jobId: id },
        );
    } catch (error) {
      // The add may have reached Redis before it failed: taking the record back is safe either
      // way, as a worker drops a job whose record is gone. A discard that fails too is left to
      // the workers' upkeep, which discards a record whose job never appeared.
      await this.lifecycle.discard(id, owner.id, recordKey).catch(() => false);
      await refund();
      throw error;
    }
    // The job is on the queue: a note that fails here is made by the attempt that starts it.
    const kept = await this.lifecycle.markEnqueued(id).catch(() => true);
    if (!kept) {
      // Upkeep took the record back while the add hung (over a minute): the job will be dropped.
      throw new ServiceError('service_unavailable', 'the job queue answered too late; retry', {
        retryAfterSeconds: 1,
      });
    }
    await this.lifecycle.confirm(id, created.written);
    return { accepted, replayed: false };
  }

  /**
   * The answer a request with a known Idempotency-Key replays, once the first request's job is on
   * the queue; null when the first request took its generation back (it failed to add the job).
   */
  private async replay(recordKey: string, text: string, bodyFingerprint: string): Promise<GenerationAccepted | null> {
    const record = idempotencyRecords.decode(text, 'an idempotency record');
    if (record.fingerprint !== bodyFingerprint) {
      throw new ServiceError(
        'idempotency_key_reused',
        'this Idempotency-Key was first used with a different request body',
      );
    }
    const id = record.accepted.id;
    const deadline = Date.now() + REPLAY_WAIT_MS;
    for (;;) {
      const [status, enqueued] = await this.redis.hmget(this.keys.generation(id), 'status', 'enqueued');
      if (status === null) {
        // Deleted or expired since (the answer stands), or taken back with its idempotency record.
        return (await this.redis.exists(recordKey)) === 1 ? record.accepted : null;
      }
      if (
        enqueued === '1' ||
        status !== 'queued' ||
        (await this.redis.exists(this.queues.get('generate').toKey(id))) === 1
      ) {
        // The first answer may have been a 503 because no replica confirmed it: this one waits
        // for them too. The note is a write of this connection's, and a replica that has it has
        // everything the master wrote before, the record and the job included.
        await this.lifecycle.markEnqueued(id);
        await this.lifecycle.confirm(id, this.lifecycle.written(id));
        return record.accepted;
      }
      if (Date.now() >= deadline) {
        throw new ServiceError(
          'service_unavailable',
          'the first request with this Idempotency-Key is still being accepted; retry',
          { retryAfterSeconds: 1 },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, REPLAY_POLL_MS));
    }
  }

  private assertWebhookUsable(url: string, owner: Principal): void {
    if (!owner.webhookSecret)
      throw new ServiceError(
        'webhooks_disabled',
        'set WEBHOOK_SECRET on the server (or use a key from the key store) to use webhooks',
      );
    try {
      new URL(url);
    } catch {
      throw fieldError('webhook', 'must be an absolute http(s) URL');
    }
    // A literal internal address is refused now; a name is judged when delivering, after DNS.
    try {
      checkOutboundUrl(url, this.config.outboundAllow);
    } catch (error) {
      if (!(error instanceof OutboundRefusedError)) throw error;
      throw new ServiceError('url_not_allowed', `webhook: ${error.message}`, {
        errors: [{ field: 'webhook', message: error.message }],
      });
    }
  }

  private notFound(id: string): ServiceError {
    return new ServiceError('not_found', `no generation ${JSON.stringify(id.slice(0, 100))}`);
  }

  /** The generation's record when `owner` made it; another key's generation is as absent as a missing one. */
  async record(id: string, owner: string): Promise<GenerationRecord> {
    await this.queues.connected();
    const record = isGenerationId(id) ? await this.lifecycle.read(id) : null;
    if (!record || record.owner !== owner) throw this.notFound(id);
    return record;
  }

  view(record: GenerationRecord): Promise<Generation> {
    return renderGeneration(this.config, this.store, record);
  }

  /** The generation as it is now, with its queue position and time left while it is open. */
  async get(id: string, owner: string): Promise<Generation> {
    const record = await this.record(id, owner);
    return renderGeneration(this.config, this.store, record, record, await this.estimates.of(record));
  }

  async list(query: ListGenerationsQuery, owner: string): Promise<{ data: Generation[]; next_cursor: string | null }> {
    const limit = query.limit ?? 20;
    if (query.cursor !== undefined && !isGenerationId(query.cursor))
      throw fieldError('cursor', 'is not a cursor returned by this API');
    await this.queues.connected();
    const index = this.keys.ownerGenerations(owner);
    const data: Generation[] = [];
    let from = query.cursor === undefined ? '+' : `(${query.cursor}`;
    let lastSeen: string | null = null;
    let scanned = 0;
    let exhausted = false;
    while (data.length < limit && scanned < LIST_SCAN_LIMIT) {
      const ids = await this.redis.zrange(index, from, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit);
      if (ids.length === 0) {
        exhausted = true;
        break;
      }
      const records = await this.lifecycle.readMany(ids);
      for (const [i, id] of ids.entries()) {
        from = `(${id}`;
        lastSeen = id;
        scanned += 1;
        const record = records[i];
        if (!record) {
          // Removed by retention or DELETE: drop it from the indexes too.
          await this.redis.multi().zrem(index, id).zrem(this.keys.generationIndex, id).exec();
          continue;
        }
        if (record.owner !== owner) continue;
        if (query.status === undefined || record.status === query.status) data.push(await this.view(record));
        if (data.length === limit) break;
      }
    }
    return { data, next_cursor: exhausted ? null : lastSeen };
  }

  /**
   * Cancels a queued generation at once; a running one stops at its next chunk, on whichever
   * worker runs it (told by a message, and by the record it polls), and ends canceled.
   */
  async cancel(id: string, owner: string): Promise<Generation> {
    await this.record(id, owner);
    const canceled = await this.lifecycle.cancel(id);
    if (canceled.outcome === 'missing') throw this.notFound(id);
    if (canceled.outcome === 'finished')
      throw new ServiceError('generation_finished', `generation ${id} already ${canceled.status}`);
    if (canceled.outcome === 'requested') await this.redis.publish(this.keys.cancelChannel, id);
    return this.get(id, owner);
  }

  async remove(id: string, owner: string): Promise<void> {
    await this.record(id, owner);
    const removed = await this.lifecycle.remove(id, owner);
    if (removed.outcome === 'missing') throw this.notFound(id);
    if (removed.outcome === 'unfinished')
      throw new ServiceError('generation_not_finished', `generation ${id} is ${removed.status}; cancel it first`);
  }
}
