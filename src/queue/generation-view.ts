// A generation as clients see it (GET /generations/:id, list entries, webhook bodies),
// derived from its BullMQ job and our cancel marker.
import type { Job, JobState } from 'bullmq';
import type { Config } from '../config.js';
import { type GenerateJobData, type GenerateJobResult, parseFailure } from '../contracts/jobs.js';
import type { Generation } from '../contracts/schemas.js';
import type { GenerationProgress, GenerationStatus } from '../contracts/status.js';
import type { ObjectStore } from '../storage/index.js';

export type GenerateJob = Job<GenerateJobData, GenerateJobResult, 'generate'>;

export function statusOf(state: JobState | 'unknown', failedReason: string | undefined, cancelRequested: boolean): GenerationStatus {
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
  return { get: `${publicBaseUrl}/generations/${id}`, cancel: `${publicBaseUrl}/generations/${id}/cancel` };
}

export async function buildGenerationView(
  config: Pick<Config, 'publicBaseUrl' | 'imageUrlTtlSeconds'>,
  store: ObjectStore,
  job: GenerateJob,
  state: JobState | 'unknown',
  cancelRequestedAt: number | null,
): Promise<Generation> {
  const id = job.id as string;
  const status = statusOf(state, job.failedReason, cancelRequestedAt !== null);
  const result = status === 'succeeded' ? job.returnvalue : null;
  const images = result
    ? await Promise.all(
        result.images.map(async ({ key, ...image }) => {
          const { url, expiresAt } = await store.url(key, config.imageUrlTtlSeconds);
          return { rank: image.rank, url, expires_at: expiresAt.toISOString(), score: image.score, seed: image.seed, width: image.width, height: image.height, format: image.format };
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
    urls: generationUrls(config.publicBaseUrl, id),
  };
}
