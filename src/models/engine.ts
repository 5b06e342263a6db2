// The engine the worker process holds: a proxy to two inference threads. onnxruntime-node's
// run() blocks the thread that calls it, so all inference happens off the caller's event loop
// (BullMQ renews job locks on timers there). Generations run on one thread; classification and
// embeddings on another, so a classify request never waits behind a whole sampling chunk.
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import { AbortError, deserializeError, ModelError } from './errors.js';
import { DEFAULT_CANDIDATES, DEFAULT_KEEP, DEFAULT_SAMPLE_BATCH } from './generate-options.js';
import { GenerationScheduler } from './scheduler.js';
import type {
  CallMethod,
  CallOf,
  EngineCalls,
  FromThread,
  ResultMessage,
  ThreadOptions,
  ThreadRole,
  ToThread,
} from './engine-protocol.js';
import { isAnswerOf } from './engine-protocol.js';
import type { Log } from './log.js';
import type {
  ChunkResult,
  ClassifyOutcome,
  ClassifyRequest,
  Engine,
  EngineOptions,
  GenerateOptions,
  GenerateResult,
  MixedChunk,
  PackSummary,
} from './types.js';

interface PendingCall {
  resolve: (answer: ResultMessage) => void;
  reject: (error: Error) => void;
}

// Compiled, the thread is plain .js. Under tsx the sources are .ts, and Node 20 does not apply
// `--import tsx` to a worker's entry module, so a bootstrap registers tsx, then imports it.
function spawnThread(options: ThreadOptions): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./engine-thread.js', import.meta.url), { workerData: options });
  }
  const entry = new URL('./engine-thread.ts', import.meta.url).href;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: options });
}

/** One inference thread: calls by message, results and progress back. */
class InferenceThread {
  private readonly pending = new Map<number, PendingCall>();
  private nextId = 1;
  private closed = false;
  private readonly exited: Promise<void>;
  /** Told once when the thread dies without being closed (after start-up). */
  readonly deathListeners: ((error: Error) => void)[] = [];
  summaries: PackSummary[] = [];

  constructor(
    private readonly thread: Worker,
    private readonly log: Log,
  ) {
    this.exited = new Promise((resolve) => thread.once('exit', () => resolve()));
  }

  /** Resolves once the thread has loaded the packs; rejects with its start-up error. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.thread.on('message', (message: FromThread) => {
        if (message.type === 'ready') {
          this.summaries = message.packs;
          resolve();
        } else if (message.type === 'init-error') {
          reject(deserializeError(message.error));
          void this.thread.terminate();
        } else {
          this.handle(message);
        }
      });
      this.thread.on('error', (error) => {
        reject(error);
        this.failAll(error);
      });
      this.thread.on('exit', (code) => {
        const closing = this.closed;
        this.closed = true;
        reject(new ModelError('engine_closed', `inference thread exited with code ${code} during start-up`));
        const error = new ModelError('engine_closed', `inference thread exited with code ${code}`);
        this.failAll(error);
        if (!closing) for (const listener of this.deathListeners) listener(error);
      });
    });
  }

  private handle(message: FromThread): void {
    switch (message.type) {
      case 'log':
        this.log[message.level](message.obj, message.msg);
        return;
      case 'result':
      case 'error': {
        this.summaries = message.packs;
        const call = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.type === 'result') call?.resolve(message);
        else call?.reject(deserializeError(message.error));
        return;
      }
      default:
        return;
    }
  }

  private failAll(error: Error): void {
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
  }

  call<M extends CallMethod>(
    method: M,
    args: EngineCalls[M]['args'],
    cancel?: SharedArrayBuffer,
  ): Promise<EngineCalls[M]['result']> {
    if (this.closed) return Promise.reject(new ModelError('engine_closed', 'the engine is closed'));
    const id = this.nextId++;
    return new Promise<EngineCalls[M]['result']>((resolve, reject) => {
      const answered = (answer: ResultMessage) => {
        if (isAnswerOf(method, answer)) resolve(answer.result);
        else reject(new Error(`call ${id} (${method}) was answered for ${answer.method}`));
      };
      this.pending.set(id, { resolve: answered, reject });
      const message: CallOf<M> = { type: 'call', id, method, args, ...(cancel && { cancel }) };
      this.thread.postMessage(message);
    });
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.thread.postMessage({ type: 'close' } satisfies ToThread);
    }
    await this.exited;
    this.failAll(new ModelError('engine_closed', 'the engine is closed'));
  }
}

class ThreadedEngine implements Engine {
  constructor(
    private readonly generation: InferenceThread,
    private readonly clip: InferenceThread,
    private readonly sampleBatch: number,
  ) {}

  /** The generation thread's view, with the providers of the sessions that serve CLIP calls. */
  packs(): PackSummary[] {
    const clipViews = new Map(this.clip.summaries.map((p) => [p.name, p.providers]));
    return this.generation.summaries.map((p) => ({ ...p, providers: { ...p.providers, ...clipViews.get(p.name) } }));
  }

  /** One generation alone: a scheduler of its own, batches of `batch` rows (default `sampleBatch`). */
  generate(options: GenerateOptions): Promise<GenerateResult> {
    const { batch = this.sampleBatch, candidates = DEFAULT_CANDIDATES, ...request } = options;
    if (!Number.isInteger(batch) || batch < 1)
      return Promise.reject(new ModelError('validation_failed', `batch must be a positive integer, got ${batch}`));
    const n = request.n ?? Math.min(DEFAULT_KEEP, candidates);
    return new GenerationScheduler(this, { batchCandidates: batch }).submit({ ...request, candidates, n });
  }

  async runChunk(chunk: MixedChunk, signal?: AbortSignal): Promise<ChunkResult> {
    if (signal?.aborted) throw new AbortError('generation canceled');
    // The thread polls this flag between steps of the host loop and between sampler runs.
    const cancel = new SharedArrayBuffer(4);
    const raise = () => Atomics.store(new Int32Array(cancel), 0, 1);
    signal?.addEventListener('abort', raise, { once: true });
    try {
      return await this.generation.call('runChunk', [chunk], signal && cancel);
    } finally {
      signal?.removeEventListener('abort', raise);
    }
  }

  classify(requests: ClassifyRequest[]): Promise<ClassifyOutcome[]> {
    return this.clip.call('classify', [requests]);
  }

  embedImages(images: Uint8Array[], model?: string): Promise<Float32Array[]> {
    return this.clip.call('embedImages', [images, model]);
  }

  embedTexts(texts: string[], model?: string): Promise<Float32Array[]> {
    return this.clip.call('embedTexts', [texts, model]);
  }

  countTextTokens(texts: string[], model?: string): Promise<number[]> {
    return this.clip.call('countTextTokens', [texts, model]);
  }

  onFailure(listener: (error: Error) => void): void {
    this.generation.deathListeners.push(listener);
    this.clip.deathListeners.push(listener);
  }

  async close(): Promise<void> {
    await Promise.all([this.generation.close(), this.clip.close()]);
  }
}

/** Starts the inference threads and loads the packs; rejects with the start-up error. */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const { logger, ...threadOptions } = options;
  const log: Log = logger ?? pino({ name: 'models' });
  const open = async (role: ThreadRole) => {
    const thread = new InferenceThread(spawnThread({ ...threadOptions, role }), log);
    await thread.start();
    return thread;
  };
  // One after the other: the first fails fast on a bad device or pack, with one message.
  const generation = await open('generate');
  try {
    return new ThreadedEngine(generation, await open('clip'), options.sampleBatch ?? DEFAULT_SAMPLE_BATCH);
  } catch (error) {
    await generation.close();
    throw error;
  }
}
