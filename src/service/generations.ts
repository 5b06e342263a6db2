// The producer side of generations: enqueue (with idempotency and backpressure), read,
// list, cancel across processes, delete.
import { createHash, randomInt } from 'node:crypto';
import type { Config } from '../config.js';
import { type GenerationInput, WEBHOOK_EVENTS, formatFailure, generationPrefix } from '../contracts/jobs.js';
import type {
  CreateGenerationBody,
  Generation,
  GenerationAccepted,
  ListGenerationsQuery,
} from '../contracts/schemas.js';
import { isTerminal } from '../contracts/status.js';
import { ServiceError, fieldError } from '../errors.js';
import { OutboundRefusedError, checkOutboundUrl } from '../net/outbound.js';
import type { ObjectStore } from '../storage/index.js';
import { ANONYMOUS, type Principal } from './api-keys.js';
import { withQueuePlace } from '../queue/depth.js';
import {
  type GenerateJob,
  buildGenerationView,
  currentState,
  generationUrls,
  readGenerationMarks,
} from './generation-view.js';
import { isGenerationId, newGenerationId } from './ids.js';
import { type ServiceKeys, serviceKeys } from '../queue/keys.js';
import { servedModel } from './model-registry.js';
import { RateLimiter } from './limits.js';
import type { Queues } from '../queue/queues.js';
import { GenerationEvents } from './generation-events.js';
import { recordCancel } from './cancel-commit.js';

const DEFAULT_CANDIDATES = 512;
const DEFAULT_N = 32;
const LIST_SCAN_LIMIT = 1000;

export function normalizeGenerationInput(body: CreateGenerationBody): GenerationInput {
  const candidates = body.candidates ?? DEFAULT_CANDIDATES;
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
    ...(body.model !== undefined && { model: body.model }),
    output_format: body.output_format ?? 'png',
    ...(body.webhook !== undefined && { webhook: body.webhook }),
    webhook_events_filter: body.webhook_events_filter ?? [...WEBHOOK_EVENTS],
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

interface IdempotencyRecord {
  fingerprint: string;
  accepted: GenerationAccepted;
}

function ownerOf(job: GenerateJob): string {
  return job.data.owner ?? ANONYMOUS;
}

export class Generations {
  private readonly keys: ServiceKeys;
  readonly events: GenerationEvents;
  readonly limiter: RateLimiter;

  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
    private readonly store: ObjectStore,
  ) {
    this.keys = serviceKeys(config.queuePrefix);
    this.events = new GenerationEvents(queues, this.keys, config.retentionSeconds);
    this.limiter = new RateLimiter(queues, this.keys, config.retentionSeconds);
  }

  private get redis() {
    return this.queues.redis;
  }

  async create(
    body: CreateGenerationBody,
    owner: Principal,
    idempotencyKey?: string,
  ): Promise<{ accepted: GenerationAccepted; replayed: boolean }> {
    const input = normalizeGenerationInput(body);
    await this.queues.connected();
    if (input.webhook !== undefined) this.assertWebhookUsable(input.webhook, owner);
    const model = await servedModel(this.redis, this.keys, input.model, 'generations');
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
      const replay = await this.replay(recordKey, bodyFingerprint);
      if (replay) {
        // Mends an index write that failed when the generation was accepted.
        // eslint-disable-next-line no-restricted-syntax -- the replay stands; the next one tries the index again
        await this.index(replay.id, owner.id).catch(() => {});
        return { accepted: replay, replayed: true };
      }
    }
    const id = newGenerationId();
    const place = {
      queue: this.queues.get('generate'),
      maxQueued: this.config.generateMaxQueued,
      retryAfterSeconds: this.config.queueFullRetryAfterSeconds,
    };
    return withQueuePlace(this.redis, place, id, () => this.enqueue(id, input, owner, recordKey, bodyFingerprint));
  }

  private async enqueue(
    id: string,
    input: GenerationInput,
    owner: Principal,
    recordKey: string | undefined,
    bodyFingerprint: string,
  ): Promise<{ accepted: GenerationAccepted; replayed: boolean }> {
    const releaseSlot = await this.limiter.admitGeneration(owner, id);
    let refundCandidates: (() => Promise<void>) | undefined;
    try {
      refundCandidates = await this.limiter.reserveCandidates(owner, input.candidates);
    } catch (error) {
      await releaseSlot();
      throw error;
    }
    const createdAt = new Date().toISOString();
    const accepted: GenerationAccepted = {
      id,
      status: 'queued',
      created_at: createdAt,
      seed: input.seed,
      urls: generationUrls(this.config.publicBaseUrl, id),
    };
    if (recordKey) {
      const record: IdempotencyRecord = { fingerprint: bodyFingerprint, accepted };
      const claimed = await this.redis.set(
        recordKey,
        JSON.stringify(record),
        'EX',
        this.config.idempotencyTtlSeconds,
        'NX',
      );
      if (claimed === null) {
        // Another request with this key won the race between our read and our write.
        const replay = await this.replay(recordKey, bodyFingerprint).catch(async (error) => {
          await Promise.all([releaseSlot(), refundCandidates?.()]);
          throw error;
        });
        if (replay) {
          await Promise.all([releaseSlot(), refundCandidates()]);
          return { accepted: replay, replayed: true };
        }
      }
    }
    try {
      await this.queues
        .get('generate')
        .add('generate', { input, created_at: createdAt, owner: owner.id }, { jobId: id });
    } catch (error) {
      // The rollback is best effort: the add's error is the one to report, and a rollback that
      // fails too means Redis is down for it as well.
      // eslint-disable-next-line no-restricted-syntax -- see above
      if (recordKey) await this.redis.del(recordKey).catch(() => {});
      // eslint-disable-next-line no-restricted-syntax -- see above
      await Promise.all([releaseSlot(), refundCandidates()]).catch(() => {});
      throw error;
    }
    // The job exists and will run: a failed index write keeps its idempotency record and its
    // quota (a retry replays this id and writes the index again) rather than inviting a second.
    // eslint-disable-next-line no-restricted-syntax -- the 202 stands: the job runs, and a replay writes the index
    await this.index(id, owner.id).catch(() => {});
    return { accepted, replayed: false };
  }

  /** Lists the generation for its owner and for retention; repeating it changes nothing. */
  private async index(id: string, owner: string): Promise<void> {
    const results = await this.redis
      .multi()
      .zadd(this.keys.generationIndex, 0, id)
      .zadd(this.keys.ownerGenerations(owner), 0, id)
      .exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
  }

  private async replay(recordKey: string, bodyFingerprint: string): Promise<GenerationAccepted | null> {
    const text = await this.redis.get(recordKey);
    if (text === null) return null;
    const record = JSON.parse(text) as IdempotencyRecord;
    if (record.fingerprint !== bodyFingerprint) {
      throw new ServiceError(
        'idempotency_key_reused',
        'this Idempotency-Key was first used with a different request body',
      );
    }
    return record.accepted;
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

  /** The generation when `owner` made it; another key's generation is as absent as a missing one. */
  async job(id: string, owner: string): Promise<GenerateJob> {
    await this.queues.connected();
    const job = isGenerationId(id)
      ? ((await this.queues.get('generate').getJob(id)) as GenerateJob | undefined)
      : undefined;
    if (!job || ownerOf(job) !== owner)
      throw new ServiceError('not_found', `no generation ${JSON.stringify(id.slice(0, 100))}`);
    return job;
  }

  async view(job: GenerateJob): Promise<Generation> {
    const [current, marks] = await Promise.all([
      currentState(this.queues.get('generate'), job),
      readGenerationMarks(this.redis, this.keys, job.id as string),
    ]);
    return buildGenerationView(this.config, this.store, current.job, current.state, marks);
  }

  async get(id: string, owner: string): Promise<Generation> {
    return this.view(await this.job(id, owner));
  }

  async list(query: ListGenerationsQuery, owner: string): Promise<{ data: Generation[]; next_cursor: string | null }> {
    const limit = query.limit ?? 20;
    if (query.cursor !== undefined && !isGenerationId(query.cursor))
      throw fieldError('cursor', 'is not a cursor returned by this API');
    await this.queues.connected();
    const queue = this.queues.get('generate');
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
      for (const id of ids) {
        from = `(${id}`;
        lastSeen = id;
        scanned += 1;
        const job = (await queue.getJob(id)) as GenerateJob | undefined;
        if (!job) {
          // Removed by retention or DELETE: drop it from the indexes too.
          await this.redis.multi().zrem(index, id).zrem(this.keys.generationIndex, id).exec();
          continue;
        }
        if (ownerOf(job) !== owner) continue;
        const view = await this.view(job);
        if (query.status === undefined || view.status === query.status) data.push(view);
        if (data.length === limit) break;
      }
    }
    return { data, next_cursor: exhausted ? null : lastSeen };
  }

  /** Marks the generation canceled for every process: a key the worker checks, and a message. */
  async cancel(id: string, owner: string): Promise<Generation> {
    const job = await this.job(id, owner);
    const before = await this.view(job);
    if (isTerminal(before.status))
      throw new ServiceError('generation_finished', `generation ${id} already ${before.status}`);
    if (!(await recordCancel(this.redis, this.keys, id, this.config.retentionSeconds)))
      throw new ServiceError('generation_finished', `generation ${id} is past the point where it can be canceled`);
    await this.redis.publish(this.keys.cancelChannel, id);
    const after = await this.view(job);
    // Canceled while queued: finished now, so its terminal event (and webhook) is written now too,
    // and it keeps no images (a queued job may hold those of an attempt whose worker was killed).
    if (after.status === 'canceled') {
      await this.store
        .deletePrefix(generationPrefix(id))
        // A store that fails here leaves them to the worker that picks the job up, which removes them too.
        .catch(() => undefined);
      await this.events.finished(job, {
        state: 'failed',
        reason: formatFailure('canceled', 'canceled while queued'),
      });
    }
    return after;
  }

  async remove(id: string, owner: string): Promise<void> {
    const job = await this.job(id, owner);
    const view = await this.view(job);
    if (!isTerminal(view.status))
      throw new ServiceError('generation_not_finished', `generation ${id} is ${view.status}; cancel it first`);
    try {
      await job.remove();
    } catch {
      throw new ServiceError('generation_not_finished', `generation ${id} is being picked up by a worker; retry`);
    }
    await this.store.deletePrefix(generationPrefix(id));
    await this.redis
      .multi()
      .zrem(this.keys.generationIndex, id)
      .zrem(this.keys.ownerGenerations(owner), id)
      .del(
        this.keys.cancel(id),
        this.keys.committed(id),
        this.keys.webhookFailure(id),
        this.keys.events(id),
        this.keys.eventIds(id),
      )
      .exec();
  }
}
