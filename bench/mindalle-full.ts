// tsx bench/mindalle-full.ts --models-dir DIR [--model NAME] [--candidates 2] [--threads N]
// The engine on the CPU with a full-size minDALL-E pack (bench/mindalle-full.sh runs it): the
// start-up's session creation, then one generation end to end (its candidates sampled in one
// chunk, decoded and reranked), the process's memory after each, printed as one JSON line.
import { parseArgs } from 'node:util';
import { createEngine, silentLog } from '../src/models/index.js';
import { timed } from './timing.js';

const { values } = parseArgs({
  options: {
    'models-dir': { type: 'string' },
    model: { type: 'string', default: 'mindalle-full' },
    candidates: { type: 'string', default: '2' },
    threads: { type: 'string' },
    prompt: { type: 'string', default: 'a painting of a red apple on the table' },
  },
});
if (!values['models-dir']) throw new Error('--models-dir is required');
const candidates = Number(values.candidates);
const gib = (bytes: number) => Number((bytes / 2 ** 30).toFixed(2));
// maxRSS is the whole process's, worker threads included, in KiB.
const peakRss = () => gib(process.resourceUsage().maxRSS * 1024);

const [engine, loadMs] = await timed(() =>
  createEngine({
    modelsDir: values['models-dir']!,
    device: 'cpu',
    logger: silentLog,
    sampleBatch: candidates,
    clipBatch: candidates,
    ...(values.threads ? { cpuThreads: Number(values.threads) } : {}),
  }),
);
try {
  const loaded = { rssGiB: gib(process.memoryUsage().rss), peakRssGiB: peakRss() };
  const [result, endToEndMs] = await timed(() =>
    engine.generate({ prompt: values.prompt, seed: 1, candidates, n: candidates, model: values.model }),
  );
  const t = result.timings;
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
      peakRssGiB: peakRss(),
    }),
  );
} finally {
  await engine.close();
}
