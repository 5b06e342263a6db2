// A generation as clients see it (GET /generations/:id, list entries, webhook bodies),
// derived from its BullMQ job, our cancel marker and a webhook given up on.
import type { Job, JobState, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { type GenerateJobData, type GenerateJobResult, parseFailure } from '../contracts/jobs.js';
import type { Generation, WebhookFailure } from '../contracts/schemas.js';
import type { GenerationProgress, GenerationStatus } from '../contracts/status.js';
import type { ObjectStore } from '../storage/index.js';
import type { ServiceKeys } from '../queue/keys.js';

export type GenerateJob = Job<GenerateJobData, GenerateJobResult, 'generate'>;
/** What a view reads of a job: the job itself, or the job as one of its logged events saw it. */
export type GenerationSnapshot = Pick<
  GenerateJob,
  'id' | 'data' | 'returnvalue' | 'failedReason' | 'finishedOn' | 'processedOn' | 'progress'
>;

export function statusOf(
  state: JobState | 'unknown',
  failedReason: string | undefined,
  cancelRequested: boolean,
): GenerationStatus {
  switch (state) {
    case 'completed':
      return 'succeeded';
    case 'failed':
      return parseFailure(failedReason).code === 'canceled' ? 'canceled' : 'failed';
    case 'active':
      return 'processing';
    default:
      // Waiting, delayed for a retry, or paused: a cancel takes effect at once for clients;
      // the worker that picks the job up later discards it.
      return cancelRequested ? 'canceled' : 'queued';
  }
}

function iso(ms: number | undefined | null): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

function progressOf(progress: unknown): GenerationProgress | null {
  return progress && typeof progress === 'object' && 'stage' in progress ? (progress as GenerationProgress) : null;
}

export function generationUrls(publicBaseUrl: string, id: string) {
  return {
    get: `${publicBaseUrl}/generations/${id}`,
    cancel: `${publicBaseUrl}/generations/${id}/cancel`,
    stream: `${publicBaseUrl}/generations/${id}/events`,
  };
}

/**
 * The job's state, with job data at least as new: a job read before it finished, whose state is
 * read after, is read again, so that a finished state always comes with its result.
 */
export async function currentState(
  queue: Queue,
  job: GenerateJob,
): Promise<{ job: GenerateJob; state: JobState | 'unknown' }> {
  const state = await job.getState();
  if ((state === 'completed' || state === 'failed') && !job.finishedOn) {
    const fresh = (await queue.getJob(job.id as string)) as GenerateJob | undefined;
    if (fresh) return { job: fresh, state };
  }
  return { job, state };
}

/** What our own keys add to a job: when a cancel was requested, and a webhook given up on. */
export interface GenerationMarks {
  cancelRequestedAt: number | null;
  webhookFailure: WebhookFailure | null;
}

export async function readGenerationMarks(redis: Redis, keys: ServiceKeys, id: string): Promise<GenerationMarks> {
  const [cancelAt, webhookFailure] = await redis.mget(keys.cancel(id), keys.webhookFailure(id));
  return {
    cancelRequestedAt: cancelAt === null ? null : Number(cancelAt),
    webhookFailure: webhookFailure === null ? null : (JSON.parse(webhookFailure) as WebhookFailure),
  };
}

export async function buildGenerationView(
  config: Pick<Config, 'publicBaseUrl' | 'imageUrlTtlSeconds'>,
  store: ObjectStore,
  job: GenerationSnapshot,
  state: JobState | 'unknown',
  { cancelRequestedAt, webhookFailure }: GenerationMarks,
): Promise<Generation> {
  const id = job.id as string;
  const status = statusOf(state, job.failedReason, cancelRequestedAt !== null);
  const result = status === 'succeeded' ? job.returnvalue : null;
  const images = result
    ? await Promise.all(
        result.images.map(async ({ key, ...image }) => {
          const { url, expiresAt } = await store.url(key, config.imageUrlTtlSeconds);
          return {
            rank: image.rank,
            url,
            expires_at: expiresAt.toISOString(),
            score: image.score,
            seed: image.seed,
            width: image.width,
            height: image.height,
            format: image.format,
          };
        }),
      )
    : [];
  const finishedAt = job.finishedOn ?? (status === 'canceled' ? cancelRequestedAt : null);
  return {
    id,
    status,
    input: job.data.input,
    model: result?.model ?? job.data.input.model ?? null,
    progress: progressOf(job.progress),
    created_at: job.data.created_at,
    started_at: iso(job.processedOn),
    completed_at: status === 'queued' || status === 'processing' ? null : iso(finishedAt),
    error: status === 'failed' ? parseFailure(job.failedReason) : null,
    images,
    metrics: result?.metrics ?? null,
    prompt_tokens: result?.prompt_tokens ?? null,
    truncated: result?.truncated ?? null,
    unknown_words: result?.unknown_words ?? null,
    webhook: webhookFailure,
    urls: generationUrls(config.publicBaseUrl, id),
  };
}
