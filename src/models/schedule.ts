// The generation scheduler's policy, with no engine in it (SCHEDULER.md): `plan` says which rows
// of which generations the next batch runs, `apply` what a batch's outcome means for each of
// them, as events. Both take the schedule as it is and return the next one, so the policy is
// tested against made-up outcomes; the loop that owns the engine is scheduler.ts.
import { ModelError } from './errors.js';
import { BestN } from './rerank.js';
import type {
  ChunkPart,
  ChunkResult,
  CompletionInput,
  GeneratedImage,
  GenerateResult,
  GenerationProgress,
} from './types.js';

/** A generation as submitted: what it asks for. */
export interface GenerationRequest {
  /** Pack name; default the engine's default pack. */
  model?: string;
  prompt: string;
  seed: number;
  candidates: number;
  n: number;
  topK?: number;
  temperature?: number;
  topP?: number;
  /** An image to complete: the same kept cells for every candidate. */
  completion?: CompletionInput;
  /** What CLIP ranks against: the prompt (default) or the completion's image. */
  rankBy?: 'prompt' | 'image';
}

/**
 * Where an entry stands: `waiting` for rows in a batch, `running` while a batch holds some of
 * its rows, `isolated` when a batch it was in failed as a whole (its next batch holds it alone,
 * so one bad member cannot fail the others), `done`, `failed` or `canceled` once it has left.
 */
export type EntryState = 'waiting' | 'running' | 'isolated' | 'done' | 'failed' | 'canceled';

export interface Entry {
  key: string;
  request: GenerationRequest;
  state: EntryState;
  /** Candidates handed to batches so far, and finished (sampled, decoded, scored). */
  planned: number;
  done: number;
  /** Batches planned in a row while it waited with rows left and got none. */
  passedOver: number;
  /** Its best n so far: kept across schedules (the loop's only shared, growing state). */
  best: BestN<GeneratedImage>;
  /** What its batches reported: the prompt as read, and its share of each batch's time. */
  result: Omit<GenerateResult, 'images'>;
}

export interface Schedule {
  /** Entries still held, in arrival order. */
  entries: readonly Entry[];
}

/**
 * Batches an entry may be passed over in a row before it is owed a fair share: shortest
 * remaining work goes first, but no generation, however big, waits longer than this.
 */
export const MAX_PASSED_OVER = 2;

export interface Limits {
  /** Most rows a batch holds (GENERATE_BATCH_CANDIDATES). */
  rows: number;
  /** Most rows a batch of this pack holds within the memory budget; no memory bound when absent. */
  rowsOf?: (model: string | undefined) => number;
}

/** The rows a batch of `model` may hold: the rows limit, and the memory budget's. */
function capacityOf(limits: Limits, model: string | undefined): number {
  return Math.min(limits.rows, limits.rowsOf?.(model) ?? Number.POSITIVE_INFINITY);
}

export interface Batch {
  model?: string;
  parts: ChunkPart[];
  rows: number;
}

export type BatchOutcome = { ok: true; result: ChunkResult } | { ok: false; error: Error };

export type SchedulerEvent =
  | { type: 'progress'; key: string; progress: GenerationProgress }
  | { type: 'done'; key: string; result: GenerateResult }
  | { type: 'failed'; key: string; error: Error };

export const emptySchedule: Schedule = { entries: [] };

const HELD: ReadonlySet<EntryState> = new Set(['waiting', 'running', 'isolated']);

export function newEntry(key: string, request: GenerationRequest): Entry {
  return {
    key,
    request,
    state: 'waiting',
    planned: 0,
    done: 0,
    passedOver: 0,
    best: new BestN<GeneratedImage>(request.n),
    result: {
      // The pack's own name once a batch has run (the engine resolves the default).
      model: request.model ?? '',
      seed: request.seed,
      promptTokens: 0,
      truncated: false,
      promptUsed: request.prompt,
      sampler: 'graph',
      timings: { sampleMs: 0, decodeMs: 0, rerankMs: 0 },
    },
  };
}

export function admit(schedule: Schedule, entry: Entry): Schedule {
  return { ...schedule, entries: [...schedule.entries, entry] };
}

function partOf(entry: Entry, count: number): ChunkPart {
  const { prompt, seed, n, topK, temperature, topP, completion, rankBy } = entry.request;
  const kept = entry.best.result();
  const floor = kept.length === n ? kept[n - 1] : undefined;
  return {
    key: entry.key,
    prompt,
    seed,
    n,
    topK,
    temperature,
    topP,
    first: entry.planned,
    count,
    ...(completion && { completion }),
    ...(rankBy && { rankBy }),
    ...(floor && { floor: { candidate: floor.candidate, score: floor.score } }),
  };
}

const left = (e: Entry) => e.request.candidates - e.planned;

/**
 * Rows per entry: an entry that must run alone first. Otherwise those passed over too long
 * first, an equal quantum each, then the rest to the shortest remaining work first (ties in
 * arrival order), so small generations finish in few batches and none waits without bound.
 */
function shares(schedule: Schedule, limits: Limits): Map<Entry, number> {
  const isolated = schedule.entries.find((e) => e.state === 'isolated' && left(e) > 0);
  if (isolated) return new Map([[isolated, Math.min(left(isolated), capacityOf(limits, isolated.request.model))]]);
  const waiting = schedule.entries.filter((e) => e.state === 'waiting' && left(e) > 0);
  if (waiting.length === 0) return new Map();
  const owed = waiting.filter((e) => e.passedOver >= MAX_PASSED_OVER);
  // Stable: equal remaining work keeps arrival order.
  const shortest = [...waiting].sort((a, b) => left(a) - left(b));
  // A batch holds one pack: the first owed, else the shortest, decides it; others wait their turn.
  const model = (owed[0] ?? shortest[0]).request.model;
  const peers = (list: Entry[]) => list.filter((e) => e.request.model === model);
  const given = new Map<Entry, number>();
  const rows = capacityOf(limits, model);
  let capacity = rows;
  const give = (e: Entry, most: number) => {
    const count = Math.min(left(e) - (given.get(e) ?? 0), most, capacity);
    if (count <= 0) return;
    given.set(e, (given.get(e) ?? 0) + count);
    capacity -= count;
  };
  const quantum = Math.max(1, Math.floor(rows / peers(waiting).length));
  for (const e of peers(owed)) give(e, quantum);
  for (const e of peers(shortest)) give(e, capacity);
  return given;
}

/**
 * The next batch and the schedule once it is handed out (its entries `running`, their rows
 * planned; each waiting entry it passed over counts one more); null when no entry has rows
 * left to run. Changes nothing it is given.
 */
export function plan(schedule: Schedule, limits: Limits): { batch: Batch; schedule: Schedule } | null {
  const given = shares(schedule, limits);
  if (given.size === 0) return null;
  const served = [...given.keys()];
  const parts = [...given].map(([entry, count]) => partOf(entry, count));
  const entries = schedule.entries.map((e): Entry => {
    const count = given.get(e);
    if (count !== undefined) return { ...e, state: 'running', planned: e.planned + count, passedOver: 0 };
    return e.state === 'waiting' && left(e) > 0 ? { ...e, passedOver: e.passedOver + 1 } : e;
  });
  const batch = { model: served[0].request.model, parts, rows: parts.reduce((sum, p) => sum + p.count, 0) };
  return { batch, schedule: { entries } };
}

/** Folds one part's outcome into its entry: its best n, its share of the batch's time, its progress. */
function absorb(
  entry: Entry,
  count: number,
  outcome: Extract<ChunkResult['parts'][number], { ok: true }>,
  batch: ChunkResult,
  events: SchedulerEvent[],
): Entry {
  const bestBefore = entry.best.result()[0];
  for (const image of outcome.images) entry.best.offer(image);
  const bestNow = entry.best.result()[0];
  // A new best candidate travels with the progress (streamed partial images).
  const best = bestNow !== bestBefore ? { best: bestNow } : {};
  const share = count / batch.rows;
  const t = entry.result.timings;
  const result = {
    ...entry.result,
    model: batch.model,
    sampler: batch.sampler,
    promptTokens: outcome.promptTokens,
    truncated: outcome.truncated,
    promptUsed: outcome.promptUsed,
    timings: {
      sampleMs: t.sampleMs + batch.timings.sampleMs * share,
      decodeMs: t.decodeMs + batch.timings.decodeMs * share,
      rerankMs: t.rerankMs + batch.timings.rerankMs * share,
    },
  };
  const done = entry.done + count;
  const total = entry.request.candidates;
  const { key } = entry;
  if (done < total) {
    events.push({ type: 'progress', key, progress: { stage: 'sampling', completed: done, total, ...best } });
    return { ...entry, state: entry.planned > done ? 'running' : 'waiting', done, result };
  }
  // Every chunk was decoded and scored as soon as it was sampled: the last one ends all three.
  events.push({ type: 'progress', key, progress: { stage: 'sampling', completed: total, total } });
  events.push({ type: 'progress', key, progress: { stage: 'decoding', completed: total, total } });
  events.push({ type: 'progress', key, progress: { stage: 'reranking', completed: total, total, ...best } });
  const images = entry.best.result().map((image, i) => ({ ...image, rank: i + 1 }));
  events.push({ type: 'done', key, result: { ...result, images } });
  return { ...entry, state: 'done', done, result };
}

/**
 * What the batch's outcome means: each part's images folded into its generation (which may
 * finish), a part the engine refused failed alone. A batch that failed as a whole fails a
 * generation that ran alone; with company, each of its generations gets its rows back and
 * runs its next batch alone. Entries that left are dropped from the schedule.
 */
export function apply(
  schedule: Schedule,
  batch: Batch,
  outcome: BatchOutcome,
): { schedule: Schedule; events: SchedulerEvent[] } {
  const events: SchedulerEvent[] = [];
  const counts = new Map(batch.parts.map((p) => [p.key, p.count]));
  const alone = batch.parts.length === 1;
  const byKey = outcome.ok ? new Map(outcome.result.parts.map((p) => [p.key, p])) : undefined;
  const entries = schedule.entries.map((entry): Entry => {
    const count = counts.get(entry.key);
    if (count === undefined || !HELD.has(entry.state)) return entry;
    if (!outcome.ok) {
      if (alone) {
        events.push({ type: 'failed', key: entry.key, error: outcome.error });
        return { ...entry, state: 'failed' };
      }
      return { ...entry, state: 'isolated', planned: entry.planned - count };
    }
    const part = byKey?.get(entry.key);
    if (!part) {
      const error = new Error(`the engine returned no outcome for part ${entry.key}`);
      events.push({ type: 'failed', key: entry.key, error });
      return { ...entry, state: 'failed' };
    }
    if (!part.ok) {
      events.push({ type: 'failed', key: entry.key, error: new ModelError(part.error.code, part.error.message) });
      return { ...entry, state: 'failed' };
    }
    return absorb(entry, count, part, outcome.result, events);
  });
  return { schedule: { ...schedule, entries: entries.filter((e) => HELD.has(e.state)) }, events };
}

/** Takes canceled generations out of the schedule; their rows leave from the next batch on. */
export function cancel(schedule: Schedule, keys: ReadonlySet<string>): Schedule {
  if (keys.size === 0) return schedule;
  return { ...schedule, entries: schedule.entries.filter((e) => !keys.has(e.key)) };
}
