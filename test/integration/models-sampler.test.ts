// The sampler on the committed packs with real onnxruntime: reproducible per seed, independent
// of the chunk size, greedy at top_k = 1, and the same tokens from the sample_loop graph as from
// the host loops (kv_step over buffers held here; prefill + step) given the same uniforms; kept
// tokens (image completion) forced on every path.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadPack, silentLog } from '../../src/models/index.js';
import { Pack } from '../../src/models/packs.js';
import { candidateSeed } from '../../src/models/rng.js';
import {
  rowsOf,
  sampleChunkHost,
  sampleChunkKv,
  sampleChunkLoop,
  type GeneratorSessions,
} from '../../src/models/sampler.js';
import type { SamplingParams } from '../../src/models/sampling.js';
import { generatorText } from '../../src/models/tokenizers.js';

const packsDir = fileURLToPath(new URL('../../packs/', import.meta.url));
// Tokens the packs' sample_loop graphs drew before they took kept tokens (the sha256 of each
// graph then is in the file), for the same prompt, seeds and settings.
const golden = JSON.parse(
  readFileSync(fileURLToPath(new URL('../fixtures/sampler-golden.json', import.meta.url)), 'utf8'),
) as Record<
  string,
  {
    sample_loop_sha256: string;
    prompt: string;
    cases: { seed: number; params: SamplingParams; candidates: number; tokens: number[] }[];
  }
>;
const PROMPT = 'a red circle above a blue square';

interface Loaded {
  pack: Pack;
  sessions: GeneratorSessions;
  textIds: BigInt64Array;
  N: number;
  V: number;
}

async function open(name: string): Promise<Loaded> {
  const pack = new Pack(
    await loadPack(packsDir + name),
    { device: { kind: 'cpu' }, allowCpuFallback: false },
    silentLog,
  );
  const m = pack.generating;
  const sessions = {
    prefill: await pack.session('prefill'),
    step: await pack.session('step'),
    sampleLoop: await pack.session('sample_loop'),
    kvStep: await pack.session('kv_step'),
  };
  const text = generatorText(
    await pack.tokenizer('generator'),
    PROMPT,
    m.geometry.text_length,
    m.generator.text_pad_id,
  );
  return {
    pack,
    sessions,
    textIds: text.ids,
    N: m.geometry.image_grid[0] * m.geometry.image_grid[1],
    V: m.geometry.codebook_size,
  };
}

/** The pack's sample_loop graph as the golden fixture recorded it, read from git history. */
function olderLoop(name: string): Buffer | undefined {
  const path = `packs/${name}/generator-sample-loop.onnx`;
  const git = (...args: string[]) =>
    execFileSync('git', args, { cwd: new URL('../../', import.meta.url), maxBuffer: 1 << 27 });
  try {
    const commits = git('rev-list', '-n', '8', 'HEAD', '--', path).toString().split('\n').filter(Boolean);
    for (const commit of commits) {
      const bytes = git('show', `${commit}:${path}`);
      if (createHash('sha256').update(bytes).digest('hex') === golden[name].sample_loop_sha256) return bytes;
    }
  } catch {
    // not a git checkout
  }
  return undefined;
}

type Path = 'host' | 'kv' | 'graph';
const RUNS = { host: sampleChunkHost, kv: sampleChunkKv, graph: sampleChunkLoop } as const;

/** Tokens of candidates 0 … count-1 of job `seed`, sampled in chunks of `batch`. */
async function sampleAll(
  l: Loaded,
  seed: number,
  count: number,
  batch: number,
  params: SamplingParams,
  path: Path = 'host',
): Promise<Int32Array> {
  const out = new Int32Array(count * l.N);
  const run = RUNS[path];
  for (let start = 0; start < count; start += batch) {
    const seeds = Array.from({ length: Math.min(batch, count - start) }, (_, i) => candidateSeed(seed, start + i));
    out.set(
      await run(l.sessions, {
        rows: rowsOf(l.textIds, seeds, params),
        imageTokens: l.N,
        codebookSize: l.V,
        checkpoint() {},
      }),
      start * l.N,
    );
  }
  return out;
}

function differing(a: Int32Array, b: Int32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

// Greedy decoding straight from the raw graphs, without the sampler's code.
async function greedy(l: Loaded): Promise<number[]> {
  const first = await l.sessions.prefill.run({
    text_tokens: new ort.Tensor('int64', l.textIds, [1, l.textIds.length]),
  });
  const tokens = [argmax(first.logits.data as Float32Array)];
  let kv = first.present_kv;
  while (tokens.length < l.N) {
    const out = await l.sessions.step.run({
      image_token: new ort.Tensor('int64', BigInt64Array.of(BigInt(tokens.at(-1)!)), [1, 1]),
      past_kv: kv,
    });
    tokens.push(argmax(out.logits.data as Float32Array));
    kv = out.present_kv;
  }
  return tokens;
}

describe('demo-shapes sampler', () => {
  let l: Loaded;
  let defaults: SamplingParams;
  before(async () => {
    l = await open('demo-shapes');
    const d = l.pack.generating.generator.sampling_defaults;
    defaults = { topK: d.top_k, temperature: d.temperature, topP: d.top_p ?? 1 };
  });
  after(() => l.pack.release());

  test('the same seed gives identical tokens; another seed gives others', async () => {
    const a = await sampleAll(l, 1234, 3, 3, defaults);
    const b = await sampleAll(l, 1234, 3, 3, defaults);
    assert.deepEqual(a, b);
    const c = await sampleAll(l, 1235, 3, 3, defaults);
    assert.ok(differing(a, c) > a.length / 2);
  });

  test('chunk sizes 1, 3 and 8 give the same tokens', async (t) => {
    const reference = await sampleAll(l, 99, 8, 8, defaults);
    for (const batch of [1, 3]) {
      const tokens = await sampleAll(l, 99, 8, batch, defaults);
      const diff = differing(reference, tokens);
      t.diagnostic(`batch ${batch}: ${diff} of ${tokens.length} tokens differ from batch 8`);
      assert.equal(diff, 0);
    }
  });

  test('top_k = 1 is greedy decoding, whatever the seed', async () => {
    const expected = await greedy(l);
    const tokens = await sampleAll(l, 5, 2, 2, { topK: 1, temperature: 1, topP: 1 });
    assert.deepEqual(Array.from(tokens.subarray(0, l.N)), expected);
    assert.deepEqual(Array.from(tokens.subarray(l.N)), expected);
  });

  test('the sample_loop graph and kv_step give the host loop tokens from the same uniforms', async (t) => {
    for (const params of [
      defaults,
      { topK: 16, temperature: 0.8, topP: 0.9 },
      { topK: 100, temperature: 1, topP: 1 },
    ]) {
      const host = await sampleAll(l, 2024, 6, 3, params, 'host');
      for (const path of ['graph', 'kv'] as const) {
        const diff = differing(host, await sampleAll(l, 2024, 6, 3, params, path));
        t.diagnostic(
          `${JSON.stringify(params)}: ${diff} of ${host.length} tokens differ between the host loop and ${path}`,
        );
        assert.equal(diff, 0, path);
      }
    }
  });

  test('rows of different prompts and settings in one chunk draw what each draws alone, on both paths', async () => {
    const m = l.pack.generating;
    const tokenizer = await l.pack.tokenizer('generator');
    const text = (prompt: string) =>
      generatorText(tokenizer, prompt, m.geometry.text_length, m.generator.text_pad_id).ids;
    const jobs = [
      { textIds: l.textIds, seed: 11, params: defaults },
      { textIds: text('a small green cross'), seed: 12, params: { topK: 5, temperature: 0.7, topP: 1 } },
      { textIds: text('a large blue circle'), seed: 13, params: { topK: 48, temperature: 1.2, topP: 0.85 } },
    ];
    const rows = jobs.flatMap((j) => rowsOf(j.textIds, [candidateSeed(j.seed, 0), candidateSeed(j.seed, 1)], j.params));
    const request = { imageTokens: l.N, codebookSize: l.V, checkpoint() {} };
    for (const [path, run] of Object.entries(RUNS)) {
      const mixed = await run(l.sessions, { ...request, rows });
      // A schema-1 loop takes one setting per run: the sampler splits the chunk by setting.
      const grouped = await run(l.sessions, { ...request, rows, perRowSettings: false });
      for (const [i, row] of rows.entries()) {
        const alone = await run(l.sessions, { ...request, rows: [row] });
        assert.deepEqual(mixed.subarray(i * l.N, (i + 1) * l.N), alone, `${path} row ${i}`);
        assert.deepEqual(grouped.subarray(i * l.N, (i + 1) * l.N), alone, `${path} row ${i}, grouped`);
      }
    }
  });

  test('a row that keeps nothing draws, on both paths, what the packs drew before kept tokens existed', async () => {
    for (const { seed, params, candidates, tokens } of golden['demo-shapes'].cases) {
      assert.equal(golden['demo-shapes'].prompt, PROMPT);
      for (const path of ['host', 'kv', 'graph'] as const)
        assert.deepEqual(Array.from(await sampleAll(l, seed, candidates, candidates, params, path)), tokens, path);
    }
  });

  test('kept tokens are emitted unchanged, and the positions after them condition on them', async () => {
    const seeds = [candidateSeed(41, 0), candidateSeed(41, 1)];
    const plain = rowsOf(l.textIds, seeds, defaults);
    const request = { imageTokens: l.N, codebookSize: l.V, checkpoint() {} };
    const free = await sampleChunkLoop(l.sessions, { ...request, rows: plain });
    // Keep the top half (DALL·E's "top part"), with codes no free draw chose there.
    const keep = new Int32Array(l.N).fill(-1);
    for (let k = 0; k < l.N / 2; k++) keep[k] = (free[k] + 101) % l.V;
    const rows = plain.map((row) => ({ ...row, keep }));
    const host = await sampleChunkHost(l.sessions, { ...request, rows });
    const graph = await sampleChunkLoop(l.sessions, { ...request, rows });
    assert.deepEqual(graph, host, 'the graph forces as the host loop does');
    assert.deepEqual(
      await sampleChunkKv(l.sessions, { ...request, rows }),
      host,
      'kv_step forces as the host loop does',
    );
    for (let b = 0; b < rows.length; b++) {
      const row = graph.subarray(b * l.N, (b + 1) * l.N);
      for (let k = 0; k < l.N / 2; k++) assert.equal(row[k], keep[k], `row ${b}, kept position ${k}`);
      const lower = differing(row.subarray(l.N / 2), free.subarray(b * l.N + l.N / 2, (b + 1) * l.N));
      assert.ok(lower > 0, `row ${b}: the sampled half follows the kept half, so it changes with it`);
    }
  });

  test('completions and plain rows share a run: each row draws what it draws alone', async () => {
    const keep = new Int32Array(l.N).fill(-1);
    keep.fill(7, 0, 8).fill(200, 20, 28);
    const rows = [
      ...rowsOf(l.textIds, [candidateSeed(5, 0), candidateSeed(5, 1)], defaults),
      ...rowsOf(l.textIds, [candidateSeed(6, 0)], { topK: 8, temperature: 0.9, topP: 1 }).map((r) => ({ ...r, keep })),
      ...rowsOf(l.textIds, [candidateSeed(6, 1)], defaults).map((r) => ({ ...r, keep })),
    ];
    const request = { imageTokens: l.N, codebookSize: l.V, checkpoint() {} };
    for (const run of Object.values(RUNS)) {
      const mixed = await run(l.sessions, { ...request, rows });
      for (const [i, row] of rows.entries())
        assert.deepEqual(mixed.subarray(i * l.N, (i + 1) * l.N), await run(l.sessions, { ...request, rows: [row] }));
    }
  });

  test("an older pack's sample_loop (no keep input) still draws plain rows, and refuses rows that keep some", async (t) => {
    const bytes = olderLoop('demo-shapes');
    if (!bytes) return t.skip('no git history holding the graph from before kept tokens');
    const old = await ort.InferenceSession.create(bytes);
    try {
      assert.ok(!old.inputNames.includes('keep'));
      const { seed, params, candidates, tokens } = golden['demo-shapes'].cases[0];
      const rows = rowsOf(
        l.textIds,
        Array.from({ length: candidates }, (_, i) => candidateSeed(seed, i)),
        params,
      );
      const request = { imageTokens: l.N, codebookSize: l.V, checkpoint() {} };
      assert.deepEqual(Array.from(await sampleChunkLoop({ sampleLoop: old }, { ...request, rows })), tokens);
      const keep = new Int32Array(l.N).fill(3);
      await assert.rejects(
        sampleChunkLoop({ sampleLoop: old }, { ...request, rows: rows.map((r) => ({ ...r, keep })) }),
        /takes no kept tokens/,
      );
    } finally {
      await old.release();
    }
  });
});

describe('micro-dalle1 sampler at DALL·E 1 geometry', () => {
  let l: Loaded;
  before(async () => (l = await open('micro-dalle1')));
  after(() => l.pack.release());

  test('1024 tokens per candidate, the same from sample_loop and kv_step as from the host loop', async (t) => {
    assert.equal(l.N, 1024);
    const d = l.pack.generating.generator.sampling_defaults;
    const params = { topK: d.top_k, temperature: d.temperature, topP: d.top_p ?? 1 };
    const host = await sampleAll(l, 7, 2, 2, params, 'host');
    assert.ok(host.every((token) => token >= 0 && token < l.V));
    // kv_step's buffers grow 32 positions at a time: 1024 tokens move them about 30 times.
    for (const path of ['graph', 'kv'] as const) {
      const diff = differing(host, await sampleAll(l, 7, 2, 2, params, path));
      t.diagnostic(`${diff} of ${host.length} tokens differ between the host loop and ${path}`);
      assert.equal(diff, 0, path);
    }
  });

  test('a row that keeps nothing draws what the pack drew before kept tokens existed', async () => {
    for (const { seed, params, candidates, tokens } of golden['micro-dalle1'].cases)
      assert.deepEqual(Array.from(await sampleAll(l, seed, candidates, candidates, params, 'graph')), tokens);
  });
});
