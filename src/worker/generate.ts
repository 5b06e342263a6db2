// The generate handler: starts an attempt on the generation's record, hands the input to the
// scheduler (which batches it with the other active generations), records progress (and
// throttled events), stores the kept images under the attempt's own names and commits them.
// Every outcome goes through the lifecycle (src/service/lifecycle.ts); what BullMQ is told only
// decides whether it runs the job again.
import { UnrecoverableError, WaitingError } from 'bullmq';
import { ReplyError } from 'ioredis';
import type { Config } from '../config.js';
import sharp from 'sharp';
import { CONTENT_TYPES, type GenerationCompletion, imageKey, keepCellsOf, parseFailure } from '../contracts/jobs.js';
import type { GenerationResult, StoredImage } from '../contracts/records.js';
import type { GenerationProgress } from '../contracts/status.js';
import type { Logger } from '../logger.js';
import type { CompletionInput, GeneratedImage } from '../models/types.js';
import type { Lifecycle } from '../service/lifecycle.js';
import type { ObjectStore } from '../storage/index.js';
import { CANCELED, type CancelWatcher, SHUTDOWN } from './cancel.js';
import type { JobFor } from './dispatch.js';
import { encodeImage } from '../lib/encode-image.js';
import type { PartialImages } from '../service/partial-images.js';
import { failureOf, jobFailure } from './failures.js';
import type { WorkerMetrics } from './metrics.js';
import type { GenerationScheduler } from '../models/index.js';
import { unknownWords } from '../lib/prompt-words.js';
import { ANONYMOUS } from '../service/api-keys.js';

const PROGRESS_WRITE_INTERVAL_MS = 250;
const STORE_CONCURRENCY = 4;
/** How long an attempt keeps asking Redis for the outcome of its commit or failure through an outage. */
const TRANSITION_RETRY_MS = 30_000;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export interface GenerateDeps {
  config: Config;
  /** The pack a generation that names none runs on. */
  defaultModel: string;
  scheduler: GenerationScheduler;
  store: ObjectStore;
  cancels: CancelWatcher;
  lifecycle: Lifecycle;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Where new best candidates go while a generation runs (streamed partial images). */
  partialImages: PartialImages;
  /** Each pack's training vocabulary, by pack name, for the prompt words it never saw. */
  vocabularies?: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * Runs a transition until Redis answers it (a script's error is an answer): an attempt that does
 * not know whether its commit happened can neither keep nor delete its images.
 */
async function answered<T>(transition: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + TRANSITION_RETRY_MS;
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 2000)) {
    try {
      return await transition();
    } catch (error) {
      if (error instanceof ReplyError || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/**
 * The attempt's progress: into its record at most every 250 ms (and at each stage change and
 * each stage's end), and as a `progress` event at each stage change, then at most once per
 * `PROGRESS_EVENT_INTERVAL_MS`, numbered per stage so that a retried attempt writes the same ids.
 * Written one at a time, in order.
 */
function progressRecorder(id: string, attempt: number, deps: GenerateDeps, log: Logger) {
  let stage = '';
  let sequence = 0;
  let lastWrite = 0;
  let lastEvent = 0;
  let writes = Promise.resolve();
  const report = (progress: GenerationProgress) => {
    const now = Date.now();
    const stageChanged = progress.stage !== stage;
    let eventId: string | undefined;
    if (stageChanged || now - lastEvent >= deps.config.progressEventIntervalMs) {
      sequence = stageChanged ? 1 : sequence + 1;
      lastEvent = now;
      eventId = `${id}-progress-${progress.stage}-${sequence}`;
    }
    const stageEnded = progress.completed === progress.total;
    if (eventId === undefined && !stageEnded && now - lastWrite < PROGRESS_WRITE_INTERVAL_MS) return;
    if (stageChanged) log.info({ progress }, 'generation stage');
    stage = progress.stage;
    lastWrite = now;
    writes = writes
      .then(() => deps.lifecycle.progress(id, attempt, progress, eventId))
      .then(
        () => undefined,
        (error: unknown) => log.warn({ err: error }, 'progress not recorded'),
      );
  };
  return { report, settled: () => writes };
}

async function storeImages(
  id: string,
  attempt: number,
  images: GeneratedImage[],
  format: StoredImage['format'],
  deps: GenerateDeps,
  report: (progress: GenerationProgress) => void,
): Promise<StoredImage[]> {
  const stored: StoredImage[] = new Array(images.length);
  let next = 0;
  let done = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < images.length) {
      const i = next++;
      const image = images[i];
      const bytes = await encodeImage(image.pixels, image.width, image.height, format);
      const key = imageKey(id, attempt, image.rank, format);
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
      report({ stage: 'storing', completed: done, total: images.length });
    }
  };
  // Every write settles before a failure is reported, so none lands after the attempt gave up.
  const settled = await Promise.allSettled(Array.from({ length: Math.min(STORE_CONCURRENCY, images.length) }, worker));
  const rejected = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (rejected) throw rejected.reason;
  return stored;
}

/** The engine's completion input: the job's image (already at the pack's size) as RGB pixels, and its kept cells. */
async function completionOf(completion: GenerationCompletion, image: string | undefined): Promise<CompletionInput> {
  if (image === undefined) throw jobFailure('validation_failed', 'the job of an image completion carries no image');
  const [height, width] = completion.image_size;
  const { data, info } = await sharp(Buffer.from(image, 'base64'))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== width || info.height !== height || info.channels !== 3)
    throw jobFailure('validation_failed', `the job's image is ${info.width}×${info.height}, not ${width}×${height}`);
  return { pixels: new Uint8Array(data), keepCells: keepCellsOf(completion) };
}

export function createGenerateHandler(deps: GenerateDeps) {
  return async (job: JobFor<'generate'>, token?: string): Promise<void> => {
    const id = String(job.id);
    const jobLog = deps.logger.child({ jobId: id, queue: 'generate' });
    let started = await deps.lifecycle.start(id);
    if (started.outcome === 'missing' && !job.data.recorded) {
      // Queued by a version from before records: its generation is adopted, not dropped.
      const { input, created_at: createdAt, owner = ANONYMOUS } = job.data;
      await deps.lifecycle.adopt({ id, owner, input, createdAt });
      jobLog.info('generation queued by an older version adopted');
      started = await deps.lifecycle.start(id);
    }
    if (started.outcome !== 'run') {
      // Canceled, deleted or finished by an earlier attempt that died before BullMQ heard.
      jobLog.info({ started }, 'nothing to run');
      return;
    }
    const { attempt } = started;
    const log = jobLog.child({ attempt });
    const input = job.data.input;
    const startedAt = Date.now();
    deps.metrics.queueWait.observe({ queue: 'generate' }, (startedAt - job.timestamp) / 1000);
    const tracked = deps.cancels.track(id);
    const progress = progressRecorder(id, attempt, deps, log);
    const partials = deps.partialImages.recorder(id, log);
    try {
      log.info({ candidates: input.candidates, n: input.n, model: input.model }, 'generation started');
      const generated = await deps.scheduler.submit({
        prompt: input.prompt,
        model: input.model ?? deps.defaultModel,
        candidates: input.candidates,
        n: input.n,
        topK: input.top_k,
        temperature: input.temperature,
        topP: input.top_p,
        seed: input.seed,
        ...(input.completion && { completion: await completionOf(input.completion, job.data.image) }),
        ...(input.rank_by && { rankBy: input.rank_by }),
        signal: tracked.signal,
        onProgress: ({ best, ...reported }) => {
          progress.report(reported);
          if (best) partials.record(best);
        },
      });
      await partials.flush();
      if (tracked.signal.aborted) throw jobFailure('canceled', 'canceled by request');
      if (!(await deps.lifecycle.isCurrent(id, attempt))) {
        log.warn('a later attempt took over: nothing stored');
        return;
      }
      const storeStarted = performance.now();
      const images = await storeImages(id, attempt, generated.images, input.output_format, deps, progress.report);
      const storeMs = performance.now() - storeStarted;
      const { sampleMs, decodeMs, rerankMs } = generated.timings;
      for (const [stage, ms] of Object.entries({
        sampling: sampleMs,
        decoding: decodeMs,
        reranking: rerankMs,
        storing: storeMs,
      })) {
        deps.metrics.stageDuration.observe({ stage }, ms / 1000);
      }
      const round = (ms: number) => Math.round(ms * 10) / 10;
      const result: GenerationResult = {
        model: generated.model,
        prompt_tokens: generated.promptTokens,
        truncated: generated.truncated,
        prompt_used: generated.promptUsed,
        unknown_words: unknownWords(input.prompt, deps.vocabularies?.get(generated.model)),
        images,
        metrics: {
          queue_ms: Math.max(0, startedAt - job.timestamp),
          sample_ms: round(sampleMs),
          decode_ms: round(decodeMs),
          rerank_ms: round(rerankMs),
          store_ms: round(storeMs),
          total_ms: Date.now() - job.timestamp,
        },
      };
      await progress.settled();
      const outcome = await answered(() => deps.lifecycle.commit(id, attempt, result));
      // Canceled, superseded by a later attempt, ended or gone meanwhile: these images are nobody's.
      if (outcome !== 'committed') await deps.lifecycle.abandonAttempt(id, attempt);
      log.info({ outcome, images: images.length, totalMs: Date.now() - startedAt }, 'generation attempt ended');
    } catch (error) {
      if (tracked.signal.aborted && tracked.signal.reason === SHUTDOWN && token) {
        // Shutting down mid-job: hand the job back to the queue for another worker, whose
        // attempt starts afresh.
        log.warn('returning the job to the queue on shutdown');
        await answered(() => deps.lifecycle.handBack(id, attempt));
        await deps.lifecycle.abandonAttempt(id, attempt);
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const canceled = tracked.signal.aborted && tracked.signal.reason === CANCELED;
      const failure = canceled ? jobFailure('canceled', 'canceled by request') : failureOf(error, 'generation_failed');
      const final = failure instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      await progress.settled();
      const outcome = await answered(() => deps.lifecycle.fail(id, attempt, parseFailure(failure.message), final));
      // A client's cancel is the service doing what it was asked: no stack, nothing to look into.
      if (canceled) log.info({ outcome }, 'generation canceled by request');
      else log.warn({ err: failure, outcome }, 'generation attempt failed');
      // Unless this attempt's own commit went through after all (its answer lost), its images
      // go: retried, the next attempt stores its own; ended, the generation keeps none (written
      // after another process ended it, they would escape the deletion it listed).
      if (outcome !== 'succeeded') await deps.lifecycle.abandonAttempt(id, attempt);
      // Only a generation queued again is worth another run of its job.
      if (outcome !== 'queued') throw new UnrecoverableError(failure.message);
      throw failure;
    } finally {
      tracked.release();
    }
  };
}
