// The scheduler's policy (src/models/schedule.ts) against made-up outcomes, no engine: shortest
// remaining work first within a fairness bound, a newcomer behind a big generation, one pack per batch, cancel, a part the
// engine refuses, a batch that fails as a whole (retried split), the rows limit, progress.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Batch,
  type BatchOutcome,
  type GenerationRequest,
  type Schedule,
  type SchedulerEvent,
  admit,
  apply,
  cancel,
  emptySchedule,
  newEntry,
  MAX_PASSED_OVER,
  plan,
} from '../../src/models/schedule.js';
import type { ChunkResult, GeneratedImage } from '../../src/models/types.js';

const request = (candidates: number, extra: Partial<GenerationRequest> = {}): GenerationRequest => ({
  model: 'demo',
  prompt: 'a red circle',
  seed: 1,
  candidates,
  n: 1,
  ...extra,
});

function scheduleOf(...requests: GenerationRequest[]): Schedule {
  return requests.reduce((s, r, i) => admit(s, newEntry(String(i + 1), r)), emptySchedule);
}

/** Each row scores its candidate index, so the best n are the last candidates. */
function image(candidate: number): GeneratedImage {
  return {
    rank: 0,
    candidate,
    seed: candidate,
    score: candidate,
    width: 1,
    height: 1,
    pixels: new Uint8Array(3),
    tokens: new Int32Array(1),
  };
}

/** The engine's answer to a batch: every part fine, unless its key is in `refused`. */
function succeeded(batch: Batch, refused: string[] = []): BatchOutcome {
  const result: ChunkResult = {
    model: batch.model ?? 'demo',
    sampler: 'graph',
    rows: batch.rows,
    decodeRuns: 1,
    parts: batch.parts.map((part) =>
      refused.includes(part.key)
        ? { key: part.key, ok: false, error: { code: 'validation_failed', message: `part ${part.key} refused` } }
        : {
            key: part.key,
            ok: true,
            promptTokens: 3,
            truncated: false,
            promptUsed: part.prompt,
            images: Array.from({ length: part.count }, (_, i) => image(part.first + i)),
          },
    ),
    timings: { sampleMs: 10, decodeMs: 2, rerankMs: 1 },
  };
  return { ok: true, result };
}

const shares = (batch: Batch) => batch.parts.map((p) => `${p.key}:${p.first}+${p.count}`);

/** Runs batches until the schedule is empty, answering each with `answer`; returns each batch's shares and every event. */
function runAll(start: Schedule, rows: number, answer: (batch: Batch) => BatchOutcome = (b) => succeeded(b)) {
  let schedule = start;
  const batches: string[][] = [];
  const events: SchedulerEvent[] = [];
  for (let planned = plan(schedule, { rows }); planned; planned = plan(schedule, { rows })) {
    batches.push(shares(planned.batch));
    const applied = apply(planned.schedule, planned.batch, answer(planned.batch));
    schedule = applied.schedule;
    events.push(...applied.events);
    assert.ok(batches.length < 1000, 'the schedule ends');
  }
  return { batches, events, schedule };
}

describe('the scheduler policy', () => {
  test('plan changes nothing it is given, and an empty schedule plans nothing', () => {
    const schedule = scheduleOf(request(8));
    const before = structuredClone(schedule.entries.map(({ best: _best, ...e }) => e));
    const planned = plan(schedule, { rows: 4 });
    assert.ok(planned);
    assert.deepEqual(
      schedule.entries.map(({ best: _best, ...e }) => e),
      before,
    );
    assert.equal(planned.schedule.entries[0].state, 'running');
    assert.equal(planned.schedule.entries[0].planned, 4);
    assert.equal(plan(emptySchedule, { rows: 4 }), null);
  });

  test('shortest remaining work first, ties in arrival order; a batch is full whenever there is work', () => {
    const { batches } = runAll(scheduleOf(request(5), request(2), request(5)), 4);
    assert.deepEqual(batches, [['2:0+2', '1:0+2'], ['1:2+3', '3:0+1'], ['3:1+4']]);
  });

  test(`a generation passed over ${MAX_PASSED_OVER} batches in a row is owed an equal quantum first`, () => {
    const { batches: turns } = runAll(scheduleOf(request(2), request(2), request(2), request(2)), 2);
    assert.deepEqual(turns, [['1:0+2'], ['2:0+2'], ['3:0+1', '4:0+1'], ['3:1+1', '4:1+1']]);

    // Small generations keep arriving; the big one still gets rows at least every third batch.
    let schedule = scheduleOf(request(64));
    const bigServed: number[] = [];
    for (let round = 0; round < 12; round++) {
      schedule = admit(schedule, newEntry(String(100 + round), request(4)));
      const planned = plan(schedule, { rows: 4 })!;
      if (planned.batch.parts.some((p) => p.key === '1')) bigServed.push(round);
      schedule = apply(planned.schedule, planned.batch, succeeded(planned.batch)).schedule;
    }
    const gaps = bigServed.slice(1).map((round, i) => round - bigServed[i]);
    assert.ok(bigServed.length >= 4 && gaps.every((gap) => gap <= MAX_PASSED_OVER + 1), String(bigServed));
  });

  test('a newcomer behind a big generation gets rows in the very next batch', () => {
    let schedule = scheduleOf(request(64));
    const first = plan(schedule, { rows: 8 })!;
    assert.deepEqual(shares(first.batch), ['1:0+8']);
    // It arrives while the big one's first batch runs.
    schedule = admit(first.schedule, newEntry('2', request(4)));
    schedule = apply(schedule, first.batch, succeeded(first.batch)).schedule;
    const second = plan(schedule, { rows: 8 })!;
    assert.deepEqual(shares(second.batch), ['2:0+4', '1:8+4']);
  });

  test("a memory budget caps the rows of each pack's batches", () => {
    let schedule = scheduleOf(request(6), request(6, { model: 'big' }), request(3, { model: 'big' }));
    const limits = { rows: 8, rowsOf: (model: string | undefined) => (model === 'big' ? 2 : 8) };
    const batches: { model?: string; rows: number }[] = [];
    for (let planned = plan(schedule, limits); planned; planned = plan(schedule, limits)) {
      batches.push({ model: planned.batch.model, rows: planned.batch.rows });
      schedule = apply(planned.schedule, planned.batch, succeeded(planned.batch)).schedule;
    }
    assert.ok(
      batches.filter((b) => b.model === 'big').every((b) => b.rows <= 2),
      JSON.stringify(batches),
    );
    assert.equal(
      batches.filter((b) => b.model === 'big').reduce((sum, b) => sum + b.rows, 0),
      9,
    );
    assert.deepEqual(
      batches.filter((b) => b.model === 'demo').map((b) => b.rows),
      [6],
    );
  });

  test('a batch holds one pack; generations of another wait their turn', () => {
    const { batches } = runAll(scheduleOf(request(2), request(2, { model: 'other' }), request(2)), 8);
    assert.deepEqual(batches, [['1:0+2', '3:0+2'], ['2:0+2']]);
  });

  test('the rows limit holds for every batch, and every candidate runs exactly once', () => {
    const { batches } = runAll(scheduleOf(request(37), request(3), request(11)), 7);
    const rows = batches.map((b) => b.reduce((sum, s) => sum + Number(s.split('+')[1]), 0));
    assert.ok(
      rows.every((r) => r <= 7),
      String(rows),
    );
    for (const [key, candidates] of [
      ['1', 37],
      ['2', 3],
      ['3', 11],
    ] as const) {
      const ran = batches.flat().filter((s) => s.startsWith(`${key}:`));
      const covered = ran.flatMap((s) => {
        const [first, count] = s.split(':')[1].split('+').map(Number);
        return Array.from({ length: count }, (_, i) => first + i);
      });
      assert.deepEqual(
        covered,
        Array.from({ length: candidates }, (_, i) => i),
        `generation ${key}`,
      );
    }
  });

  test('progress rises per generation; the last batch ends sampling, decoding and reranking, then done', () => {
    const { events } = runAll(scheduleOf(request(6, { n: 2 })), 4);
    assert.deepEqual(
      events.map((e) => (e.type === 'progress' ? `${e.progress.stage} ${e.progress.completed}/6` : e.type)),
      ['sampling 4/6', 'sampling 6/6', 'decoding 6/6', 'reranking 6/6', 'done'],
    );
    const done = events.find((e) => e.type === 'done');
    assert.ok(done?.type === 'done');
    assert.deepEqual(
      done.result.images.map((i) => [i.rank, i.candidate]),
      [
        [1, 5],
        [2, 4],
      ],
    );
  });

  test('a batch carries each generation its n-th best so far, so losers need not come back', () => {
    let schedule = scheduleOf(request(6, { n: 2 }));
    const first = plan(schedule, { rows: 3 })!;
    assert.equal(first.batch.parts[0].floor, undefined);
    schedule = apply(first.schedule, first.batch, succeeded(first.batch)).schedule;
    const second = plan(schedule, { rows: 3 })!;
    assert.deepEqual(second.batch.parts[0].floor, { candidate: 1, score: 1 });
  });

  test('a canceled generation leaves from the next batch; the others go on', () => {
    let schedule = scheduleOf(request(8), request(8));
    const first = plan(schedule, { rows: 4 })!;
    schedule = apply(first.schedule, first.batch, succeeded(first.batch)).schedule;
    schedule = cancel(schedule, new Set(['1']));
    const { batches, events } = runAll(schedule, 4);
    assert.ok(batches.flat().every((s) => s.startsWith('2:')));
    assert.deepEqual(
      events.filter((e) => e.type === 'done').map((e) => e.key),
      ['2'],
    );
  });

  test('a part the engine refuses fails alone', () => {
    const { events } = runAll(scheduleOf(request(4), request(4), request(4)), 6, (b) => succeeded(b, ['2']));
    const ends = events.filter((e) => e.type !== 'progress').map((e) => `${e.key} ${e.type}`);
    assert.deepEqual(ends.sort(), ['1 done', '2 failed', '3 done']);
    const failure = events.find((e) => e.type === 'failed');
    assert.match(failure?.type === 'failed' ? failure.error.message : '', /part 2 refused/);
  });

  test('a batch that fails as a whole is retried split: only the member that breaks it fails', () => {
    // The engine fails any call that holds generation 2's rows (as a crash on its input would).
    const answer = (batch: Batch): BatchOutcome =>
      batch.parts.some((p) => p.key === '2') ? { ok: false, error: new Error('engine call failed') } : succeeded(batch);
    const { batches, events } = runAll(scheduleOf(request(4), request(4), request(4)), 6, answer);
    assert.deepEqual(batches[0], ['1:0+4', '2:0+2']);
    // Each member of the failed batch then runs alone, from the rows it had not finished.
    assert.deepEqual(batches.slice(1, 4), [['1:0+4'], ['2:0+4'], ['3:0+4']]);
    const ends = events.filter((e) => e.type !== 'progress').map((e) => `${e.key} ${e.type}`);
    assert.deepEqual(ends, ['1 done', '2 failed', '3 done']);
  });

  test('a generation alone in a batch that fails as a whole fails', () => {
    const { events } = runAll(scheduleOf(request(4)), 4, () => ({ ok: false, error: new Error('engine closed') }));
    assert.deepEqual(
      events.map((e) => `${e.key} ${e.type}`),
      ['1 failed'],
    );
  });
});
