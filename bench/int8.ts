// A float32 pack against its int8 copy (training.quantize) in the same run, interleaved round by
// round so that a shared machine's noise falls on both: seconds per candidate of a whole
// generation (sample, decode, rerank) and CLIP image-encoder images per second.
import { dirname } from 'node:path';
import * as ort from 'onnxruntime-node';
import { createEngine, type DeviceName, type Engine, loadPack, silentLog } from '../src/models/index.js';
import { Pack } from '../src/models/packs.js';
import { parseDevice } from '../src/models/providers.js';
import { ROUNDS, timed } from './timing.js';

const PROMPT = 'a red circle above a blue square';
const CLIP_BATCH = 64;

export interface Int8Figures {
  secondsPerCandidate: { float32: number; int8: number };
  clipImagesPerSecond: { float32: number; int8: number };
}

async function clipRun(pack: Pack): Promise<() => Promise<number>> {
  const session = await pack.session('clip_image');
  const size = pack.manifest.clip.preprocess.size;
  const input = new ort.Tensor(
    'float32',
    Float32Array.from({ length: CLIP_BATCH * 3 * size * size }, (_, i) => Math.sin(i)),
    [CLIP_BATCH, 3, size, size],
  );
  await session.run({ pixel_values: input });
  return async () => (await timed(() => session.run({ pixel_values: input })))[1];
}

export async function compareInt8(
  floatDir: string,
  int8Dir: string,
  device: DeviceName,
  candidates: number,
  cpuThreads?: number,
): Promise<Int8Figures> {
  const open = async (dir: string): Promise<[Engine, string]> => {
    const { manifest } = await loadPack(dir);
    const engine = await createEngine({
      modelsDir: dirname(dir),
      defaultPack: manifest.name,
      device,
      cpuThreads,
      logger: silentLog,
    });
    return [engine, manifest.name];
  };
  const engines = [await open(floatDir), await open(int8Dir)];
  const settings = { device: parseDevice(device), allowCpuFallback: false, cpuThreads };
  const packs = [floatDir, int8Dir].map(async (dir) => new Pack(await loadPack(dir), settings, silentLog));
  const clip = await Promise.all((await Promise.all(packs)).map(clipRun));
  const best = { gen: [Infinity, Infinity], clip: [Infinity, Infinity] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, [engine, model]] of engines.entries()) {
        const request = { prompt: PROMPT, model, seed: round, candidates, n: Math.min(8, candidates) };
        best.gen[i] = Math.min(best.gen[i], (await timed(() => engine.generate(request)))[1]);
        best.clip[i] = Math.min(best.clip[i], await clip[i]());
      }
    }
  } finally {
    for (const [engine] of engines) await engine.close();
  }
  return {
    secondsPerCandidate: { float32: best.gen[0] / 1000 / candidates, int8: best.gen[1] / 1000 / candidates },
    clipImagesPerSecond: { float32: CLIP_BATCH / (best.clip[0] / 1000), int8: CLIP_BATCH / (best.clip[1] / 1000) },
  };
}
