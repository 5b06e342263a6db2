// Micro-batching of classify requests. BullMQ hands the worker many classify jobs at once
// (concurrency); each job submits its request here and waits. A batch goes to the engine
// when it is full or when its first request has waited `maxWaitMs`; requests arriving
// while the engine is busy form the next batch. One engine call at a time.
import type { ClassifyOutcome, ClassifyRequest, Engine } from '../models/types.js';

interface Pending {
  request: ClassifyRequest;
  resolve: (outcome: ClassifyOutcome) => void;
  reject: (error: unknown) => void;
}

export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
  onBatch?: (size: number) => void;
}

export class ClassifyBatcher {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly engine: Engine,
    private readonly options: BatcherOptions,
  ) {}

  submit(request: ClassifyRequest): Promise<ClassifyOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.busy) return;
    if (this.queue.length >= this.options.maxBatch) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.options.maxWaitMs);
    }
  }

  private async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.busy || this.queue.length === 0) return;
    this.busy = true;
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.options.onBatch?.(batch.length);
    try {
      await this.run(batch);
    } finally {
      this.busy = false;
      // Whatever arrived meanwhile has already waited for a whole batch: send it now.
      if (this.queue.length > 0) void this.flush();
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
