// The generation scheduler's loop (SCHEDULER.md): holds the generations submitted to it, and
// runs one batch at a time: the policy plans it (schedule.ts), the engine runs it as one mixed
// chunk, the policy says what came of it, and the loop tells each generation. The engine's
// generate() is one submission to a scheduler of its own; the worker holds one for all its jobs.
import { AbortError, ModelError } from './errors.js';
import {
  type BatchOutcome,
  type GenerationRequest,
  type Schedule,
  type SchedulerEvent,
  admit,
  apply,
  cancel,
  emptySchedule,
  newEntry,
  plan,
} from './schedule.js';
import type { ChunkResult, GenerateResult, GenerationProgress, MixedChunk } from './types.js';

export interface ScheduledGeneration extends GenerationRequest {
  /** Aborting takes the generation's rows out of the next batch and rejects with an AbortError. */
  signal?: AbortSignal;
  onProgress?: (progress: GenerationProgress) => void;
}

export interface BatchStats {
  rows: number;
  jobs: number;
  /** The rows a batch may hold. */
  capacity: number;
}

export interface SchedulerOptions {
  /** Most candidate rows per engine call (GENERATE_BATCH_CANDIDATES). */
  batchCandidates: number;
  /** Most rows a batch of a pack holds within the memory budget (GENERATE_MEMORY_BUDGET_MB). */
  rowsOf?: (model: string | undefined) => number;
  /** Most images of a pack decoded at once within that budget; unset: the engine's CLIP batch. */
  decodeImagesOf?: (model: string | undefined) => number | undefined;
  /** Told as each batch starts. */
  onBatch?: (stats: BatchStats) => void;
  /** Told as each batch ends: how long the engine took over its rows, sampling to reranking. */
  onBatchDone?: (done: { rows: number; seconds: number; ok: boolean }) => void;
  /** Seconds from a generation's submission to the start of its first batch. */
  onFirstBatch?: (seconds: number) => void;
}

/** What the loop needs of the engine: one mixed chunk at a time, stopped when `signal` aborts. */
export interface ChunkRunner {
  runChunk(chunk: MixedChunk, signal?: AbortSignal): Promise<ChunkResult>;
}

interface Waiter {
  generation: ScheduledGeneration;
  submittedAt: number;
  started: boolean;
  resolve: (result: GenerateResult) => void;
  reject: (error: Error) => void;
}

/**
 * A signal that aborts once every one of `signals` has: a running chunk stops early only when
 * none of its rows is still wanted.
 */
function whenAllAborted(signals: (AbortSignal | undefined)[]): { signal?: AbortSignal; release(): void } {
  const present = signals.filter((signal): signal is AbortSignal => signal !== undefined);
  // A generation that cannot be canceled keeps the chunk running.
  if (present.length === 0 || present.length < signals.length) return { release: () => {} };
  const controller = new AbortController();
  const check = () => {
    if (present.every((signal) => signal.aborted)) controller.abort();
  };
  for (const signal of present) signal.addEventListener('abort', check, { once: true });
  check();
  return {
    signal: controller.signal,
    release: () => {
      for (const signal of present) signal.removeEventListener('abort', check);
    },
  };
}

function positiveInteger(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw new ModelError('validation_failed', `${field} must be a positive integer, got ${value}`);
}

export class GenerationScheduler {
  private schedule: Schedule = emptySchedule;
  private readonly waiters = new Map<string, Waiter>();
  private nextKey = 1;
  private draining = false;

  constructor(
    private readonly engine: ChunkRunner,
    private readonly options: SchedulerOptions,
  ) {}

  /** Generations held now. */
  get size(): number {
    return this.waiters.size;
  }

  submit(generation: ScheduledGeneration): Promise<GenerateResult> {
    if (generation.signal?.aborted) return Promise.reject(new AbortError('generation canceled'));
    try {
      positiveInteger('candidates', generation.candidates);
      positiveInteger('n', generation.n);
      if (generation.n > generation.candidates)
        throw new ModelError(
          'validation_failed',
          `n must be at most candidates (${generation.candidates}), got ${generation.n}`,
        );
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const key = String(this.nextKey++);
      const { signal: _signal, onProgress: _onProgress, ...request } = generation;
      this.waiters.set(key, { generation, submittedAt: performance.now(), started: false, resolve, reject });
      this.schedule = admit(this.schedule, newEntry(key, request));
      this.kick();
    });
  }

  // The loop's last emptiness check and the reset of `draining` run in one synchronous step,
  // so a generation submitted at any moment is either seen by the loop or starts a new one. The
  // first batch waits one turn of the event loop, so that generations arriving together share it.
  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        this.dropCanceled();
        const planned = plan(this.schedule, { rows: this.options.batchCandidates, rowsOf: this.options.rowsOf });
        if (!planned) break;
        this.schedule = planned.schedule;
        const { batch } = planned;
        const now = performance.now();
        for (const part of batch.parts) {
          const waiter = this.waiters.get(part.key);
          if (waiter && !waiter.started) {
            waiter.started = true;
            this.options.onFirstBatch?.((now - waiter.submittedAt) / 1000);
          }
        }
        this.options.onBatch?.({ rows: batch.rows, jobs: batch.parts.length, capacity: this.options.batchCandidates });
        const members = batch.parts.map((part) => this.waiters.get(part.key)?.generation.signal);
        const stop = whenAllAborted(members);
        let outcome: BatchOutcome;
        const started = performance.now();
        try {
          const decodeImages = this.options.decodeImagesOf?.(batch.model);
          const chunk = { model: batch.model, parts: batch.parts, ...(decodeImages !== undefined && { decodeImages }) };
          outcome = { ok: true, result: await this.engine.runChunk(chunk, stop.signal) };
        } catch (error) {
          outcome = { ok: false, error: error instanceof Error ? error : new Error(String(error)) };
        } finally {
          stop.release();
        }
        this.options.onBatchDone?.({ rows: batch.rows, seconds: (performance.now() - started) / 1000, ok: outcome.ok });
        const applied = apply(this.schedule, batch, outcome);
        this.schedule = applied.schedule;
        this.tell(applied.events);
      }
    } finally {
      this.draining = false;
    }
  }

  private dropCanceled(): void {
    const canceled = new Set<string>();
    for (const [key, waiter] of this.waiters) if (waiter.generation.signal?.aborted) canceled.add(key);
    this.schedule = cancel(this.schedule, canceled);
    for (const key of canceled) this.settle(key)?.reject(new AbortError('generation canceled'));
  }

  private settle(key: string): Waiter | undefined {
    const waiter = this.waiters.get(key);
    this.waiters.delete(key);
    return waiter;
  }

  private tell(events: SchedulerEvent[]): void {
    for (const event of events) {
      switch (event.type) {
        case 'progress': {
          const waiter = this.waiters.get(event.key);
          // A generation canceled while its batch ran hears no more of it.
          if (waiter && !waiter.generation.signal?.aborted) waiter.generation.onProgress?.(event.progress);
          break;
        }
        case 'done':
          this.settle(event.key)?.resolve(event.result);
          break;
        case 'failed':
          this.settle(event.key)?.reject(event.error);
          break;
      }
    }
  }
}
