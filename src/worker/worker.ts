// A worker process's parts: the engine, one BullMQ Worker per served queue with a handler
// per job name, cross-process cancel, webhooks, metrics port, model registry, retention.
import { randomUUID } from 'node:crypto';
import { freemem, hostname } from 'node:os';
import { Worker } from 'bullmq';
import type { Config } from '../config.js';
import type { QueueData, QueueJobName, QueueResult } from '../contracts/jobs.js';
import type { QueueName } from '../contracts/queues.js';
import type { ModelInfo } from '../contracts/schemas.js';
import type { Logger } from '../logger.js';
import { createEngine, defaultPackName, GenerationScheduler, ModelError } from '../models/index.js';
import type { Engine, PackSummary } from '../models/types.js';
import { serviceKeys } from '../service/redis-keys.js';
import { publishModels } from '../service/model-registry.js';
import { Queues, queueKeyPrefix } from '../queue/queues.js';
import { Cluster, Redis } from 'ioredis';
import { type RedisClient, waitForRedis, workerConnection } from '../queue/redis.js';
import { redisStartupHint } from '../process.js';
import { Lifecycle } from '../service/lifecycle.js';
import { StorageGarbage } from '../service/storage-garbage.js';
import { PartialImages } from '../service/partial-images.js';
import { THROUGHPUT_PUBLISH_MS, ThroughputMeter } from '../service/estimates.js';
import { WebhookOutbox } from '../service/webhooks/outbox.js';
import { type ObjectStore, createObjectStore } from '../storage/index.js';
import { withSharedFileUrlSecret } from '../service/file-url-secret.js';
import { ClipImages } from '../service/clip-images.js';
import { releasePlaces } from '../service/clip-admission.js';
import { stopOnEngineFailure } from './engine-health.js';
import { ClassifyBatcher } from './batcher.js';
import { CancelWatcher, SHUTDOWN } from './cancel.js';
import { createClassifyHandler, createEmbedHandler } from './classify.js';
import { replyToClipRequests } from '../service/clip-replies.js';
import { type Handlers, type Processor, isNamed, processorsFor } from './dispatch.js';
import { createGenerateHandler } from './generate.js';
import { createWorkerMetrics, serveMetrics } from './metrics.js';
import { startRetentionSweeper, sweepExpired } from './retention.js';

import { startUpkeep } from './upkeep.js';
import { createWebhookProcessor } from '../service/webhooks/processor.js';

const MODELS_TTL_SECONDS = 45;
const MODELS_REFRESH_MS = 15_000;

export interface WorkerRuntime {
  metricsPort: number;
  metrics: ReturnType<typeof createWorkerMetrics>;
  stop(): Promise<void>;
}

export interface WorkerOptions {
  /** An engine owned by the caller (tests share one); by default the worker creates its own. */
  engine?: Engine;
  /** The image store; by default the one STORAGE_* configures (tests wrap it to inject faults). */
  store?: ObjectStore;
  /** Told after the worker stopped because an inference thread died (`npm run worker` exits 1). */
  onEngineFailure?: (error: Error) => void;
}

interface DefaultModels {
  generations: string;
  clip: string;
}

/** DEFAULT_MODEL and DEFAULT_CLIP_MODEL resolved against the packs; a name not among them stops the worker. */
function defaultModels(packs: PackSummary[], config: Config): DefaultModels {
  const generations =
    config.defaultModel ??
    defaultPackName(packs.map((pack) => ({ name: pack.name, generates: pack.generation !== null }))) ??
    '';
  const defaults = { generations, clip: config.defaultClipModel ?? generations };
  const names = packs.map((pack) => pack.name);
  for (const [variable, name] of [
    ['DEFAULT_MODEL', defaults.generations],
    ['DEFAULT_CLIP_MODEL', defaults.clip],
  ]) {
    if (!names.includes(name))
      throw new ModelError(
        'unknown_model',
        `${variable} names "${name}", which is not among the packs: ${names.join(', ')}`,
      );
  }
  return defaults;
}

/** Half the memory free once the packs are loaded, on the CPU; on CUDA only a set budget holds. */
const CPU_FREE_MEMORY_SHARE = 0.5;
/**
 * The most of the budget images being decoded may take: the rows get the rest. A decoder runs
 * about as fast per image a few at a time as many at once, while every row more is a step's
 * worth of work shared.
 */
const DECODE_BUDGET_SHARE = 0.25;

export interface PackBudget {
  /** Most rows a batch samples at once. */
  rows: number;
  /** Most images decoded at once; undefined: the engine's CLIP batch (unbudgeted). */
  decodeImages?: number;
}

/**
 * How a pack's batches fit in `budget` bytes: as many rows as fit, each with the room to decode
 * its image, up to the images a quarter of the budget holds (at least one); past that the rows
 * share those images' room. Both capped at `maxRows`: a batch never decodes more images than it
 * has rows. Null when not even one row fits beside one decoded image.
 */
export function packBudget(
  generation: { rowBytes: number; decodeImageBytes: number | null },
  budget: number,
  maxRows: number,
): PackBudget | null {
  const { rowBytes, decodeImageBytes } = generation;
  if (decodeImageBytes === null) {
    const rows = Math.min(maxRows, Math.floor(budget / rowBytes));
    return rows >= 1 ? { rows } : null;
  }
  const imageCap = Math.max(1, Math.min(maxRows, Math.floor((budget * DECODE_BUDGET_SHARE) / decodeImageBytes)));
  const rowsWithTheirImages = Math.min(maxRows, Math.floor(budget / (rowBytes + decodeImageBytes)));
  const rows =
    rowsWithTheirImages < imageCap
      ? rowsWithTheirImages
      : Math.min(maxRows, Math.floor((budget - imageCap * decodeImageBytes) / rowBytes));
  return rows >= 1 ? { rows, decodeImages: Math.min(imageCap, rows) } : null;
}

/**
 * The memory budget of a batch, and how each pack's batches fit in it. A generating pack that
 * cannot fit one row stops the worker: it would fail every generation sent to it.
 */
function memoryBudget(packs: PackSummary[], config: Config) {
  const budget =
    config.generateMemoryBudgetBytes ??
    (config.device === 'cpu' ? Math.floor(freemem() * CPU_FREE_MEMORY_SHARE) : undefined);
  const fits = new Map<string, PackBudget>();
  for (const pack of packs) {
    if (!pack.generation) continue;
    if (budget === undefined) {
      fits.set(pack.name, { rows: config.generateBatchCandidates });
      continue;
    }
    const fit = packBudget(pack.generation, budget, config.generateBatchCandidates);
    if (!fit) {
      const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      const { rowBytes, decodeImageBytes } = pack.generation;
      const decoder = decodeImageBytes === null ? '' : ` beside ${mib(decodeImageBytes)} to decode one image`;
      throw new ModelError(
        'validation_failed',
        `pack ${pack.name} needs ${mib(rowBytes)} per candidate row${decoder}, more than the memory budget of ${mib(budget)}: raise GENERATE_MEMORY_BUDGET_MB or serve a smaller pack`,
      );
    }
    fits.set(pack.name, fit);
  }
  return { budget, fits };
}

function packVocabularies(packs: PackSummary[]): Map<string, ReadonlySet<string>> {
  return new Map(packs.flatMap((pack) => (pack.vocabulary ? [[pack.name, new Set(pack.vocabulary)] as const] : [])));
}

function modelInfo(pack: PackSummary, defaults: DefaultModels, defaultCandidates: number, fit: PackBudget): ModelInfo {
  return {
    name: pack.name,
    version: pack.version,
    description: pack.description ?? null,
    default_for: (['generations', 'clip'] as const).filter((purpose) => defaults[purpose] === pack.name),
    generation: generationInfo(pack.generation, defaultCandidates, fit),
    embed_dim: pack.embedDim,
    vocabulary: pack.vocabulary ?? null,
    examples: pack.examples ?? [],
    license: pack.license ?? null,
    weights: pack.weights,
  };
}

function generationInfo(
  generation: PackSummary['generation'],
  defaultCandidates: number,
  fit: PackBudget,
): ModelInfo['generation'] {
  if (!generation) return null;
  const d = generation.samplingDefaults;
  return {
    text_length: generation.textLength,
    image_size: generation.imageSize,
    image_grid: generation.imageGrid,
    codebook_size: generation.codebookSize,
    completes: generation.completes,
    default_candidates: defaultCandidates,
    row_bytes: generation.rowBytes,
    decode_image_bytes: generation.decodeImageBytes,
    max_batch_rows: fit.rows,
    decode_batch_images: fit.decodeImages ?? null,
    sampling_defaults: { top_k: d.topK, temperature: d.temperature, ...(d.topP !== undefined && { top_p: d.topP }) },
  };
}

export async function startWorker(config: Config, logger: Logger, options: WorkerOptions = {}): Promise<WorkerRuntime> {
  // Before the packs load (slow at full size): a worker without Redis says so at once.
  await waitForRedis(config.redis, config.redisStartupWaitMs, logger, redisStartupHint(config));
  const engine =
    options.engine ??
    (await createEngine({
      modelsDir: config.modelsDir,
      defaultPack: config.defaultModel,
      device: config.device,
      cpuThreads: config.cpuThreads,
      cpuSpinWait: config.cpuSpinWait,
      checksumCacheDir: config.checksumCacheDir,
      sampleBatch: config.generateBatchCandidates,
      maxImagePixels: config.imageMaxPixels,
      logger: logger.child({ component: 'models' }),
    }));
  for (const warning of config.warnings) logger.warn(warning);
  const packs = engine.packs();
  let defaults: DefaultModels;
  let budget: ReturnType<typeof memoryBudget>;
  try {
    defaults = defaultModels(packs, config);
    budget = memoryBudget(packs, config);
  } catch (error) {
    if (!options.engine) await engine.close();
    throw error;
  }
  const keys = serviceKeys(config.queuePrefix);
  const queues = new Queues(config);
  const store = options.store ?? createObjectStore(withSharedFileUrlSecret(config.storage, queues, keys));
  const metrics = createWorkerMetrics();
  const cancels = new CancelWatcher(config.redis, queues.redis, keys);
  await cancels.start();
  const outbox = new WebhookOutbox(queues, keys, config.redisWaitReplicas);
  const garbage = new StorageGarbage(queues, keys, store);
  const lifecycle = new Lifecycle(queues, keys, config.retentionSeconds, outbox, garbage, config.redisWaitReplicas);
  const batcher = new ClassifyBatcher(engine, {
    maxBatch: config.classifyBatchMax,
    maxWaitMs: config.classifyBatchWaitMs,
    onBatch: (size) => metrics.batchSize.observe(size),
  });

  const throughput = new ThroughputMeter(
    queues.redis,
    keys,
    `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
  );
  if (budget.budget === undefined) {
    logger.warn('GENERATE_MEMORY_BUDGET_MB is unset on a GPU: batches are bounded by GENERATE_BATCH_CANDIDATES only');
  }
  const scheduler = new GenerationScheduler(engine, {
    batchCandidates: config.generateBatchCandidates,
    rowsOf: (model) => budget.fits.get(model ?? defaults.generations)?.rows ?? config.generateBatchCandidates,
    decodeImagesOf: (model) => budget.fits.get(model ?? defaults.generations)?.decodeImages,
    onBatch: ({ rows, jobs, capacity }) => {
      metrics.generationBatchRows.observe(rows);
      metrics.generationBatchJobs.observe(jobs);
      metrics.generationBatchFill.observe(rows / capacity);
    },
    onFirstBatch: (seconds) => metrics.generationFirstBatchWait.observe(seconds),
    onBatchDone: ({ rows, seconds, ok }) => {
      if (ok) throughput.observe(rows, seconds);
    },
  });
  const vocabularies = packVocabularies(packs);
  const generateDeps = { config, defaultModel: defaults.generations, scheduler, store, cancels, lifecycle, metrics };
  const partialImages = new PartialImages(queues.redis, keys);
  const clipDeps = {
    defaultClipModel: defaults.clip,
    images: new ClipImages(queues, keys),
    releasePlaces: (ids: string[]) => releasePlaces(queues.redis, keys, ids),
  };
  const handlers: Handlers = {
    generate: createGenerateHandler({ ...generateDeps, logger, partialImages, vocabularies }),
    classify: createClassifyHandler(batcher, clipDeps),
    embed: createEmbedHandler(engine, clipDeps),
    webhook: createWebhookProcessor({
      config,
      queues,
      store,
      keys,
      deliveries: metrics.webhookDeliveries,
      lifecycle,
    }),
  };
  const processors = processorsFor(handlers);
  const concurrency: Record<QueueName, number> = {
    // Every generation held at once joins the scheduler's batches.
    generate: config.generateMaxActive,
    // Twice the batch size, so that the next batch fills while one runs.
    classify: config.classifyBatchMax * 2,
    webhooks: config.webhookConcurrency,
  };

  const timed =
    <Q extends QueueName>(queueName: Q, processor: Processor<Q>): Processor<Q> =>
    async (job, token) => {
      const end = metrics.jobDuration.startTimer({ queue: queueName });
      metrics.activeJobs.inc({ queue: queueName });
      try {
        const result = await processor(job, token);
        end({ outcome: 'completed' });
        return result;
      } catch (error) {
        end({ outcome: error instanceof Error && error.name === 'WaitingError' ? 'returned' : 'failed' });
        throw error;
      } finally {
        metrics.activeJobs.dec({ queue: queueName });
      }
    };

  const workerConnections: RedisClient[] = [];
  const connectionFor = (queueName: QueueName) => {
    const connection = workerConnection(config.redis, `dalle-serve:worker:${queueName}`);
    if (connection instanceof Redis || connection instanceof Cluster) {
      connection.on('error', () => {}); // the worker's own 'error' event reports it
      workerConnections.push(connection);
    }
    return connection;
  };
  const startQueueWorker = <Q extends QueueName>(queueName: Q) => {
    const worker = new Worker<QueueData<Q>, QueueResult<Q>, QueueJobName<Q>>(
      queueName,
      timed(queueName, processors[queueName]),
      {
        connection: connectionFor(queueName),
        prefix: queueKeyPrefix(config.queuePrefix, queueName),
        concurrency: concurrency[queueName],
        lockDuration: config.lockDurationMs,
        stalledInterval: config.stalledIntervalMs,
        maxStalledCount: config.maxStalledCount,
      },
    );
    worker.on('error', (error) => logger.warn({ err: error, queue: queueName }, 'worker error'));
    return worker;
  };
  const workers = config.workerQueues.map((queueName) => startQueueWorker(queueName));
  const classifyWorker = workers.find((worker) => worker.name === 'classify');
  if (classifyWorker) replyToClipRequests(classifyWorker, queues.redis, logger);

  // The processor records every outcome it sees; a job BullMQ fails by itself (stalled more
  // often than allowed) ends here, through the same lifecycle, as lost. On a generation that
  // ended already, the failure changes nothing.
  workers
    .find((worker) => worker.name === 'generate')
    ?.on('failed', (job, error) => {
      if (!job || !isNamed(job, 'generate')) return;
      const id = String(job.id);
      // Only a job BullMQ will never run again ends its generation.
      job
        .getState()
        .then((state) =>
          state === 'failed'
            ? lifecycle.fail(id, 'any', { code: 'worker_lost', message: error.message }, true)
            : undefined,
        )
        .catch((failure: unknown) => logger.warn({ err: failure }, 'lost generation not recorded'));
    });
  // A webhook job BullMQ fails by itself (stalled too often), or whose last attempt failed
  // before it reached the receiver, is recorded given up on like one the receiver refused, so
  // that no generation's webhook ends neither delivered nor shown failed.
  workers
    .find((worker) => worker.name === 'webhooks')
    ?.on('failed', (job, error) => {
      if (!job || !isNamed(job, 'webhook')) return;
      const { generation_id: id, event } = job.data;
      job
        .getState()
        .then((state) =>
          state === 'failed'
            ? lifecycle.recordWebhookFailure(id, {
                event,
                attempts: Math.max(job.attemptsMade, job.attemptsStarted),
                last_error: error.message,
              })
            : undefined,
        )
        .catch((failure: unknown) => logger.warn({ err: failure }, 'webhook failure not recorded'));
    });
  await Promise.all(workers.map((worker) => worker.waitUntilReady()));

  const modelList = packs.map((pack) =>
    modelInfo(
      pack,
      defaults,
      config.defaultCandidates,
      budget.fits.get(pack.name) ?? { rows: config.generateBatchCandidates },
    ),
  );
  const publish = () =>
    publishModels(queues.redis, keys, modelList, MODELS_TTL_SECONDS).catch((error) =>
      logger.warn({ err: error }, 'model registry update failed'),
    );
  await publish();
  const modelsTimer = setInterval(() => void publish(), MODELS_REFRESH_MS).unref();
  const publishThroughput = () =>
    throughput.publish().catch((error) => logger.warn({ err: error }, 'throughput update failed'));
  const throughputTimer = setInterval(() => void publishThroughput(), THROUGHPUT_PUBLISH_MS).unref();
  const stopSweeper = startRetentionSweeper(
    () => sweepExpired({ queues, keys, lifecycle, retentionSeconds: config.retentionSeconds, log: logger }),
    Math.min(60_000, config.retentionSeconds * 100),
    logger,
  );
  const stopUpkeep = startUpkeep(
    { lifecycle, outbox, garbage, queue: queues.get('generate'), log: logger },
    { owedIntervalMs: 1000, openIntervalMs: 10_000 },
  );
  const { server, port: metricsPort } = await serveMetrics(
    metrics.registry,
    config.workerMetricsPort,
    config.workerMetricsHost,
  );
  logger.info({ queues: config.workerQueues, packs: packs.map((pack) => pack.name), metricsPort }, 'worker ready');

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    clearInterval(modelsTimer);
    clearInterval(throughputTimer);
    /** `work`'s result, or 'timeout' once the shutdown's time has passed. */
    const withinShutdown = <T>(work: Promise<T>) =>
      Promise.race([
        work,
        new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs).unref()),
      ]);
    // Best effort: a rate left behind expires with its TTL.
    await withinShutdown(
      throughput.withdraw().catch((error) => logger.warn({ err: error }, 'throughput withdrawal failed')),
    );
    stopSweeper();
    stopUpkeep();
    const closing = Promise.all(workers.map((worker) => worker.close()));
    if ((await withinShutdown(closing)) === 'timeout') {
      logger.warn('shutdown timeout: returning running jobs to the queue');
      cancels.abortAll(SHUTDOWN);
      await closing;
    }
    for (const connection of workerConnections) connection.disconnect();
    await cancels.stop();
    await queues.close();
    await new Promise((resolve) => server.close(resolve));
    if (!options.engine) await engine.close();
  };
  const stopOnce = () => (stopping ??= stop());
  stopOnEngineFailure(engine, logger, stopOnce, options.onEngineFailure);
  return { metricsPort, metrics, stop: stopOnce };
}
