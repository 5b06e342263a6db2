// tsx bench/mindalle-full.ts --models-dir DIR [--model NAME] [--candidates 2] [--rows 1,2,4,8] [--threads N]
// The engine on the CPU with a full-size minDALL-E pack (bench/mindalle-full.sh runs it): the
// start-up's session creation, then one generation end to end (its candidates sampled in one
// chunk, decoded and reranked), the process's memory after each, printed as one JSON line.
// --rows: then, on the same engine, one generation per row count of that many candidates
// (keeping 1), sampled in one chunk of that many rows: time per candidate at each batch size.
import { parseArgs } from 'node:util';
import { createEngine, silentLog } from '../src/models/index.js';
import { timed } from './timing.js';

const { values } = parseArgs({
  options: {
    'models-dir': { type: 'string' },
    model: { type: 'string', default: 'mindalle-full' },
    candidates: { type: 'string', default: '2' },
    rows: { type: 'string' },
    threads: { type: 'string' },
    prompt: { type: 'string', default: 'a painting of a red apple on the table' },
  },
});
if (!values['models-dir']) throw new Error('--models-dir is required');
const candidates = Number(values.candidates);
const rowCounts = values.rows ? values.rows.split(',').map(Number) : [];
if (!rowCounts.every((rows) => Number.isInteger(rows) && rows > 0)) throw new Error(`--rows ${values.rows}`);
// The largest chunk the engine is asked for: each generation is sampled in one.
const batch = Math.max(candidates, ...rowCounts);
// Images decoded and scored at once. At full size the VQGAN decoder holds about 140 MB an image
// (measured at --size layer) beside the sample loop's 330 MB a row: 32 at once would take a
// 24 GiB machine to about 20 GiB. Decoding is not what --rows measures.
const DECODE_BATCH = 8;
const gib = (bytes: number) => Number((bytes / 2 ** 30).toFixed(2));
// maxRSS is the whole process's, worker threads included, in KiB.
const peakRss = () => gib(process.resourceUsage().maxRSS * 1024);

const [engine, loadMs] = await timed(() =>
  createEngine({
    modelsDir: values['models-dir']!,
    device: 'cpu',
    logger: silentLog,
    sampleBatch: batch,
    clipBatch: Math.min(batch, DECODE_BATCH),
    ...(values.threads ? { cpuThreads: Number(values.threads) } : {}),
  }),
);
try {
  const loaded = { rssGiB: gib(process.memoryUsage().rss), peakRssGiB: peakRss() };
  const [result, endToEndMs] = await timed(() =>
    engine.generate({ prompt: values.prompt, seed: 1, candidates, n: candidates, model: values.model }),
  );
  const t = result.timings;
  const peakAfterGeneration = peakRss();
  const byRows = [];
  for (const rows of rowCounts) {
    const [run, ms] = await timed(() =>
      engine.generate({ prompt: values.prompt, seed: 1, candidates: rows, n: 1, batch: rows, model: values.model }),
    );
    const { sampleMs, decodeMs, rerankMs } = run.timings;
    byRows.push({
      rows,
      endToEndMs: Math.round(ms),
      sampleMs: Math.round(sampleMs),
      perCandidateMs: Math.round(sampleMs / rows),
      decodeMs: Math.round(decodeMs),
      rerankMs: Math.round(rerankMs),
      peakRssGiB: peakRss(),
    });
    process.stderr.write(`${JSON.stringify(byRows.at(-1))}\n`);
  }
  console.log(
    JSON.stringify({
      model: result.model,
      sampler: result.sampler,
      sessions: Object.keys(engine.packs().find((p) => p.name === values.model)?.providers ?? {}),
      loadMs: Math.round(loadMs),
      afterLoad: loaded,
      candidates,
      endToEndMs: Math.round(endToEndMs),
      sampleMs: Math.round(t.sampleMs),
      perCandidateMs: Math.round(t.sampleMs / candidates),
      decodeMs: Math.round(t.decodeMs),
      rerankMs: Math.round(t.rerankMs),
      images: result.images.map((i) => `${i.width}x${i.height}`),
      peakRssGiB: peakAfterGeneration,
      ...(byRows.length > 0 && { rows: byRows }),
    }),
  );
} finally {
  await engine.close();
}
