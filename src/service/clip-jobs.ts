// The producer side of CLIP jobs: a request is checked, admitted, and answered from the job it
// shares with the requests that arrived with it (clip-batches.ts).
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import type { ClassifyRequestData, ClassifyResult, EmbedRequestData, EmbedResult } from '../contracts/jobs.js';
import { parseFailure } from '../contracts/jobs.js';
import { ERRORS, ServiceError, isErrorCode } from '../errors.js';
import type { Queues } from '../queue/queues.js';
import type { Principal } from './api-keys.js';
import { ClipAdmission } from './clip-admission.js';
import { type BatchOptions, ClipBatcher, type RequestOutcome } from './clip-batches.js';
import { ClipImages } from './clip-images.js';
import { type ClipOutcome, ClipReplies } from './clip-replies.js';
import type { RequestBudget } from './limits.js';
import { servedModel } from './model-registry.js';
import { type ServiceKeys, serviceKeys } from './redis-keys.js';

/** A checked request whose images are read only once it has a place in the queue. */
export interface PendingClipJob<D> {
  data: Omit<D, 'id' | 'images'>;
  images?: () => Promise<Uint8Array[]>;
}

/** Who asks, and how to tell them their budget; `signal` aborts when the client leaves. */
export interface ClipCaller {
  principal: Principal;
  signal?: AbortSignal;
  /** The request's per-minute budget, once counted (its RateLimit-* headers). */
  onBudget?: (budget: RequestBudget) => void;
}

type ClipJob =
  | { name: 'classify'; data: ClassifyRequestData; result: ClassifyResult }
  | { name: 'embed'; data: EmbedRequestData; result: EmbedResult };

export class ClipJobs {
  private readonly keys: ServiceKeys;
  private readonly replies: ClipReplies;
  private readonly admission: ClipAdmission;
  private readonly batchers: Record<ClipJob['name'], ClipBatcher>;

  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
  ) {
    this.keys = serviceKeys(config.queuePrefix);
    this.replies = new ClipReplies(config.redis, this.keys, (jobId) => this.readBack(jobId));
    this.admission = new ClipAdmission(queues, this.keys, {
      maxQueued: config.classifyMaxQueued,
      retryAfterSeconds: config.queueFullRetryAfterSeconds,
      timeoutMs: config.classifyTimeoutMs,
    });
    const deps = {
      queue: () => queues.get('classify'),
      images: new ClipImages(queues, this.keys),
      replies: this.replies,
      readBack: (jobId: string) => this.readBack(jobId),
      releasePlaces: (ids: string[]) => this.admission.release(ids),
    };
    const options: BatchOptions = {
      maxRequests: config.classifyJobMaxRequests,
      waitMs: config.classifyJobWaitMs,
      timeoutMs: config.classifyTimeoutMs,
    };
    this.batchers = {
      classify: new ClipBatcher('classify', deps, options),
      embed: new ClipBatcher('embed', deps, options),
    };
  }

  close(): Promise<void> {
    for (const batcher of Object.values(this.batchers)) batcher.close();
    return this.replies.close();
  }

  classify(request: PendingClipJob<ClassifyRequestData>, caller: ClipCaller): Promise<ClassifyResult> {
    return this.run<Extract<ClipJob, { name: 'classify' }>>('classify', request, caller);
  }

  embed(request: PendingClipJob<EmbedRequestData>, caller: ClipCaller): Promise<EmbedResult> {
    return this.run<Extract<ClipJob, { name: 'embed' }>>('embed', request, caller);
  }

  /**
   * The model, the key's budget and a queue place first, then the images (URL fetches
   * included), then the request joins a job and waits for its own answer.
   */
  private async run<J extends ClipJob>(
    name: J['name'],
    request: PendingClipJob<J['data']>,
    caller: ClipCaller,
  ): Promise<J['result']> {
    await this.queues.connected();
    await servedModel(this.queues.redis, this.keys, request.data.model, 'clip');
    const id = randomUUID();
    const { budget, refusal } = await this.admission.admit(caller.principal, id);
    caller.onBudget?.(budget);
    if (refusal) throw refusal;
    let images: Uint8Array[] | undefined;
    try {
      images = request.images && (await request.images());
    } catch (error) {
      // eslint-disable-next-line no-restricted-syntax -- a place left behind is forgotten after the longest wait
      await this.admission.release([id]).catch(() => {});
      throw error;
    }
    const outcome = await this.batchers[name].submit(id, request.data, images, caller.signal);
    // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- the worker's handler for this job name answered it
    if ('result' in outcome) return outcome.result as J['result'];
    throw this.toServiceError(outcome, id);
  }

  /** The job's outcome as BullMQ holds it, for a reply that may have been lost. */
  private async readBack(jobId: string): Promise<ClipOutcome | undefined> {
    const queue = this.queues.get('classify');
    const state = await queue.getJobState(jobId);
    if (state === 'unknown') return { lost: true };
    if (state !== 'completed' && state !== 'failed') return undefined;
    const job = await queue.getJob(jobId);
    if (!job) return undefined;
    return state === 'completed' ? { result: job.returnvalue } : { failure: job.failedReason };
  }

  private toServiceError(outcome: Exclude<RequestOutcome, { result: unknown }>, id: string): unknown {
    if ('error' in outcome) return outcome.error;
    if ('timeout' in outcome)
      return new ServiceError('timeout', `the ${this.config.classifyTimeoutMs} ms wait for request ${id} ran out`);
    if ('left' in outcome) return new ServiceError('timeout', `the client left; request ${id} was dropped`);
    const failure = parseFailure(outcome.failure);
    // The client's own faults keep their code; the rest is the service's, reported as job_failed.
    if (isErrorCode(failure.code) && ERRORS[failure.code].status < 500) {
      return new ServiceError(failure.code, failure.message);
    }
    return new ServiceError(
      'job_failed',
      `request ${id} (job ${outcome.jobId}) failed: ${failure.code}: ${failure.message}`,
    );
  }
}
