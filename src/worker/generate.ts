// The generate handler: hands the job's input to the scheduler (which batches it with the
// other active generations), reports progress on the job (and as throttled events in its log), stores
// the kept images, and maps failures to retry or not.
import { UnrecoverableError, WaitingError } from 'bullmq';
import type { Config } from '../config.js';
import {
  CONTENT_TYPES,
  type GenerateJobResult,
  type StoredImage,
  generationPrefix,
  imageKey,
} from '../contracts/jobs.js';
import type { GenerationProgress } from '../contracts/status.js';
import type { Logger } from '../logger.js';
import type { GeneratedImage } from '../models/types.js';
import type { GenerateJob } from '../service/generation-view.js';
import type { ObjectStore } from '../storage/index.js';
import { CANCELED, type CancelWatcher, SHUTDOWN } from './cancel.js';
import { encodeImage } from './encode.js';
import { type PartialImageStore, recordPartialImages } from './partial-images.js';
import { failureOf, jobFailure } from './failures.js';
import type { WorkerMetrics } from './metrics.js';
import type { GenerationScheduler } from './scheduler.js';
import type { GenerationEvents } from '../service/generation-events.js';
import { unknownWords } from '../lib/prompt-words.js';

const PROGRESS_WRITE_INTERVAL_MS = 250;
const STORE_CONCURRENCY = 4;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export interface GenerateDeps {
  config: Config;
  /** The pack a generation that names none runs on. */
  defaultModel: string;
  scheduler: GenerationScheduler;
  store: ObjectStore;
  cancels: CancelWatcher;
  events: GenerationEvents;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Where new best candidates go while a generation runs (streamed partial images). */
  partialImages?: PartialImageStore;
  /** Each pack's training vocabulary, by pack name, for the prompt words it never saw. */
  vocabularies?: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Writes progress to the job at most every 250 ms and as `progress` events at the configured pace. */
function progressReporter(job: GenerateJob, deps: GenerateDeps, log: Logger) {
  let lastWrite = 0;
  let lastStage = '';
  const progressEvent = deps.events.progressReporter(job, deps.config.progressEventIntervalMs, (error) =>
    log.warn({ err: error }, 'progress event not written'),
  );
  return (progress: GenerationProgress) => {
    progressEvent(progress);
    const now = Date.now();
    const stageChanged = progress.stage !== lastStage;
    if (stageChanged || now - lastWrite >= PROGRESS_WRITE_INTERVAL_MS || progress.completed === progress.total) {
      lastWrite = now;
      lastStage = progress.stage;
      job.updateProgress(progress).catch((error) => log.warn({ err: error }, 'progress update failed'));
      if (stageChanged) log.info({ progress }, 'generation stage');
    }
  };
}

async function storeImages(
  id: string,
  images: GeneratedImage[],
  deps: GenerateDeps,
  job: GenerateJob,
): Promise<StoredImage[]> {
  const format = job.data.input.output_format;
  const stored: StoredImage[] = new Array(images.length);
  // An earlier attempt killed while storing may have left images or temp files: start clean,
  // so the generation holds exactly this attempt's images.
  try {
    await deps.store.deletePrefix(generationPrefix(id));
  } catch (error) {
    throw jobFailure('storage_failed', messageOf(error));
  }
  let next = 0;
  let done = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < images.length) {
      const i = next++;
      const image = images[i];
      const bytes = await encodeImage(image.pixels, image.width, image.height, format);
      const key = imageKey(id, image.rank, format);
      try {
        await deps.store.put(key, bytes, CONTENT_TYPES[format]);
      } catch (error) {
        failed = true;
        throw jobFailure('storage_failed', messageOf(error));
      }
      stored[i] = {
        rank: image.rank,
        key,
        score: image.score,
        seed: image.seed,
        width: image.width,
        height: image.height,
        format,
      };
      done += 1;
      await job
        .updateProgress({ stage: 'storing', completed: done, total: images.length })
        // eslint-disable-next-line no-restricted-syntax -- progress is advisory: a lost write must not fail stored images
        .catch(() => {});
    }
  };
  // Every write settles before a failure is reported, so no write lands after the cleanup.
  const settled = await Promise.allSettled(Array.from({ length: Math.min(STORE_CONCURRENCY, images.length) }, worker));
  const rejected = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (rejected) throw rejected.reason;
  return stored;
}

function canceled(message: string): Error {
  return jobFailure('canceled', message);
}

async function removeImages(id: string, deps: GenerateDeps, log: Logger): Promise<void> {
  await deps.store
    .deletePrefix(generationPrefix(id))
    .catch((cleanup: unknown) => log.warn({ err: cleanup }, 'removing the stored images failed'));
}

export function createGenerateHandler(deps: GenerateDeps) {
  return async (job: GenerateJob, token?: string): Promise<GenerateJobResult> => {
    const id = String(job.id);
    const log = deps.logger.child({ jobId: id, queue: 'generate', attempt: job.attemptsMade + 1 });
    if (await deps.cancels.isRequested(id)) {
      // An earlier attempt, killed while storing, may have left images behind.
      await removeImages(id, deps, log);
      throw canceled('canceled before it started');
    }
    const input = job.data.input;
    const started = Date.now();
    deps.metrics.queueWait.observe({ queue: 'generate' }, (started - job.timestamp) / 1000);
    await deps.events.start(job);
    const tracked = deps.cancels.track(id);
    const partials = recordPartialImages(deps.partialImages, id, progressReporter(job, deps, log), log);
    try {
      log.info({ candidates: input.candidates, n: input.n, model: input.model }, 'generation started');
      const result = await deps.scheduler.submit({
        prompt: input.prompt,
        model: input.model ?? deps.defaultModel,
        candidates: input.candidates,
        n: input.n,
        topK: input.top_k,
        temperature: input.temperature,
        topP: input.top_p,
        seed: input.seed,
        signal: tracked.signal,
        onProgress: partials.onProgress,
      });
      await partials.flush();
      if (tracked.signal.aborted || (await deps.cancels.isRequested(id))) throw canceled('canceled by request');
      const storeStarted = performance.now();
      const images = await storeImages(id, result.images, deps, job);
      const storeMs = performance.now() - storeStarted;
      const { sampleMs, decodeMs, rerankMs } = result.timings;
      for (const [stage, ms] of Object.entries({
        sampling: sampleMs,
        decoding: decodeMs,
        reranking: rerankMs,
        storing: storeMs,
      })) {
        deps.metrics.stageDuration.observe({ stage }, ms / 1000);
      }
      if (!(await deps.cancels.commit(id))) throw canceled('canceled by request');
      const round = (ms: number) => Math.round(ms * 10) / 10;
      log.info({ images: images.length, totalMs: Date.now() - started }, 'generation succeeded');
      return {
        model: result.model,
        prompt_tokens: result.promptTokens,
        truncated: result.truncated,
        prompt_used: result.promptUsed,
        unknown_words: unknownWords(input.prompt, deps.vocabularies?.get(result.model)),
        images,
        metrics: {
          queue_ms: Math.max(0, started - job.timestamp),
          sample_ms: round(sampleMs),
          decode_ms: round(decodeMs),
          rerank_ms: round(rerankMs),
          store_ms: round(storeMs),
          total_ms: Date.now() - job.timestamp,
        },
      };
    } catch (error) {
      if (tracked.signal.aborted && tracked.signal.reason === SHUTDOWN && token) {
        // Shutting down mid-job: hand the job back to the queue for another worker.
        log.warn('returning the job to the queue on shutdown');
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const failure =
        tracked.signal.aborted && tracked.signal.reason === CANCELED
          ? canceled('canceled by request')
          : failureOf(error, 'generation_failed');
      log.warn({ err: failure }, 'generation attempt failed');
      const lastAttempt = failure instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      // A retry starts by clearing the folder; after the last attempt nothing would, and a failed
      // or canceled generation keeps no images, also none an earlier attempt (killed) left.
      if (lastAttempt) await removeImages(id, deps, log);
      throw failure;
    } finally {
      tracked.release();
    }
  };
}
