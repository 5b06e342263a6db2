// Starts the real thing for API tests: the Fastify app listening on loopback, real Redis
// under a random queue prefix, a real worker (in-process, on a shared engine) when asked,
// a temporary image folder; and removes all of it afterwards.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { type IncomingHttpHeaders, createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Static, TSchema } from '@fastify/type-provider-typebox';
import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { type Logger, pino } from 'pino';
import { buildApp } from '../../src/api/app.js';
import { type Services, createServices } from '../../src/api/services.js';
import { type Config, loadConfig } from '../../src/config.js';
import { Generation, NAMED_SCHEMAS } from '../../src/contracts/schemas.js';
import { createEngine } from '../../src/models/index.js';
import { createRedis, keyHolders } from '../../src/queue/redis.js';
import type { Engine } from '../../src/models/types.js';
import { type WorkerOptions, type WorkerRuntime, startWorker } from '../../src/worker/worker.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const WEBHOOK_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
// TEST_LOG_LEVEL=info shows the in-process API's and workers' logs when a test needs reading.
const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

let sharedEngine: Promise<Engine> | undefined;
/** One engine per test file: loading the packs is the slow part. Closed by closeSharedEngine. */
export function engine(): Promise<Engine> {
  sharedEngine ??= createEngine({ modelsDir: 'packs', defaultPack: 'demo-shapes', cpuThreads: 1, logger: silent });
  return sharedEngine;
}

export async function closeSharedEngine(): Promise<void> {
  if (sharedEngine) await (await sharedEngine).close();
  sharedEngine = undefined;
}

export interface Harness {
  config: Config;
  env: Record<string, string>;
  app: FastifyInstance;
  services: Services;
  baseUrl: string;
  worker: WorkerRuntime | undefined;
  startWorker(overrides?: Record<string, string>, options?: Omit<WorkerOptions, 'engine'>): Promise<WorkerRuntime>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  /** Run an in-process worker on the shared engine. Default true. */
  worker?: boolean;
  /** The worker builds its own engine from the config (its pixel limit, threads) instead. */
  ownEngine?: boolean;
  /** Where the API and its workers log (a test that reads log lines). Default: nowhere, or TEST_LOG_LEVEL. */
  logger?: Logger;
}

/**
 * The environment an API and its workers need on loopback: Redis under a fresh prefix
 * (`<stem>-<random>`), images in `storageDir`, the committed packs, quiet logs.
 */
export function loopbackEnv(port: number, storageDir: string, prefixStem = 'test'): Record<string, string> {
  return {
    REDIS_URL,
    QUEUE_PREFIX: `${prefixStem}-${randomUUID().slice(0, 8)}`,
    STORAGE_DIR: storageDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    FILE_URL_SECRET: 'test-file-url-secret-0123456789',
    MODELS_DIR: 'packs',
    DEFAULT_MODEL: 'demo-shapes',
    WORKER_METRICS_PORT: '0',
    WORKER_METRICS_HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    // Most tests act as one client; tests of keys set AUTH_MODE=keys (or API_KEYS).
    AUTH_MODE: 'open',
  };
}

export async function startHarness({
  env = {},
  worker = true,
  ownEngine = false,
  logger = silent,
}: HarnessOptions = {}): Promise<Harness> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'dalle-api-'));
  const fullEnv: Record<string, string> = {
    ...loopbackEnv(port, dir),
    WEBHOOK_SECRET,
    // The tests' image servers and webhook receivers listen on loopback.
    OUTBOUND_ALLOW: '127.0.0.1',
    WEBHOOK_BACKOFF_MS: '100',
    GENERATE_BACKOFF_MS: '100',
    SHUTDOWN_TIMEOUT_MS: '2000',
    ...(env.API_KEYS && { AUTH_MODE: 'keys' }),
    ...env,
  };
  // A Sentinel or Cluster named by the test stands instead of the one server.
  if (fullEnv.REDIS_SENTINELS || fullEnv.REDIS_CLUSTER_NODES) delete fullEnv.REDIS_URL;
  const config = loadConfig(fullEnv);
  const services = createServices(config);
  const app = await buildApp({ services, logger });
  await app.listen({ port, host: '127.0.0.1' });
  const workers: WorkerRuntime[] = [];
  const harness: Harness = {
    config,
    env: fullEnv,
    app,
    services,
    baseUrl: `http://127.0.0.1:${port}`,
    worker: undefined,
    async startWorker(overrides = {}, options = {}) {
      const workerConfig = loadConfig({ ...fullEnv, ...overrides });
      const runtime = await startWorker(
        workerConfig,
        logger,
        ownEngine ? options : { ...options, engine: await engine() },
      );
      workers.push(runtime);
      return runtime;
    },
    async close() {
      // A close that hangs says where and what it holds open, not only that the file timed out.
      let step = 'the workers';
      const watchdog = setInterval(() => {
        console.error(`# harness still closing ${step}: ${process.getActiveResourcesInfo().join(', ')}`);
      }, 20_000).unref();
      for (const runtime of workers) await runtime.stop();
      step = 'the API';
      await app.close();
      step = 'the services';
      await services.close();
      step = 'removing the queues';
      await removeQueues(config);
      clearInterval(watchdog);
      await rm(dir, { recursive: true, force: true });
      // A test file that hangs after its tests passed holds something open: say what.
      setTimeout(() => {
        console.error(`# still running 60 s after a harness closed: ${process.getActiveResourcesInfo().join(', ')}`);
      }, 60_000).unref();
    },
  };
  if (worker) {
    // A worker that fails to start must not leave the API listening: the test process would never exit.
    harness.worker = await harness.startWorker().catch(async (error: unknown) => {
      await harness.close();
      throw error;
    });
  }
  return harness;
}

export interface WebhookDelivery {
  headers: IncomingHttpHeaders;
  body: string;
}

export interface WebhookReceiver {
  url: string;
  /** Every delivery answered 204, in arrival order. */
  deliveries: WebhookDelivery[];
  /** Answers the next `count` deliveries with 503 (they are not recorded). */
  failNext(count: number): void;
  /** Deliveries still to be failed. */
  readonly failuresLeft: number;
  close(): Promise<void>;
}

/** A loopback HTTP receiver for webhooks (OUTBOUND_ALLOW lets the harness reach 127.0.0.1). */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  let failuresLeft = 0;
  const server = createHttpServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        response.writeHead(503).end();
        return;
      }
      deliveries.push({ headers: request.headers, body });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    deliveries,
    failNext(count) {
      failuresLeft = count;
    },
    get failuresLeft() {
      return failuresLeft;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Deletes every key under the test's prefix. */
export async function removeQueues(config: Config): Promise<void> {
  const redis = createRedis(config.redis, 'commands');
  try {
    for (const holder of await keyHolders(redis)) {
      let cursor = '0';
      do {
        const [next, keys] = await holder.scan(cursor, 'MATCH', `${config.queuePrefix}:*`, 'COUNT', 500);
        cursor = next;
        // One DEL per key: on a Cluster, keys of several slots cannot go in one command.
        await Promise.all(keys.map((key) => holder.del(key)));
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}

// The named schemas refer to each other by `$id`, as in the OpenAPI document.
const contract = new Ajv({ strict: false, allErrors: true, validateFormats: false });
for (const named of NAMED_SCHEMAS) contract.addSchema(named);
const validators = new WeakMap<TSchema, ValidateFunction>();

function validatorOf(schema: TSchema): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    const id = (schema as { $id?: string }).$id;
    validate = (id ? contract.getSchema(id) : undefined) ?? contract.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

/**
 * The body of `response` as its contract type (src/contracts/schemas.ts), after checking that
 * it matches the schema: a response that drifts from the contract fails the test here.
 */
export async function json<S extends TSchema>(response: Response, schema: S): Promise<Static<S>>;
/** A body with no contract schema to check (a test's own server, a proxy), loosely typed. */
export async function json(response: Response): Promise<any>;
export async function json(response: Response, schema?: TSchema): Promise<unknown> {
  const body: unknown = await response.json();
  // Passed straight to Array#map, json gets an index here: only a schema object is one.
  if (typeof schema !== 'object') return body;
  const validate = validatorOf(schema);
  if (!validate(body)) {
    const problems = contract.errorsText(validate.errors);
    throw new Error(`${response.url} answered ${JSON.stringify(body).slice(0, 300)}: not the contract (${problems})`);
  }
  return body;
}

export function post(
  baseUrl: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** Polls GET /generations/:id until `done` holds for it, or fails after `timeoutMs`. */
export async function waitFor(
  baseUrl: string,
  id: string,
  done: (generation: Generation) => boolean,
  timeoutMs = 60_000,
): Promise<Generation> {
  const deadline = Date.now() + timeoutMs;
  let last: Generation | undefined;
  while (Date.now() < deadline) {
    last = await json(await fetch(`${baseUrl}/generations/${id}`), Generation);
    if (done(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`generation ${id} did not reach the expected state; last: ${JSON.stringify(last).slice(0, 500)}`);
}

export const terminal = (generation: { status: string }) =>
  ['succeeded', 'failed', 'canceled'].includes(generation.status);
