// The service's configuration: read once from the environment, validated, frozen. This is
// the only module that reads process.env; everything else receives a Config.
import { createHash } from 'node:crypto';
import { QUEUE_NAMES, type QueueName } from './contracts/queues.js';
import { MAX_CANDIDATES } from './contracts/schemas.js';
import type { DeviceName } from './models/types.js';
import { type AllowList, EMPTY_ALLOW_LIST, parseAllowList } from './net/outbound.js';
import type { StorageOptions } from './storage/index.js';
import { parseWebhookSecret } from './webhooks/secret.js';
import { setting } from './config/settings.js';

export interface RedisNode {
  host: string;
  port: number;
}

/**
 * Where Redis is: one server (REDIS_URL), a master found through Sentinel (REDIS_SENTINELS,
 * REDIS_SENTINEL_MASTER) or a Cluster (REDIS_CLUSTER_NODES). Every connection of the service,
 * BullMQ's included, is made from this.
 */
export type RedisTopology =
  | { kind: 'single'; url: string }
  | { kind: 'sentinel'; sentinels: RedisNode[]; master: string; password?: string; sentinelPassword?: string }
  | { kind: 'cluster'; nodes: RedisNode[]; password?: string };

/**
 * The configuration, read from the variables named on each field. Their defaults and what they
 * do are in one table, src/config/settings.ts (also .env.example and the README).
 */
export interface Config {
  /** PORT, HOST. */
  port: number;
  host: string;
  /** PUBLIC_BASE_URL: absolute base of every URL the API hands out (http://localhost:PORT when unset). */
  publicBaseUrl: string;
  /** LOG_LEVEL, LOG_FORMAT (`auto`: pretty on a terminal, JSON anywhere else). */
  logLevel: string;
  logFormat: LogFormat;
  /**
   * REDIS_URL (unset: `npm start` may start Redis itself), or REDIS_SENTINELS with
   * REDIS_SENTINEL_MASTER, or REDIS_CLUSTER_NODES; REDIS_PASSWORD, REDIS_SENTINEL_PASSWORD.
   */
  redis: RedisTopology;
  redisUrlIsDefault: boolean;
  /** REDIS_WAIT_REPLICAS: replicas that must hold an accepted generation before the 202. */
  redisWaitReplicas: number;
  /** REDIS_STARTUP_WAIT_MS: how long a starting process waits for Redis before it gives up. */
  redisStartupWaitMs: number;
  queuePrefix: string;
  /** MODELS_DIR, DEFAULT_MODEL, DEFAULT_CLIP_MODEL, DEVICE. */
  modelsDir: string;
  defaultModel: string | undefined;
  defaultClipModel: string | undefined;
  device: DeviceName;
  /** CHECKSUM_CACHE_DIR: undefined for the engine's default folder, null (`off`) to hash at every start. */
  checksumCacheDir: string | null | undefined;
  /** CPU_THREADS: unset leaves the choice to onnxruntime. */
  cpuThreads: number | undefined;
  /** CPU_SPIN_WAIT: onnxruntime's CPU threads spin between runs instead of sleeping. */
  cpuSpinWait: boolean;
  /**
   * GENERATE_BATCH_CANDIDATES (was SAMPLE_BATCH): most candidate rows per engine call, shared
   * by the active generations (src/models/SCHEDULER.md); 32 on cpu, 512 on cuda when unset.
   */
  generateBatchCandidates: number;
  /** GENERATE_MEMORY_BUDGET_MB in bytes; unset: the worker picks one per device (worker.ts). */
  generateMemoryBudgetBytes: number | undefined;
  /** DEFAULT_CANDIDATES: candidates when a request names none; 32 on cpu, 512 on cuda when unset. */
  defaultCandidates: number;
  /** STORAGE, STORAGE_DIR, FILE_URL_SECRET, S3_*. */
  storage: StorageOptions;
  /** IMAGE_URL_TTL_SECONDS. */
  imageUrlTtlSeconds: number;
  /** WEBHOOK_SECRET: signs webhooks; without it requests naming a webhook get 400. */
  webhookSecret: string | undefined;
  /** WEBHOOK_TIMEOUT_MS, WEBHOOK_ATTEMPTS, WEBHOOK_BACKOFF_MS. */
  webhookTimeoutMs: number;
  webhookAttempts: number;
  webhookBackoffMs: number;
  /**
   * PROGRESS_EVENT_INTERVAL_MS: least time between two `progress` events of a generation within
   * one stage (a stage change is always an event); webhooks and the event stream.
   */
  progressEventIntervalMs: number;
  /** SSE_HEARTBEAT_MS: a comment line on an idle event stream, so proxies keep it open. */
  sseHeartbeatMs: number;
  /** GENERATE_MAX_QUEUED, CLASSIFY_MAX_QUEUED: past this many waiting jobs → 503. */
  generateMaxQueued: number;
  classifyMaxQueued: number;
  /** QUEUE_FULL_RETRY_AFTER_SECONDS: the Retry-After of a 503 queue_full. */
  queueFullRetryAfterSeconds: number;
  /** CLASSIFY_TIMEOUT_MS: how long POST /clip/classify waits for its job. */
  classifyTimeoutMs: number;
  /** OPENAI_WAIT_TIMEOUT_MS: how long POST /v1/images/generations waits for its generation. */
  openaiWaitTimeoutMs: number;
  /** OPENAI_MODEL_ALIASES: `openai-name=pack,…`, under /v1 only. */
  openaiModelAliases: Record<string, string>;
  /** CLASSIFY_BATCH_MAX, CLASSIFY_BATCH_WAIT_MS: the worker's micro-batching. */
  classifyBatchMax: number;
  classifyBatchWaitMs: number;
  /**
   * CLASSIFY_JOB_MAX_REQUESTS, CLASSIFY_JOB_WAIT_MS: the API's batching of the CLIP requests
   * that arrive together into one job (src/service/clip-batches.ts).
   */
  classifyJobMaxRequests: number;
  classifyJobWaitMs: number;
  /** IMAGE_FETCH_TIMEOUT_MS, IMAGE_MAX_BYTES, IMAGE_FETCH_MAX_REDIRECTS: image URLs and uploads. */
  imageFetchTimeoutMs: number;
  imageMaxBytes: number;
  /** CLIP_REQUEST_MAX_IMAGE_BYTES: the images of one classify or embed request together; past it 413 images_too_large. */
  clipRequestMaxImageBytes: number;
  imageFetchMaxRedirects: number;
  /**
   * IMAGE_MAX_PIXELS: the largest image the worker decodes. A few KiB of PNG can claim
   * gigapixels; past this the image is refused before its pixels are allocated.
   */
  imageMaxPixels: number;
  /** OUTBOUND_ALLOW: non-public hosts, IPs and CIDRs that image URLs and webhooks may reach. */
  outboundAllow: AllowList;
  /** CORS_ORIGINS: the origins whose pages may call the API (`*`: any); empty, CORS is off. */
  corsOrigins: readonly string[];
  /** BODY_LIMIT_BYTES. */
  bodyLimitBytes: number;
  /** RETENTION_SECONDS: finished generations and their images; IDEMPOTENCY_TTL_SECONDS. */
  retentionSeconds: number;
  idempotencyTtlSeconds: number;
  /** GENERATE_ATTEMPTS, GENERATE_BACKOFF_MS: retries of transient generation faults. */
  generateAttempts: number;
  generateBackoffMs: number;
  /** LOCK_DURATION_MS, STALLED_INTERVAL_MS, MAX_STALLED_COUNT (BullMQ). */
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  /**
   * GENERATE_MAX_ACTIVE (was GENERATE_CONCURRENCY): generations a worker holds at once, their
   * chunks batched together; 16 on cpu, 64 on cuda when unset. WEBHOOK_CONCURRENCY.
   */
  generateMaxActive: number;
  webhookConcurrency: number;
  /** WORKER_QUEUES: the queues this worker serves. */
  workerQueues: QueueName[];
  /** WORKER_METRICS_PORT (0: any free port), WORKER_METRICS_HOST (HOST when unset). */
  workerMetricsPort: number;
  workerMetricsHost: string;
  /** SHUTDOWN_TIMEOUT_MS: how long SIGTERM waits for running jobs. */
  shutdownTimeoutMs: number;
  /** Renamed variables still in use: messages the worker logs as warnings at start. */
  warnings: string[];
  /**
   * API_KEYS: `name:key,name2:key2`, hashed on load; more keys live in the key store
   * (`npm run keys`).
   */
  apiKeys: ConfigApiKey[];
  /**
   * AUTH_MODE: `keys`, every request needs a key from API_KEYS or the key store; `open` (what
   * `npm start` sets when API_KEYS is unset) serves everyone as `anonymous`. Only this setting
   * opens the API: no state of Redis does.
   */
  authMode: AuthMode;
  /**
   * Defaults for every key (store keys may override them); 0 means unlimited.
   * RATE_LIMIT_PER_MINUTE: requests; MAX_CONCURRENT_GENERATIONS: queued + processing;
   * CANDIDATES_PER_DAY: candidates sampled per UTC day.
   */
  limits: Limits;
}

export type AuthMode = 'keys' | 'open';

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
const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

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
  readonly warnings: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    setting(name);
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  /** The variable's text, or its default from the settings table when unset. */
  private text(name: string): string | undefined {
    return this.raw(name) ?? setting(name).default;
  }

  /** A setting with a default, or `computed` (a default derived from other settings) when unset. */
  string(name: string, computed?: string): string {
    const text = this.text(name) ?? computed;
    if (text === undefined) throw new Error(`${name} has no default`);
    return text;
  }

  int(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const text = this.string(name);
    const value = Number(text);
    if (!/^-?[0-9]+$/.test(text) || value < min || value > max) {
      this.problems.push(`${name}=${JSON.stringify(text)}: expected an integer from ${min} to ${max}`);
      return Number(setting(name).default);
    }
    return value;
  }

  optionalInt(name: string, min: number, max?: number): number | undefined {
    return this.text(name) === undefined ? undefined : this.int(name, min, max);
  }

  bool(name: string): boolean {
    const text = this.string(name).toLowerCase();
    if (['1', 'true', 'yes'].includes(text)) return true;
    if (['0', 'false', 'no'].includes(text)) return false;
    this.problems.push(`${name}=${JSON.stringify(text)}: expected true or false`);
    return setting(name).default === 'true';
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const text = this.string(name);
    if (allowed.includes(text as T)) return text as T;
    this.problems.push(`${name}=${JSON.stringify(text)}: expected one of ${allowed.join(', ')}`);
    return setting(name).default as T;
  }

  url(name: string, protocols: string[], computed?: string): string {
    const text = this.string(name, computed);
    try {
      const url = new URL(text);
      if (!protocols.includes(url.protocol)) throw new Error('protocol');
    } catch {
      this.problems.push(`${name}=${JSON.stringify(text)}: expected an absolute ${protocols.join(' or ')} URL`);
    }
    return text;
  }

  /** A renamed variable: the new name, else the old one with a warning, else `computed`. */
  renamedInt(name: string, old: string, computed: number, min: number, max: number): number {
    const source = this.text(name) === undefined && this.text(old) !== undefined ? old : name;
    if (source === old) this.warnings.push(`${old} is deprecated: set ${name} instead`);
    const text = this.text(source);
    if (text === undefined) return computed;
    const value = Number(text);
    if (!/^-?[0-9]+$/.test(text) || value < min || value > max) {
      this.problems.push(`${source}=${JSON.stringify(text)}: expected an integer from ${min} to ${max}`);
      return computed;
    }
    return value;
  }

  require(name: string): string {
    const text = this.raw(name);
    if (text === undefined) this.problems.push(`${name} is required`);
    return text ?? '';
  }
}

/** `host:port,host:port`, each port given. */
function readNodes(read: Reader, name: string): RedisNode[] {
  const text = read.raw(name) ?? '';
  const nodes: RedisNode[] = [];
  for (const item of text.split(',').map((part) => part.trim())) {
    const match = /^(\[[0-9a-fA-F:]+\]|[^\s:]+):([0-9]{1,5})$/.exec(item);
    const port = Number(match?.[2]);
    if (!match?.[1] || port < 1 || port > 65535) {
      read.problems.push(`${name}: ${JSON.stringify(item)} is not host:port`);
      continue;
    }
    nodes.push({ host: match[1].replace(/^\[|\]$/g, ''), port });
  }
  return nodes;
}

function readRedisTopology(read: Reader): RedisTopology {
  const given = ['REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].filter((name) => read.raw(name) !== undefined);
  if (given.length > 1) read.problems.push('REDIS_SENTINELS and REDIS_CLUSTER_NODES: set one of them, not both');
  if (given.length > 0 && read.raw('REDIS_URL') !== undefined) {
    read.problems.push(`REDIS_URL and ${given[0]}: set one of them, not both`);
  }
  const password = read.raw('REDIS_PASSWORD');
  if (read.raw('REDIS_SENTINELS') !== undefined) {
    const sentinelPassword = read.raw('REDIS_SENTINEL_PASSWORD');
    return {
      kind: 'sentinel',
      sentinels: readNodes(read, 'REDIS_SENTINELS'),
      master: read.require('REDIS_SENTINEL_MASTER'),
      ...(password !== undefined && { password }),
      ...(sentinelPassword !== undefined && { sentinelPassword }),
    };
  }
  if (read.raw('REDIS_CLUSTER_NODES') !== undefined) {
    return {
      kind: 'cluster',
      nodes: readNodes(read, 'REDIS_CLUSTER_NODES'),
      ...(password !== undefined && { password }),
    };
  }
  for (const name of ['REDIS_SENTINEL_MASTER', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD']) {
    if (read.raw(name) !== undefined)
      read.problems.push(`${name} is set but neither REDIS_SENTINELS nor REDIS_CLUSTER_NODES`);
  }
  return { kind: 'single', url: read.url('REDIS_URL', ['redis:', 'rediss:']) };
}

/**
 * The prefix of every key. Braces would make a Redis Cluster hash tag of it and put every queue
 * in one slot, or split a queue's keys over two: the service tags each queue under it itself.
 */
function readQueuePrefix(read: Reader): string {
  const prefix = read.string('QUEUE_PREFIX');
  if (/[{}]/.test(prefix)) {
    read.problems.push(
      `QUEUE_PREFIX=${JSON.stringify(prefix)}: no braces; each queue's keys get their own Cluster hash tag under the prefix`,
    );
  }
  return prefix;
}

function readStorage(read: Reader, publicBaseUrl: string): StorageOptions {
  const kind = read.oneOf('STORAGE', ['fs', 's3'] as const);
  if (kind === 'fs') {
    // Unset: every API and worker process shares one made on first start and kept in Redis.
    const signingSecret = read.raw('FILE_URL_SECRET');
    if (signingSecret !== undefined && signingSecret.length < 16)
      read.problems.push('FILE_URL_SECRET: expected at least 16 characters');
    return { kind, dir: read.string('STORAGE_DIR'), publicBaseUrl, signingSecret };
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
    endpoint: endpoint === undefined ? undefined : read.url('S3_ENDPOINT', ['http:', 'https:']),
    region: read.string('S3_REGION'),
    bucket: read.require('S3_BUCKET'),
    forcePathStyle: read.bool('S3_FORCE_PATH_STYLE'),
    accessKeyId,
    secretAccessKey,
    publicBaseUrl: s3PublicBaseUrl === undefined ? undefined : read.url('S3_PUBLIC_BASE_URL', ['http:', 'https:']),
    presignExpiresSeconds: read.int('S3_PRESIGN_EXPIRES_SECONDS', 1, 604800),
    requestTimeoutMs: read.int('S3_REQUEST_TIMEOUT_MS', 1),
    connectTimeoutMs: read.int('S3_CONNECT_TIMEOUT_MS', 1),
  };
}

function readWorkerQueues(read: Reader): QueueName[] {
  const text = read.string('WORKER_QUEUES');
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

function readCorsOrigins(read: Reader): string[] {
  const origins = (read.raw('CORS_ORIGINS') ?? '')
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  for (const origin of origins) {
    if (origin === '*') continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    // An origin is a scheme, host and port: what a browser sends in `Origin`, nothing more.
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin)
      read.problems.push(`CORS_ORIGINS: ${JSON.stringify(origin)} is not an origin like https://app.example.com`);
  }
  if (origins.includes('*') && origins.length > 1) read.problems.push('CORS_ORIGINS: * stands alone');
  return origins;
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
    const value = read.int(name, 0);
    return value === 0 ? undefined : value;
  };
  return {
    requests_per_minute: limit('RATE_LIMIT_PER_MINUTE'),
    concurrent_generations: limit('MAX_CONCURRENT_GENERATIONS'),
    candidates_per_day: limit('CANDIDATES_PER_DAY'),
  };
}

/** Validates the environment once; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Env): Readonly<Config> {
  const read = new Reader(env);
  const port = read.int('PORT', 0, 65535);
  const host = read.string('HOST');
  const publicBaseUrl = read
    .url('PUBLIC_BASE_URL', ['http:', 'https:'], `http://localhost:${port}`)
    .replace(/\/+$/, '');
  const redis = readRedisTopology(read);
  const device = deviceName(read);
  const onGpu = device !== 'cpu';
  const config: Config = {
    port,
    host,
    publicBaseUrl,
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS),
    logFormat: read.oneOf('LOG_FORMAT', LOG_FORMATS),
    redis,
    redisUrlIsDefault: redis.kind === 'single' && read.raw('REDIS_URL') === undefined,
    redisWaitReplicas: read.optionalInt('REDIS_WAIT_REPLICAS', 0, 16) ?? (redis.kind === 'single' ? 0 : 1),
    redisStartupWaitMs: read.int('REDIS_STARTUP_WAIT_MS', 0),
    queuePrefix: readQueuePrefix(read),
    modelsDir: read.string('MODELS_DIR'),
    defaultModel: read.raw('DEFAULT_MODEL'),
    defaultClipModel: read.raw('DEFAULT_CLIP_MODEL'),
    device,
    checksumCacheDir: read.raw('CHECKSUM_CACHE_DIR') === 'off' ? null : read.raw('CHECKSUM_CACHE_DIR'),
    cpuThreads: read.optionalInt('CPU_THREADS', 1, 1024),
    cpuSpinWait: read.bool('CPU_SPIN_WAIT'),
    generateBatchCandidates: read.renamedInt('GENERATE_BATCH_CANDIDATES', 'SAMPLE_BATCH', onGpu ? 512 : 32, 1, 4096),
    generateMemoryBudgetBytes: mebibytes(read.optionalInt('GENERATE_MEMORY_BUDGET_MB', 1)),
    // A CPU samples 512 candidates in about a minute: its default answers in seconds.
    defaultCandidates: read.optionalInt('DEFAULT_CANDIDATES', 1, MAX_CANDIDATES) ?? (onGpu ? 512 : 32),
    storage: readStorage(read, publicBaseUrl),
    imageUrlTtlSeconds: read.int('IMAGE_URL_TTL_SECONDS', 1, 604800),
    webhookSecret: readWebhookSecret(read),
    webhookTimeoutMs: read.int('WEBHOOK_TIMEOUT_MS', 1),
    webhookAttempts: read.int('WEBHOOK_ATTEMPTS', 1, 100),
    webhookBackoffMs: read.int('WEBHOOK_BACKOFF_MS', 1),
    progressEventIntervalMs: read.int('PROGRESS_EVENT_INTERVAL_MS', 0),
    sseHeartbeatMs: read.int('SSE_HEARTBEAT_MS', 10),
    generateMaxQueued: read.int('GENERATE_MAX_QUEUED', 0),
    classifyMaxQueued: read.int('CLASSIFY_MAX_QUEUED', 0),
    queueFullRetryAfterSeconds: read.int('QUEUE_FULL_RETRY_AFTER_SECONDS', 1),
    classifyTimeoutMs: read.int('CLASSIFY_TIMEOUT_MS', 1),
    openaiWaitTimeoutMs: read.int('OPENAI_WAIT_TIMEOUT_MS', 1),
    openaiModelAliases: readModelAliases(read),
    classifyBatchMax: read.int('CLASSIFY_BATCH_MAX', 1, 1024),
    classifyBatchWaitMs: read.int('CLASSIFY_BATCH_WAIT_MS', 0, 60_000),
    classifyJobMaxRequests: read.int('CLASSIFY_JOB_MAX_REQUESTS', 1, 1024),
    classifyJobWaitMs: read.int('CLASSIFY_JOB_WAIT_MS', 0, 60_000),
    imageFetchTimeoutMs: read.int('IMAGE_FETCH_TIMEOUT_MS', 1),
    imageMaxBytes: read.int('IMAGE_MAX_BYTES', 1),
    clipRequestMaxImageBytes: read.int('CLIP_REQUEST_MAX_IMAGE_BYTES', 1),
    imageFetchMaxRedirects: read.int('IMAGE_FETCH_MAX_REDIRECTS', 0, 20),
    imageMaxPixels: read.int('IMAGE_MAX_PIXELS', 1),
    outboundAllow: readOutboundAllow(read),
    corsOrigins: readCorsOrigins(read),
    bodyLimitBytes: read.int('BODY_LIMIT_BYTES', 1024),
    retentionSeconds: read.int('RETENTION_SECONDS', 60),
    idempotencyTtlSeconds: read.int('IDEMPOTENCY_TTL_SECONDS', 1),
    generateAttempts: read.int('GENERATE_ATTEMPTS', 1, 100),
    generateBackoffMs: read.int('GENERATE_BACKOFF_MS', 0),
    lockDurationMs: read.int('LOCK_DURATION_MS', 1000),
    stalledIntervalMs: read.int('STALLED_INTERVAL_MS', 1000),
    maxStalledCount: read.int('MAX_STALLED_COUNT', 0, 100),
    generateMaxActive: read.renamedInt('GENERATE_MAX_ACTIVE', 'GENERATE_CONCURRENCY', onGpu ? 64 : 16, 1, 256),
    webhookConcurrency: read.int('WEBHOOK_CONCURRENCY', 1, 1024),
    workerQueues: readWorkerQueues(read),
    workerMetricsPort: read.int('WORKER_METRICS_PORT', 0, 65535),
    workerMetricsHost: read.string('WORKER_METRICS_HOST', host),
    shutdownTimeoutMs: read.int('SHUTDOWN_TIMEOUT_MS', 0),
    apiKeys: readApiKeys(read),
    authMode: read.oneOf('AUTH_MODE', ['keys', 'open'] as const),
    limits: readLimits(read),
    warnings: read.warnings,
  };
  if (config.authMode === 'open' && config.apiKeys.length > 0)
    read.problems.push('AUTH_MODE=open serves everyone without a key: unset API_KEYS or set AUTH_MODE=keys');
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}

function mebibytes(value: number | undefined): number | undefined {
  return value === undefined ? undefined : value * 1024 * 1024;
}

function deviceName(read: Reader): DeviceName {
  const text = read.string('DEVICE');
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
