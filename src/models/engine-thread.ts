// The inference thread: loads the packs, runs every onnxruntime call (which blocks the thread
// that makes it) and answers the engine by message, so the caller's event loop stays free.
import { parentPort, workerData } from 'node:worker_threads';
import { AbortError, ModelError, serializeError } from './errors.js';
import type { Answer, CallMessage, FromThread, ThreadOptions, ToThread } from './engine-protocol.js';
import type { Log, LogLevel } from './log.js';
import { generates } from './manifest.js';
import { CLIP_GRAPHS, defaultPackName, listPacks, Pack } from './packs.js';
import { Pipeline, type JobHooks } from './pipeline.js';
import { DEFAULT_MAX_IMAGE_PIXELS } from './preprocess.js';
import { logProviderSettings, parseDevice, type ProviderSettings } from './providers.js';

const port = parentPort!;
const send = (message: FromThread, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

const logAt = (level: LogLevel) => (obj: object, msg?: string) => send({ type: 'log', level, obj, msg });
const log: Log = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };

const packs = new Map<string, Pack>();

async function start(options: ThreadOptions): Promise<Pipeline> {
  const device = parseDevice(options.device);
  const settings: ProviderSettings = {
    device,
    allowCpuFallback: options.allowCpuFallback ?? false,
    cudaMemLimitBytes: options.cudaMemLimitBytes,
    cpuThreads: options.cpuThreads,
    cpuSpinWait: options.cpuSpinWait ?? false,
    probePlacement: options.probePlacement ?? device.kind === 'cuda',
  };
  logProviderSettings(settings, log);
  const found = await listPacks(options.modelsDir, { cacheDir: options.checksumCacheDir });
  if (found.length === 0) throw new ModelError('pack_file_missing', `no model packs under ${options.modelsDir}`);
  for (const info of found) packs.set(info.manifest.name, new Pack(info, settings, log));
  const defaultPack =
    options.defaultPack ??
    defaultPackName(found.map(({ manifest }) => ({ name: manifest.name, generates: generates(manifest) })))!;
  if (!packs.has(defaultPack)) {
    throw new ModelError(
      'unknown_model',
      `default pack "${defaultPack}" not found: available are ${[...packs.keys()].join(', ')}`,
    );
  }
  const pipeline = new Pipeline(
    packs,
    defaultPack,
    {
      clipBatch: options.clipBatch ?? 64,
      samplerMode: options.samplerMode ?? 'auto',
      device: device.kind,
      maxImagePixels: options.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS,
    },
    log,
  );
  if (options.eager ?? true) {
    // Each graph once per process: the generation thread holds what generating packs sample,
    // decode and rerank with; a CLIP-only pack's graphs live on the CLIP thread alone.
    for (const pack of packs.values()) {
      if (options.role === 'clip') await pack.createAll(CLIP_GRAPHS);
      else if (generates(pack.manifest)) await pack.createAll(pipeline.generationGraphs(pack));
    }
  } else if (device.kind === 'cuda') {
    // Lazy sessions, but a CUDA provider that cannot load must still fail at start-up.
    await packs.get(defaultPack)!.session('clip_text');
  }
  log.info({ role: options.role, packs: [...packs.keys()], defaultPack }, 'model packs loaded');
  return pipeline;
}

const summaries = (pipeline: Pipeline) => [...packs.values()].map((p) => p.summary(pipeline.samplerFor(p)));

// Set by close: a running chunk stops at its next checkpoint before sessions are released.
let closing = false;
const inFlight = new Set<Promise<unknown>>();

/** A chunk's checkpoint: it stops when the engine closes, or when every generation in it was canceled. */
function hooksFor(cancel: SharedArrayBuffer | undefined): JobHooks {
  const flag = cancel ? new Int32Array(cancel) : undefined;
  return {
    checkpoint: () => {
      if (flag && Atomics.load(flag, 0) !== 0) throw new AbortError('generation canceled');
      // Not a cancel: the work was not done, and another engine may do it.
      if (closing) throw new ModelError('engine_closed', 'the engine is closing');
    },
  };
}

/** Runs one call; the compiler checks each method's answer against its declared result. */
async function call(pipeline: Pipeline, message: CallMessage): Promise<Answer> {
  switch (message.method) {
    case 'runChunk':
      return { method: 'runChunk', result: await pipeline.runChunk(...message.args, hooksFor(message.cancel)) };
    case 'classify':
      return { method: 'classify', result: await pipeline.classify(...message.args) };
    case 'embedImages':
      return { method: 'embedImages', result: await pipeline.embedImages(...message.args) };
    case 'embedTexts':
      return { method: 'embedTexts', result: await pipeline.embedTexts(...message.args) };
    case 'countTextTokens':
      return { method: 'countTextTokens', result: await pipeline.countTextTokens(...message.args) };
  }
}

// Result buffers move to the caller instead of being copied.
function transferablesOf(result: unknown): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  const visit = (value: unknown): void => {
    if (ArrayBuffer.isView(value) && value.buffer instanceof ArrayBuffer) buffers.add(value.buffer);
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') Object.values(value).forEach(visit);
  };
  visit(result);
  return [...buffers];
}

async function main(): Promise<void> {
  let pipeline: Pipeline;
  try {
    pipeline = await start(workerData as ThreadOptions);
  } catch (error) {
    send({ type: 'init-error', error: serializeError(error) });
    return;
  }
  send({ type: 'ready', packs: summaries(pipeline) });
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- a call's errors are answered inside; one on close ends the thread, which the engine reports as engine_closed
  port.on('message', async (message: ToThread) => {
    if (message.type === 'close') {
      closing = true;
      await Promise.allSettled(inFlight);
      for (const pack of packs.values()) await pack.release();
      send({ type: 'closed' });
      port.close();
      return;
    }
    const { id } = message;
    const running = call(pipeline, message);
    inFlight.add(running);
    try {
      const answer = await running;
      send({ type: 'result', id, ...answer, packs: summaries(pipeline) }, transferablesOf(answer.result));
    } catch (error) {
      send({ type: 'error', id, error: serializeError(error), packs: summaries(pipeline) });
    } finally {
      inFlight.delete(running);
    }
  });
}

void main();
