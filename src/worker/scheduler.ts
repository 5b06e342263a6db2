// The generation scheduler: holds the worker's active generations, cuts each into chunks of
// candidates and assembles every engine call from the chunks of several of them, round-robin
// in arrival order (SCHEDULER.md). Each generation keeps its own best n, progress and fate:
// a cancel or a bad input removes only its rows, from the next batch on.
import { AbortError, ModelError } from '../models/index.js';
import type { ChunkPart, Engine, GeneratedImage, GenerateResult, GenerationProgress } from '../models/types.js';
import { BestN } from '../models/rerank.js';

export interface ScheduledGeneration {
  model: string;
  prompt: string;
  seed: number;
  candidates: number;
  n: number;
  topK?: number;
  temperature?: number;
  topP?: number;
  /** Aborting drops the generation's rows from the next batch and rejects with an AbortError. */
  signal: AbortSignal;
  onProgress?: (progress: GenerationProgress) => void;
}

export interface BatchStats {
  rows: number;
  jobs: number;
  /** GENERATE_BATCH_CANDIDATES: the rows a batch may hold. */
  capacity: number;
}

export interface SchedulerOptions {
  /** Most candidate rows per engine call. */
  batchCandidates: number;
  onBatch?: (stats: BatchStats) => void;
  /** Seconds from a generation's submission to the start of its first batch. */
  onFirstBatch?: (seconds: number) => void;
}

interface Active {
  key: string;
  job: ScheduledGeneration;
  submittedAt: number;
  /** Candidates handed to batches so far, and finished (sampled, decoded, scored). */
  planned: number;
  done: number;
  best: BestN<GeneratedImage>;
  result: Omit<GenerateResult, 'images'>;
  resolve: (result: GenerateResult) => void;
  reject: (error: Error) => void;
}

export class GenerationScheduler {
  private readonly active: Active[] = [];
  private nextKey = 1;
  /** Key of the generation the next batch starts from (round-robin). */
  private startKey = 0;
  private draining = false;

  constructor(
    private readonly engine: Engine,
    private readonly options: SchedulerOptions,
  ) {}

  /** Generations held now. */
  get size(): number {
    return this.active.length;
  }

  submit(job: ScheduledGeneration): Promise<GenerateResult> {
    if (job.signal.aborted) return Promise.reject(new AbortError('generation canceled'));
    return new Promise((resolve, reject) => {
      const key = String(this.nextKey++);
      const result = {
        model: job.model,
        seed: job.seed,
        promptTokens: 0,
        truncated: false,
        promptUsed: job.prompt,
        sampler: 'graph' as const,
        timings: { sampleMs: 0, decodeMs: 0, rerankMs: 0 },
      };
      const best = new BestN<GeneratedImage>(job.n);
      this.active.push({
        key,
        job,
        submittedAt: performance.now(),
        planned: 0,
        done: 0,
        best,
        result,
        resolve,
        reject,
      });
      this.kick();
    });
  }

  // The loop's last emptiness check and the reset of `draining` run in one synchronous step,
  // so a job submitted at any moment is either seen by the loop or starts a new one. The first
  // batch waits one turn of the event loop, so that jobs arriving together share it.
  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      while (this.active.length > 0) {
        // Every active generation has rows left to plan; never spin if one somehow has none.
        if (!(await this.runBatch())) throw new Error('the scheduler found no rows to run');
      }
    } catch (error) {
      for (const a of [...this.active]) this.remove(a, toError(error));
    } finally {
      this.draining = false;
    }
  }

  private remove(entry: Active, error?: Error): void {
    const at = this.active.indexOf(entry);
    if (at !== -1) this.active.splice(at, 1);
    if (error) entry.reject(error);
  }

  /** Active generations from the round-robin start, in arrival order, wrapping around. */
  private rotation(): Active[] {
    const at = this.active.findIndex((a) => Number(a.key) >= this.startKey);
    const start = at === -1 ? 0 : at;
    return [...this.active.slice(start), ...this.active.slice(0, start)];
  }

  /** Rows per generation: an equal quantum each in turn, then what is left, in the same turn. */
  plan(): Map<Active, number> {
    for (const a of [...this.active]) if (a.job.signal.aborted) this.remove(a, new AbortError('generation canceled'));
    const order = this.rotation();
    if (order.length === 0) return new Map();
    const peers = order.filter((a) => a.job.model === order[0].job.model);
    const shares = new Map<Active, number>();
    let capacity = this.options.batchCandidates;
    const quantum = Math.max(1, Math.floor(capacity / peers.length));
    for (let gave = true; gave && capacity > 0;) {
      gave = false;
      for (const a of peers) {
        const share = shares.get(a) ?? 0;
        const give = Math.min(a.job.candidates - a.planned - share, quantum, capacity);
        if (give <= 0) continue;
        shares.set(a, share + give);
        capacity -= give;
        gave = true;
      }
    }
    const last = [...shares.keys()].at(-1);
    if (last) this.startKey = Number(last.key) + 1;
    return shares;
  }

  private part(a: Active, count: number): ChunkPart {
    const { prompt, seed, n, topK, temperature, topP } = a.job;
    const kept = a.best.result();
    const floor = kept.length === n ? kept[n - 1] : undefined;
    return {
      key: a.key,
      prompt,
      seed,
      n,
      topK,
      temperature,
      topP,
      first: a.planned,
      count,
      ...(floor && { floor: { candidate: floor.candidate, score: floor.score } }),
    };
  }

  /** Runs one batch; false when there was nothing to run. */
  private async runBatch(): Promise<boolean> {
    const shares = this.plan();
    if (shares.size === 0) return this.active.length === 0;
    const now = performance.now();
    const parts: ChunkPart[] = [];
    for (const [a, count] of shares) {
      if (a.planned === 0) this.options.onFirstBatch?.((now - a.submittedAt) / 1000);
      parts.push(this.part(a, count));
      a.planned += count;
    }
    const rows = parts.reduce((sum, p) => sum + p.count, 0);
    this.options.onBatch?.({ rows, jobs: parts.length, capacity: this.options.batchCandidates });
    const members = [...shares.keys()];
    try {
      const result = await this.engine.runChunk({ model: members[0].job.model, parts });
      for (const outcome of result.parts) {
        const a = members.find((m) => m.key === outcome.key)!;
        if (!outcome.ok) this.remove(a, new ModelError(outcome.error.code, outcome.error.message));
        else this.absorb(a, shares.get(a)!, outcome, result);
      }
    } catch (error) {
      // The engine itself failed (closed, crashed): every generation in the batch fails its attempt.
      for (const a of members) if (this.active.includes(a)) this.remove(a, toError(error));
    }
    return true;
  }

  private absorb(
    a: Active,
    count: number,
    outcome: { promptTokens: number; truncated: boolean; promptUsed: string; images: GeneratedImage[] },
    batch: Awaited<ReturnType<Engine['runChunk']>>,
  ): void {
    const bestBefore = a.best.result()[0];
    for (const image of outcome.images) a.best.offer(image);
    const bestNow = a.best.result()[0];
    // A new best candidate travels with the progress (streamed partial images).
    const best = bestNow !== bestBefore ? { best: bestNow } : {};
    const share = count / batch.rows;
    const t = a.result.timings;
    t.sampleMs += batch.timings.sampleMs * share;
    t.decodeMs += batch.timings.decodeMs * share;
    t.rerankMs += batch.timings.rerankMs * share;
    Object.assign(a.result, { model: batch.model, sampler: batch.sampler });
    const { promptTokens, truncated, promptUsed } = outcome;
    Object.assign(a.result, { promptTokens, truncated, promptUsed });
    a.done += count;
    const total = a.job.candidates;
    if (a.job.signal.aborted) return this.remove(a, new AbortError('generation canceled'));
    if (a.done < total) return a.job.onProgress?.({ stage: 'sampling', completed: a.done, total, ...best });
    // Every chunk was decoded and scored as soon as it was sampled: the last one ends all three.
    a.job.onProgress?.({ stage: 'sampling', completed: total, total });
    a.job.onProgress?.({ stage: 'decoding', completed: total, total });
    a.job.onProgress?.({ stage: 'reranking', completed: total, total, ...best });
    this.remove(a);
    a.resolve({ ...a.result, images: a.best.result().map((image, i) => ({ ...image, rank: i + 1 })) });
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
