// A generation as clients see it (GET /generations/:id, list entries, event and webhook
// bodies): its record, or the copy of its state an event kept, rendered with signed image URLs.
import type { Config } from '../config.js';
import type { Generation } from '../contracts/schemas.js';
import { isTerminal } from '../contracts/status.js';
import type { ObjectStore } from '../storage/index.js';
import type { GenerationEstimate } from './estimates.js';
import type { GenerationRecord, GenerationState } from './lifecycle.js';

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function generationUrls(publicBaseUrl: string, id: string) {
  return {
    get: `${publicBaseUrl}/generations/${id}`,
    cancel: `${publicBaseUrl}/generations/${id}/cancel`,
    stream: `${publicBaseUrl}/generations/${id}/events`,
  };
}

/**
 * The generation as of `state`: its record's own state by default, or the state an event kept.
 * Only a read of the record as it is now carries an estimate.
 */
export async function renderGeneration(
  config: Pick<Config, 'publicBaseUrl' | 'imageUrlTtlSeconds'>,
  store: ObjectStore,
  record: GenerationRecord,
  state: GenerationState = record,
  estimate: GenerationEstimate = { queue_position: null, eta_seconds: null },
): Promise<Generation> {
  const { status } = state;
  const result = status === 'succeeded' ? state.result : null;
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
  return {
    id: record.id,
    status,
    input: record.input,
    model: result?.model ?? record.input.model ?? null,
    progress: state.progress,
    created_at: record.createdAt,
    started_at: iso(state.startedAt),
    completed_at: isTerminal(status) ? iso(state.completedAt) : null,
    error: status === 'failed' ? state.error : null,
    images,
    metrics: result?.metrics ?? null,
    prompt_tokens: result?.prompt_tokens ?? null,
    truncated: result?.truncated ?? null,
    unknown_words: result?.unknown_words ?? null,
    webhook: record.webhookFailure,
    ...estimate,
    urls: generationUrls(config.publicBaseUrl, record.id),
  };
}
