// Micro-batching of classify requests. BullMQ hands the worker many classify jobs at once
// (concurrency), each carrying one or more requests (the API batches those that arrive
// together); a job submits all of its requests here at once and waits. An idle engine runs
// what it is given at once (or, with `maxWaitMs`, waits that long for a fuller batch);
// requests arriving while it is busy form the next batch, which goes as soon as it is free,
// up to `maxBatch` requests: the only wait is the batch running ahead. One engine call at a
// time; a job's requests stay in one batch unless they alone pass `maxBatch`.
import type { ClassifyOutcome, ClassifyRequest, Engine } from '../models/types.js';

interface Pending {
  request: ClassifyRequest;
  resolve: (outcome: ClassifyOutcome) => void;
  reject: (error: unknown) => void;
}

export interface BatcherOptions {
  maxBatch: number;
  /** How long an idle engine waits for more requests before it runs a batch that is not full; 0: at once. */
  maxWaitMs: number;
  onBatch?: (size: number) => void;
}

export class ClassifyBatcher {
  /** Each job's requests, in arrival order. */
  private queue: Pending[][] = [];
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly engine: Engine,
    private readonly options: BatcherOptions,
  ) {}

  /**
   * Each request's outcome, in order, once all of them are done (an engine failure as a
   * rejected entry); the requests of one call go to the engine together.
   */
  submit(requests: ClassifyRequest[]): Promise<PromiseSettledResult<ClassifyOutcome>[]> {
    const group: Pending[] = [];
    const outcomes = requests.map(
      (request) => new Promise<ClassifyOutcome>((resolve, reject) => group.push({ request, resolve, reject })),
    );
    if (group.length > 0) {
      this.queue.push(group);
      this.queued += group.length;
      this.schedule();
    }
    return Promise.allSettled(outcomes);
  }

  private schedule(): void {
    if (this.busy) return;
    if (this.queued >= this.options.maxBatch || this.options.maxWaitMs === 0) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.options.maxWaitMs);
    }
  }

  /** Whole jobs up to `maxBatch` requests; a job larger than that alone is split. */
  private take(): Pending[] {
    const batch: Pending[] = [];
    while (this.queue.length > 0) {
      const group = this.queue[0];
      const room = this.options.maxBatch - batch.length;
      if (group.length <= room) {
        batch.push(...group);
        this.queue.shift();
      } else {
        if (batch.length === 0) batch.push(...group.splice(0, room));
        break;
      }
    }
    this.queued -= batch.length;
    return batch;
  }

  private async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.busy || this.queued === 0) return;
    this.busy = true;
    const batch = this.take();
    this.options.onBatch?.(batch.length);
    try {
      await this.run(batch);
    } finally {
      this.busy = false;
      // Whatever arrived meanwhile has already waited for a whole batch: send it now.
      if (this.queued > 0) void this.flush();
    }
  }

  private async run(batch: Pending[]): Promise<void> {
    try {
      const outcomes = await this.engine.classify(batch.map((item) => item.request));
      batch.forEach((item, i) => item.resolve(outcomes[i]));
    } catch (error) {
      if (batch.length === 1) {
        batch[0].reject(error);
        return;
      }
      // One request (say, an unknown model) must not fail the others: retry them one by one.
      for (const item of batch) await this.run([item]);
    }
  }
}
