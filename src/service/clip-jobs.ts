// The producer side of CLIP jobs: a request enqueues one job and waits for its result.
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import type {
  ClassifyJobData,
  ClassifyJobResult,
  ClipImagesRef,
  EmbedJobData,
  EmbedJobResult,
} from '../contracts/jobs.js';
import { ClipImages } from './clip-images.js';
import { parseFailure } from '../contracts/jobs.js';
import { ERRORS, ServiceError, isErrorCode } from '../errors.js';
import { withQueuePlace } from '../queue/depth.js';
import { type ServiceKeys, serviceKeys } from '../queue/keys.js';
import { servedModel } from './model-registry.js';
import type { Queues } from '../queue/queues.js';

type ClipJob =
  | { name: 'classify'; data: ClassifyJobData; result: ClassifyJobResult }
  | { name: 'embed'; data: EmbedJobData; result: EmbedJobResult };

/** A checked request whose images are read only once it has a place in the queue. */
export interface PendingClipJob<D> {
  data: Omit<D, 'images'>;
  images?: () => Promise<Uint8Array[]>;
}

export class ClipJobs {
  private readonly keys: ServiceKeys;
  private readonly images: ClipImages;

  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
  ) {
    this.keys = serviceKeys(config.queuePrefix);
    this.images = new ClipImages(queues, this.keys);
  }

  classify(request: PendingClipJob<ClassifyJobData>): Promise<ClassifyJobResult> {
    return this.run<Extract<ClipJob, { name: 'classify' }>>('classify', request);
  }

  embed(request: PendingClipJob<EmbedJobData>): Promise<EmbedJobResult> {
    return this.run<Extract<ClipJob, { name: 'embed' }>>('embed', request);
  }

  /**
   * The model and a queue place first, then the images (URL fetches included), then the job;
   * the images are deleted and a job still waiting is removed when the request ends.
   */
  private async run<J extends ClipJob>(name: J['name'], request: PendingClipJob<J['data']>): Promise<J['result']> {
    await this.queues.connected();
    const queue = this.queues.get('classify');
    await servedModel(this.queues.redis, this.keys, request.data.model, 'clip');
    const place = {
      queue,
      maxQueued: this.config.classifyMaxQueued,
      retryAfterSeconds: this.config.queueFullRetryAfterSeconds,
    };
    const jobId = randomUUID();
    let ref: ClipImagesRef | undefined;
    try {
      const { events, job } = await withQueuePlace(this.queues.redis, place, jobId, async () => {
        if (request.images) ref = await this.images.put(jobId, await request.images(), this.config.classifyTimeoutMs);
        const data = { ...request.data, ...(ref && { images: ref }) } as J['data'];
        // Subscribe before adding, so that a fast worker's completion is not missed.
        const events = await this.queues.classifyEvents();
        return { events, job: await queue.add(name, data, { jobId }) };
      });
      try {
        return (await job.waitUntilFinished(events, this.config.classifyTimeoutMs)) as J['result'];
      } catch (error) {
        const failure = this.toServiceError(error, jobId);
        // Nobody waits for it any more: a job no worker has taken yet never runs.
        // eslint-disable-next-line no-restricted-syntax -- a job a worker holds cannot be removed; it runs and its images are gone
        if (failure.code === 'timeout') await job.remove().catch(() => {});
        throw failure;
      }
    } finally {
      // eslint-disable-next-line no-restricted-syntax -- the answer stands; the images expire by their TTL anyway
      await this.images.remove(ref).catch(() => {});
    }
  }

  private toServiceError(error: unknown, jobId: string): ServiceError {
    const message = error instanceof Error ? error.message : String(error);
    if (/timed out/i.test(message)) {
      return new ServiceError('timeout', `the ${this.config.classifyTimeoutMs} ms wait for job ${jobId} ran out`);
    }
    const failure = parseFailure(message);
    // The client's own faults keep their code; the rest is the service's, reported as job_failed.
    if (isErrorCode(failure.code) && ERRORS[failure.code].status < 500) {
      return new ServiceError(failure.code, failure.message);
    }
    return new ServiceError('job_failed', `job ${jobId} failed: ${failure.code}: ${failure.message}`);
  }
}
