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
import { type ClipOutcome, ClipReplies } from './clip-replies.js';
import { parseFailure } from '../contracts/jobs.js';
import { ERRORS, ServiceError, isErrorCode } from '../errors.js';
import { withQueuePlace } from '../queue/depth.js';
import { type ServiceKeys, serviceKeys } from './redis-keys.js';
import { servedModel } from './model-registry.js';
import type { Queues, TypedQueue } from '../queue/queues.js';

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
  private readonly replies: ClipReplies;

  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
  ) {
    this.keys = serviceKeys(config.queuePrefix);
    this.images = new ClipImages(queues, this.keys);
    this.replies = new ClipReplies(config.redisUrl, this.keys, (jobId) => this.readBack(jobId));
  }

  close(): Promise<void> {
    return this.replies.close();
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
    let answered = false;
    try {
      await this.replies.listen();
      const { job, reply } = await withQueuePlace(this.queues.redis, place, jobId, async () => {
        const images = request.images && (await request.images());
        ref = images && this.images.ref(jobId, images.length);
        // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- the request's own data, with the two fields every CLIP job carries
        const data = { ...request.data, reply_to: this.replies.channel, ...(ref && { images: ref }) } as J['data'];
        return this.add(queue, name, data, jobId, images);
      });
      const outcome = await reply;
      if (outcome && 'result' in outcome) {
        answered = true;
        // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- the worker's handler for this job name returned it
        return outcome.result as J['result'];
      }
      const failure = outcome ? this.toServiceError(outcome.failure, jobId) : this.timeout(jobId);
      // Nobody waits for it any more: a job no worker has taken yet never runs.
      // eslint-disable-next-line no-restricted-syntax -- a job a worker holds cannot be removed; it runs and its images are gone
      if (!outcome) await job.remove().catch(() => {});
      throw failure;
    } finally {
      this.replies.forget(jobId);
      // eslint-disable-next-line no-restricted-syntax -- the answer stands; the images expire by their TTL anyway
      const removing = ref ? this.images.remove(ref).catch(() => {}) : undefined;
      // An answer need not wait for it; a request that gives up leaves nothing behind.
      if (!answered) await removing;
    }
  }

  /**
   * Stores the images and adds the job without a round trip between them: both go down the one
   * command connection in that order, so a worker never finds the job before its images.
   */
  private async add<J extends ClipJob>(
    queue: TypedQueue<'classify'>,
    name: J['name'],
    data: J['data'],
    jobId: string,
    images: Uint8Array[] | undefined,
  ) {
    // The wait starts before the job exists, so that no reply can come before it.
    const reply = this.replies.wait(jobId, this.config.classifyTimeoutMs);
    const stored = images ? this.images.put(jobId, images, this.config.classifyTimeoutMs) : undefined;
    // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- BullMQ's add takes the queue's data union; name and data belong together by J
    const [put, added] = await Promise.allSettled([stored, queue.add(name, data as never, { jobId })]);
    if (put.status === 'rejected') {
      // eslint-disable-next-line no-restricted-syntax -- a job without its images fails by itself
      if (added.status === 'fulfilled') await added.value.remove().catch(() => {});
      throw put.reason;
    }
    if (added.status === 'rejected') throw added.reason;
    return { job: added.value, reply };
  }

  private timeout(jobId: string): ServiceError {
    return new ServiceError('timeout', `the ${this.config.classifyTimeoutMs} ms wait for job ${jobId} ran out`);
  }

  /** The job's outcome as BullMQ holds it, for a reply that may have been lost. */
  private async readBack(jobId: string): Promise<ClipOutcome | undefined> {
    const queue = this.queues.get('classify');
    const state = await queue.getJobState(jobId);
    if (state !== 'completed' && state !== 'failed') return undefined;
    const job = await queue.getJob(jobId);
    if (!job) return undefined;
    return state === 'completed' ? { result: job.returnvalue } : { failure: job.failedReason };
  }

  private toServiceError(message: string, jobId: string): ServiceError {
    const failure = parseFailure(message);
    // The client's own faults keep their code; the rest is the service's, reported as job_failed.
    if (isErrorCode(failure.code) && ERRORS[failure.code].status < 500) {
      return new ServiceError(failure.code, failure.message);
    }
    return new ServiceError('job_failed', `job ${jobId} failed: ${failure.code}: ${failure.message}`);
  }
}
