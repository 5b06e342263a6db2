// The service's configuration: read once from the environment, validated, frozen. This is
// the only module that reads process.env; everything else receives a Config.
import { createHash, randomBytes } from 'node:crypto';
import { QUEUE_NAMES, type QueueName } from './contracts/queues.js';
import type { DeviceName } from './models/types.js';
import { type AllowList, EMPTY_ALLOW_LIST, parseAllowList } from './net/outbound.js';
import type { StorageOptions } from './storage/index.js';
import { parseWebhookSecret } from './webhooks/index.js';

export interface Config {
  /** PORT, default 3000; HOST, default 0.0.0.0. */
  port: number;
  host: string;
  /** PUBLIC_BASE_URL: absolute base of every URL the API hands out. Default http://localhost:PORT. */
  publicBaseUrl: string;
  /** LOG_LEVEL, default info. */
  logLevel: string;
  /** REDIS_URL, default redis://127.0.0.1:6379; QUEUE_PREFIX (BullMQ key prefix), default dalle. */
  redisUrl: string;
  redisUrlIsDefault: boolean;
  queuePrefix: string;
  /**
   * MODELS_DIR, default ./packs; DEFAULT_MODEL (generations), default the first pack by name
   * that generates; DEFAULT_CLIP_MODEL (classify, embed), default DEFAULT_MODEL; DEVICE, default cpu.
   */
  modelsDir: string;
  defaultModel: string | undefined;
  defaultClipModel: string | undefined;
  device: DeviceName;
  /** CPU_THREADS (onnxruntime intra-op threads), default onnxruntime's choice. */
  cpuThreads: number | undefined;
  /** SAMPLE_BATCH: candidates per forward pass, default the engine's (64). */
  sampleBatch: number | undefined;
  storage: StorageOptions;
  /** IMAGE_URL_TTL_SECONDS: lifetime of image URLs in responses, default 3600. */
  imageUrlTtlSeconds: number;
  /** WEBHOOK_SECRET (whsec_…): signs webhooks; without it requests naming a webhook get 400. */
  webhookSecret: string | undefined;
  /** WEBHOOK_TIMEOUT_MS 10000, WEBHOOK_ATTEMPTS 8, WEBHOOK_BACKOFF_MS 1000, WEBHOOK_PROGRESS_INTERVAL_MS 2000. */
  webhookTimeoutMs: number;
  webhookAttempts: number;
  webhookBackoffMs: number;
  webhookProgressIntervalMs: number;
  /** GENERATE_MAX_QUEUED 1000, CLASSIFY_MAX_QUEUED 1000: past this many waiting jobs → 503. */
  generateMaxQueued: number;
  classifyMaxQueued: number;
  /** QUEUE_FULL_RETRY_AFTER_SECONDS, default 5: the Retry-After of a 503 queue_full. */
  queueFullRetryAfterSeconds: number;
  /** CLASSIFY_TIMEOUT_MS, default 30000: how long POST /clip/classify waits for its job. */
  classifyTimeoutMs: number;
  /**
   * OPENAI_WAIT_TIMEOUT_MS, default 300000: how long POST /v1/images/generations waits for its
   * generation before answering an error that names it (the generation goes on).
   */
  openaiWaitTimeoutMs: number;
  /**
   * OPENAI_MODEL_ALIASES, default none: `openai-name=pack,…` (e.g. `dall-e-2=demo-shapes`), so that
   * clients that send OpenAI's model names reach a pack. Under /v1 only.
   */
  openaiModelAliases: Record<string, string>;
  /** CLASSIFY_BATCH_MAX 32, CLASSIFY_BATCH_WAIT_MS 10: the worker's micro-batching. */
  classifyBatchMax: number;
  classifyBatchWaitMs: number;
  /** IMAGE_FETCH_TIMEOUT_MS 10000, IMAGE_MAX_BYTES 10 MiB: image URLs and uploads. */
  imageFetchTimeoutMs: number;
  imageMaxBytes: number;
  /** IMAGE_FETCH_MAX_REDIRECTS, default 3: redirects an image URL may take, each re-checked. */
  imageFetchMaxRedirects: number;
  /**
   * IMAGE_MAX_PIXELS, default 40,000,000: the largest image the worker decodes. A few KiB of
   * PNG can claim gigapixels; past this the image is refused before its pixels are allocated.
   */
  imageMaxPixels: number;
  /**
   * OUTBOUND_ALLOW, default empty: hosts, IPs and CIDRs that image URLs and webhooks may reach
   * although they are private, loopback or link-local (everything else non-public is refused).
   */
  outboundAllow: AllowList;
  /** BODY_LIMIT_BYTES, default 16 MiB (base64 images in JSON). */
  bodyLimitBytes: number;
  /** RETENTION_SECONDS, default 7 days: finished generations and their images; IDEMPOTENCY_TTL_SECONDS 24 h. */
  retentionSeconds: number;
  idempotencyTtlSeconds: number;
  /** GENERATE_ATTEMPTS 3, GENERATE_BACKOFF_MS 5000: retries of transient generation faults. */
  generateAttempts: number;
  generateBackoffMs: number;
  /** LOCK_DURATION_MS 30000, STALLED_INTERVAL_MS 30000, MAX_STALLED_COUNT 2 (BullMQ). */
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  /** GENERATE_CONCURRENCY 1 (one generation per GPU at a time), WEBHOOK_CONCURRENCY 8. */
  generateConcurrency: number;
  webhookConcurrency: number;
  /** WORKER_QUEUES, default generate,classify,webhooks: the queues this worker serves. */
  workerQueues: QueueName[];
  /** WORKER_METRICS_PORT, default 9464 (0: any free port); WORKER_METRICS_HOST default HOST. */
  workerMetricsPort: number;
  workerMetricsHost: string;
  /** SHUTDOWN_TIMEOUT_MS, default 30000: how long SIGTERM waits for running jobs. */
  shutdownTimeoutMs: number;
  /**
   * API_KEYS, default none: `name:key,name2:key2`, hashed on load. With none here and none in
   * the key store the API is open (the local quick start).
   */
  apiKeys: ConfigApiKey[];
  /**
   * Defaults for every key (store keys may override them); 0 means unlimited, the default.
   * RATE_LIMIT_PER_MINUTE: requests; MAX_CONCURRENT_GENERATIONS: queued + processing;
   * CANDIDATES_PER_DAY: candidates sampled per UTC day.
   */
  limits: Limits;
}

export interface ConfigApiKey {
  name: string;
  /** SHA-256 of the key, hex; the key itself is not kept. */
  hash: string;
}

/** Per-key limits; undefined means unlimited. */
export interface Limits {
  requests_per_minute?: number;
  concurrent_generations?: number;
  candidates_per_day?: number;
}

const DEVICE = /^(cpu|cuda|cuda:[0-9]+)$/;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads variables, collecting every problem so one start-up names them all. */
class Reader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  int(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^-?[0-9]+$/.test(text) || value < min || value > max) {
      this.problems.push(`${name}=${JSON.stringify(text)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  optionalInt(name: string, min: number, max?: number): number | undefined {
    return this.raw(name) === undefined ? undefined : this.int(name, min, min, max);
  }

  bool(name: string, fallback: boolean): boolean {
    const text = this.raw(name)?.toLowerCase();
    if (text === undefined) return fallback;
    if (['1', 'true', 'yes'].includes(text)) return true;
    if (['0', 'false', 'no'].includes(text)) return false;
    this.problems.push(`${name}=${JSON.stringify(text)}: expected true or false`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    if (allowed.includes(text as T)) return text as T;
    this.problems.push(`${name}=${JSON.stringify(text)}: expected one of ${allowed.join(', ')}`);
    return fallback;
  }

  url(name: string, fallback: string, protocols: string[]): string {
    const text = this.string(name, fallback);
    try {
      const url = new URL(text);
      if (!protocols.includes(url.protocol)) throw new Error('protocol');
    } catch {
      this.problems.push(`${name}=${JSON.stringify(text)}: expected an absolute ${protocols.join(' or ')} URL`);
    }
    return text;
  }

  require(name: string): string {
    const text = this.raw(name);
    if (text === undefined) this.problems.push(`${name} is required`);
    return text ?? '';
  }
}

function readStorage(read: Reader, publicBaseUrl: string): StorageOptions {
  const kind = read.oneOf('STORAGE', ['fs', 's3'] as const, 'fs');
  if (kind === 'fs') {
    // A per-process secret suits one API process; several API replicas need a shared one.
    const signingSecret = read.string('FILE_URL_SECRET', randomBytes(32).toString('hex'));
    if (signingSecret.length < 16) read.problems.push('FILE_URL_SECRET: expected at least 16 characters');
    return { kind, dir: read.string('STORAGE_DIR', './data/images'), publicBaseUrl, signingSecret };
  }
  const accessKeyId = read.raw('S3_ACCESS_KEY_ID');
  const secretAccessKey = read.raw('S3_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    read.problems.push('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY: set both or neither');
  }
  const endpoint = read.raw('S3_ENDPOINT');
  const s3PublicBaseUrl = read.raw('S3_PUBLIC_BASE_URL');
  return {
    kind,
    endpoint: endpoint === undefined ? undefined : read.url('S3_ENDPOINT', endpoint, ['http:', 'https:']),
    region: read.string('S3_REGION', 'us-east-1'),
    bucket: read.require('S3_BUCKET'),
    forcePathStyle: read.bool('S3_FORCE_PATH_STYLE', false),
    accessKeyId,
    secretAccessKey,
    publicBaseUrl:
      s3PublicBaseUrl === undefined ? undefined : read.url('S3_PUBLIC_BASE_URL', s3PublicBaseUrl, ['http:', 'https:']),
    presignExpiresSeconds: read.int('S3_PRESIGN_EXPIRES_SECONDS', 3600, 1, 604800),
    requestTimeoutMs: read.int('S3_REQUEST_TIMEOUT_MS', 30_000, 1),
    connectTimeoutMs: read.int('S3_CONNECT_TIMEOUT_MS', 5_000, 1),
  };
}

function readWorkerQueues(read: Reader): QueueName[] {
  const text = read.string('WORKER_QUEUES', QUEUE_NAMES.join(','));
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !QUEUE_NAMES.includes(name as QueueName));
  if (unknown.length > 0 || names.length === 0) {
    read.problems.push(
      `WORKER_QUEUES=${JSON.stringify(text)}: expected a comma-separated subset of ${QUEUE_NAMES.join(',')}`,
    );
    return [...QUEUE_NAMES];
  }
  return [...new Set(names as QueueName[])];
}

function readWebhookSecret(read: Reader): string | undefined {
  const secret = read.raw('WEBHOOK_SECRET');
  if (secret === undefined) return undefined;
  try {
    parseWebhookSecret(secret);
  } catch (error) {
    read.problems.push(`WEBHOOK_SECRET: ${(error as Error).message}`);
  }
  return secret;
}

function readOutboundAllow(read: Reader): AllowList {
  try {
    return parseAllowList(read.raw('OUTBOUND_ALLOW'));
  } catch (error) {
    read.problems.push(`OUTBOUND_ALLOW: ${(error as Error).message}`);
    return EMPTY_ALLOW_LIST;
  }
}

const KEY_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MIN_KEY_LENGTH = 16;

function readApiKeys(read: Reader): ConfigApiKey[] {
  const text = read.raw('API_KEYS');
  if (text === undefined) return [];
  const keys: ConfigApiKey[] = [];
  for (const entry of text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(':');
    const name = colon < 0 ? '' : entry.slice(0, colon);
    const key = colon < 0 ? '' : entry.slice(colon + 1);
    if (!KEY_NAME.test(name) || key.length < MIN_KEY_LENGTH) {
      read.problems.push(
        `API_KEYS: expected name:key pairs (name of A-Z a-z 0-9 _ . -, key of at least ${MIN_KEY_LENGTH} characters)`,
      );
      return [];
    }
    if (keys.some((other) => other.name === name))
      read.problems.push(`API_KEYS: the name ${JSON.stringify(name)} is listed twice`);
    keys.push({ name, hash: createHash('sha256').update(key).digest('hex') });
  }
  return keys;
}

const MODEL_NAME = /^[A-Za-z0-9._:-]{1,128}$/;

function readModelAliases(read: Reader): Record<string, string> {
  const aliases: Record<string, string> = {};
  for (const entry of (read.raw('OPENAI_MODEL_ALIASES') ?? '').split(',').filter((part) => part.trim() !== '')) {
    const [alias, pack, ...rest] = entry.split('=').map((part) => part.trim());
    if (rest.length > 0 || !alias || !pack || !MODEL_NAME.test(alias) || !MODEL_NAME.test(pack)) {
      read.problems.push(`OPENAI_MODEL_ALIASES: ${JSON.stringify(entry)} is not alias=pack`);
      continue;
    }
    aliases[alias] = pack;
  }
  return aliases;
}

function readLimits(read: Reader): Limits {
  const limit = (name: string) => {
    const value = read.int(name, 0, 0);
    return value === 0 ? undefined : value;
  };
  return {
    requests_per_minute: limit('RATE_LIMIT_PER_MINUTE'),
    concurrent_generations: limit('MAX_CONCURRENT_GENERATIONS'),
    candidates_per_day: limit('CANDIDATES_PER_DAY'),
  };
}

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Validates the environment once; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Env): Readonly<Config> {
  const read = new Reader(env);
  const port = read.int('PORT', 3000, 0, 65535);
  const host = read.string('HOST', '0.0.0.0');
  const publicBaseUrl = read
    .url('PUBLIC_BASE_URL', `http://localhost:${port}`, ['http:', 'https:'])
    .replace(/\/+$/, '');
  const redisUrl = read.url('REDIS_URL', DEFAULT_REDIS_URL, ['redis:', 'rediss:']);
  const config: Config = {
    port,
    host,
    publicBaseUrl,
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    redisUrl,
    redisUrlIsDefault: read.raw('REDIS_URL') === undefined,
    queuePrefix: read.string('QUEUE_PREFIX', 'dalle'),
    modelsDir: read.string('MODELS_DIR', './packs'),
    defaultModel: read.raw('DEFAULT_MODEL'),
    defaultClipModel: read.raw('DEFAULT_CLIP_MODEL'),
    device: deviceName(read),
    cpuThreads: read.optionalInt('CPU_THREADS', 1, 1024),
    sampleBatch: read.optionalInt('SAMPLE_BATCH', 1, 4096),
    storage: readStorage(read, publicBaseUrl),
    imageUrlTtlSeconds: read.int('IMAGE_URL_TTL_SECONDS', 3600, 1, 604800),
    webhookSecret: readWebhookSecret(read),
    webhookTimeoutMs: read.int('WEBHOOK_TIMEOUT_MS', 10_000, 1),
    webhookAttempts: read.int('WEBHOOK_ATTEMPTS', 8, 1, 100),
    webhookBackoffMs: read.int('WEBHOOK_BACKOFF_MS', 1000, 1),
    webhookProgressIntervalMs: read.int('WEBHOOK_PROGRESS_INTERVAL_MS', 2000, 0),
    generateMaxQueued: read.int('GENERATE_MAX_QUEUED', 1000, 0),
    classifyMaxQueued: read.int('CLASSIFY_MAX_QUEUED', 1000, 0),
    queueFullRetryAfterSeconds: read.int('QUEUE_FULL_RETRY_AFTER_SECONDS', 5, 1),
    classifyTimeoutMs: read.int('CLASSIFY_TIMEOUT_MS', 30_000, 1),
    openaiWaitTimeoutMs: read.int('OPENAI_WAIT_TIMEOUT_MS', 300_000, 1),
    openaiModelAliases: readModelAliases(read),
    classifyBatchMax: read.int('CLASSIFY_BATCH_MAX', 32, 1, 1024),
    classifyBatchWaitMs: read.int('CLASSIFY_BATCH_WAIT_MS', 10, 0, 60_000),
    imageFetchTimeoutMs: read.int('IMAGE_FETCH_TIMEOUT_MS', 10_000, 1),
    imageMaxBytes: read.int('IMAGE_MAX_BYTES', 10 * 1024 * 1024, 1),
    imageFetchMaxRedirects: read.int('IMAGE_FETCH_MAX_REDIRECTS', 3, 0, 20),
    imageMaxPixels: read.int('IMAGE_MAX_PIXELS', 40_000_000, 1),
    outboundAllow: readOutboundAllow(read),
    bodyLimitBytes: read.int('BODY_LIMIT_BYTES', 16 * 1024 * 1024, 1024),
    retentionSeconds: read.int('RETENTION_SECONDS', 7 * 24 * 3600, 60),
    idempotencyTtlSeconds: read.int('IDEMPOTENCY_TTL_SECONDS', 24 * 3600, 1),
    generateAttempts: read.int('GENERATE_ATTEMPTS', 3, 1, 100),
    generateBackoffMs: read.int('GENERATE_BACKOFF_MS', 5000, 0),
    lockDurationMs: read.int('LOCK_DURATION_MS', 30_000, 1000),
    stalledIntervalMs: read.int('STALLED_INTERVAL_MS', 30_000, 1000),
    maxStalledCount: read.int('MAX_STALLED_COUNT', 2, 0, 100),
    generateConcurrency: read.int('GENERATE_CONCURRENCY', 1, 1, 64),
    webhookConcurrency: read.int('WEBHOOK_CONCURRENCY', 8, 1, 1024),
    workerQueues: readWorkerQueues(read),
    workerMetricsPort: read.int('WORKER_METRICS_PORT', 9464, 0, 65535),
    workerMetricsHost: read.string('WORKER_METRICS_HOST', host),
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', 30_000, 0),
    apiKeys: readApiKeys(read),
    limits: readLimits(read),
  };
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}

function deviceName(read: Reader): DeviceName {
  const text = read.string('DEVICE', 'cpu');
  if (!DEVICE.test(text)) {
    read.problems.push(`DEVICE=${JSON.stringify(text)}: expected cpu, cuda or cuda:N`);
    return 'cpu';
  }
  return text as DeviceName;
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
