// The API's batching of CLIP requests into jobs: the requests of one process that arrive
// together travel in one BullMQ job (still durable), so the job's add, its fetches, its
// finish and its events are paid once for all of them. As with Triton's `max_queue_delay`, it
// never adds latency to an idle service: a request goes at once when none of this process's
// jobs is outstanding; while one is, requests gather for up to `waitMs` (or until
// `maxRequests`, or until it is answered) and then go together. Each request keeps its own
// deadline and its own client: at its deadline it reads its job back (its reply may have been
// lost) and otherwise ends with a timeout; a client that leaves ends it at once. A job nobody
// waits for any more is removed if no worker has taken it, its images deleted, its places freed.
import { randomUUID } from 'node:crypto';
import type { ClipAnswer, ClipJobImages } from '../contracts/jobs.js';
import { ServiceError } from '../errors.js';
import type { TypedQueue } from '../queue/queues.js';
import { type ClipImages, type ImagesBeside, INLINE_IMAGE_BYTES } from './clip-images.js';
import type { ClipOutcome, ClipReplies, ReadBack } from './clip-replies.js';

/** A job's inline images past this many bytes together: it goes without waiting for more. */
const JOB_INLINE_BYTES = 1024 * 1024;

/** How one request ended: its own answer (or its job's failure), or why it stopped waiting. */
export type RequestOutcome =
  | { jobId: string; result: unknown }
  | { jobId: string; failure: string }
  | { timeout: true }
  | { left: true }
  | { error: unknown };

export interface BatchOptions {
  /** Most requests in one job (CLASSIFY_JOB_MAX_REQUESTS). */
  maxRequests: number;
  /** Longest a request waits to share a job while another is outstanding (CLASSIFY_JOB_WAIT_MS). */
  waitMs: number;
  /** Each request's own wait for its answer (CLASSIFY_TIMEOUT_MS). */
  timeoutMs: number;
}

export interface BatchDeps {
  queue: () => TypedQueue<'classify'>;
  images: ClipImages;
  replies: ClipReplies;
  readBack: ReadBack;
  releasePlaces: (ids: string[]) => Promise<void>;
}

interface Entry {
  id: string;
  data: object;
  images: Uint8Array[] | undefined;
  inlineBytes: number;
  job: SentJob | undefined;
  /** It stopped waiting, and is cleaning up before it answers. */
  leaving: boolean;
  settle(outcome: RequestOutcome): void;
}

interface SentJob {
  id: string;
  ids: string[];
  /** Its requests still waiting for it. */
  open: Set<Entry>;
  /** The keys of its images beside it. */
  beside: string[];
  /** Counted among the outstanding jobs until answered or given up on. */
  outstanding: boolean;
  /** Settles once the job's add (and its images' put) has: a removal must come after it. */
  queued: Promise<unknown>;
}

function isAnswer(value: unknown): value is ClipAnswer<unknown> {
  return typeof value === 'object' && value !== null && 'id' in value && typeof value.id === 'string';
}

/** A job's failure is every request's; a result holds each request's own answer. */
function answerOf(outcome: ClipOutcome, jobId: string, requestId: string): RequestOutcome {
  if ('failure' in outcome) return { jobId, failure: outcome.failure };
  if ('lost' in outcome) {
    return {
      error: new ServiceError(
        'service_unavailable',
        `request ${requestId}'s job was lost by Redis (a failover); retry`,
        {
          retryAfterSeconds: 1,
        },
      ),
    };
  }
  const { result } = outcome;
  const answers = typeof result === 'object' && result !== null && 'answers' in result ? result.answers : undefined;
  const answer = Array.isArray(answers) ? answers.filter(isAnswer).find((item) => item.id === requestId) : undefined;
  if (!answer) return { jobId, failure: `internal_error: job ${jobId} has no answer for request ${requestId}` };
  return 'failure' in answer ? { jobId, failure: answer.failure } : { jobId, result: answer.result };
}

/** Requests of one job name (classify or embed) gathered into jobs. */
export class ClipBatcher {
  private pending: Entry[] = [];
  private pendingInlineBytes = 0;
  /** Every request not answered yet, pending or in a job. */
  private readonly waiting = new Set<Entry>();
  private outstanding = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly name: 'classify' | 'embed',
    private readonly deps: BatchDeps,
    private readonly options: BatchOptions,
  ) {}

  /**
   * Request `id` (its job data but the id and images, and its images) in the next job; its
   * place in the queue is booked already, and is released here unless its job was added.
   */
  submit(id: string, data: object, images: Uint8Array[] | undefined, signal?: AbortSignal): Promise<RequestOutcome> {
    return new Promise((resolve) => {
      const bytes = images?.reduce((sum, image) => sum + image.byteLength, 0) ?? 0;
      const inlineBytes = bytes <= INLINE_IMAGE_BYTES ? bytes : 0;
      let settled = false;
      const entry: Entry = {
        id,
        data,
        images,
        inlineBytes,
        job: undefined,
        leaving: false,
        settle: (outcome) => {
          if (settled) return;
          settled = true;
          this.waiting.delete(entry);
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
      };
      const timer = setTimeout(() => void this.giveUp(entry, { timeout: true }), this.options.timeoutMs);
      const onAbort = () => void this.giveUp(entry, { left: true });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.add(entry);
      this.pending.push(entry);
      this.pendingInlineBytes += inlineBytes;
      if (signal?.aborted) onAbort();
      else this.schedule();
    });
  }

  /** Ends every request still waiting (the process stops): 503, as for Redis gone. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const error = new ServiceError('service_unavailable', 'the API is shutting down', { retryAfterSeconds: 5 });
    for (const entry of this.waiting) entry.settle({ error });
    this.pending = [];
    this.pendingInlineBytes = 0;
  }

  private schedule(): void {
    if (this.pending.length === 0) return;
    const full = this.pending.length >= this.options.maxRequests || this.pendingInlineBytes >= JOB_INLINE_BYTES;
    if (this.outstanding === 0 || full || this.options.waitMs === 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.options.waitMs);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.options.maxRequests);
    this.pendingInlineBytes = this.pending.reduce((sum, entry) => sum + entry.inlineBytes, 0);
    void this.send(batch);
    // More than one job's worth: the rest waits behind this one, or goes too when as full.
    this.schedule();
  }

  private async send(batch: Entry[]): Promise<void> {
    const job: SentJob = {
      id: randomUUID(),
      ids: batch.map((entry) => entry.id),
      open: new Set(batch),
      beside: [],
      outstanding: true,
      queued: Promise.resolve(),
    };
    this.outstanding += 1;
    const beside: ImagesBeside[] = [];
    const requests = batch.map((entry) => {
      entry.job = job;
      let images: ClipJobImages | undefined;
      if (entry.images) {
        images = this.deps.images.place(entry.id, entry.images);
        if ('key' in images) {
          beside.push({ ref: images, images: entry.images });
          job.beside.push(images.key);
        }
        entry.images = undefined;
      }
      return { ...entry.data, id: entry.id, ...(images && { images }) };
    });
    try {
      await this.deps.replies.listen();
      // The wait starts before the job exists, so that no reply can come before it.
      this.deps.replies.expect(job.id, (outcome) => this.answer(job, outcome));
      // Both go down the one command connection in that order, with no round trip between:
      // a worker never finds the job before its images.
      const queue = this.deps.queue();
      const queued = Promise.allSettled([
        this.deps.images.put(beside, this.options.timeoutMs),
        // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- BullMQ's add takes the queue's data union; the requests are this job name's, as ClipJobs built them
        queue.add(this.name, { requests, reply_to: this.deps.replies.channel } as never, { jobId: job.id }),
      ]);
      job.queued = queued;
      const [put, added] = await queued;
      // A job added without its images is removed below, unless a worker holds it already: then
      // it fails the requests whose images it cannot find (`canceled`), and nobody waits for them.
      if (put.status === 'rejected') throw put.reason;
      if (added.status === 'rejected') throw added.reason;
    } catch (error) {
      // Nothing (that runs) was queued: each request fails with the error, leaving nothing behind.
      this.deps.replies.forget(job.id);
      this.done(job);
      await this.cleanUp(job, true);
      for (const entry of job.open) entry.settle({ error });
      job.open.clear();
    }
  }

  /** The job's outcome: each request still waiting gets its own answer. */
  private answer(job: SentJob, outcome: ClipOutcome, settled = false): void {
    if (!job.outstanding) return;
    if ('lost' in outcome && !settled) {
      // Read back while its add was still on the way, a job is missing without being lost: it
      // counts as lost only if it is still missing once the add has settled.
      void job.queued
        .then(() => this.deps.readBack(job.id))
        .then((again) => again && this.answer(job, again, true))
        .catch(() => undefined);
      return;
    }
    this.deps.replies.forget(job.id);
    for (const entry of job.open) entry.settle(answerOf(outcome, job.id, entry.id));
    job.open.clear();
    this.done(job);
    // The answers stand; the images would expire by their TTL anyway.
    void this.cleanUp(job, false);
  }

  /**
   * A request that stops waiting: at its deadline (after reading its job back), or its client
   * gone. What it leaves behind is cleaned up before it answers, so a 504 leaves nothing.
   */
  private async giveUp(entry: Entry, why: { timeout: true } | { left: true }): Promise<void> {
    if (entry.leaving) return;
    const job = entry.job;
    if (!job) {
      entry.leaving = true;
      const index = this.pending.indexOf(entry);
      if (index >= 0) {
        this.pending.splice(index, 1);
        this.pendingInlineBytes -= entry.inlineBytes;
      }
      // eslint-disable-next-line no-restricted-syntax -- a place left behind is forgotten after the longest wait
      await this.deps.releasePlaces([entry.id]).catch(() => {});
      return entry.settle(why);
    }
    if (!job.open.has(entry)) return;
    if ('timeout' in why) {
      const outcome = await this.deps.readBack(job.id).catch(() => undefined);
      if (outcome) return this.answer(job, outcome);
      if (!job.open.has(entry)) return;
    }
    entry.leaving = true;
    job.open.delete(entry);
    if (job.open.size === 0 && job.outstanding) {
      // Nobody waits for it any more: a job no worker has taken yet never runs.
      this.deps.replies.forget(job.id);
      this.done(job);
      await this.cleanUp(job, true);
    }
    entry.settle(why);
  }

  /**
   * Deletes the job's images beside it; for a job given up on, removes it too unless a worker
   * holds it, and frees its requests' places (a worker that took it has freed them).
   */
  private async cleanUp(job: SentJob, givenUp: boolean): Promise<void> {
    try {
      await job.queued;
      // 1: removed, or never added; 0: locked by a worker, which runs it.
      if (givenUp && (await this.deps.queue().remove(job.id)) === 1) await this.deps.releasePlaces(job.ids);
      await this.deps.images.remove(job.beside);
    } catch {
      // Left behind: the images expire by their TTL, the places after the longest wait.
    }
  }

  private done(job: SentJob): void {
    if (!job.outstanding) return;
    job.outstanding = false;
    this.outstanding -= 1;
    // Nothing outstanding: whatever gathered goes now.
    if (this.outstanding === 0) this.schedule();
  }
}
