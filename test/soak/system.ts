// The system under the soak: its own redis-server (AOF, on a free port), two API processes and
// two workers on it, local storage whose writes a control file can make fail, and a webhook
// receiver that records every delivery and can be taken down and brought back on its port.
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { loadConfig } from '../../src/config.js';
import { queueKeyPrefix } from '../../src/queue/queues.js';
import { createRedis } from '../../src/queue/redis.js';
import { startRedisTopology } from '../integration/redis-topologies.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { WEBHOOK_SECRET, freePort, loopbackEnv } from '../integration/api-harness.js';
import { type Service, privateRedis, spawnService, waitReadyz } from '../integration/faults-harness.js';

export const KEYS = {
  alice: 'soak-alice-0123456789abcdef',
  bob: 'soak-bobby-0123456789abcdef',
} as const;
export type KeyName = keyof typeof KEYS;

export interface Delivery {
  webhookId: string;
  /** The generation the receiver's URL named. */
  generation: string;
  body: { id?: string; event?: string; status?: string };
  at: number;
}

export class WebhookReceiver {
  readonly deliveries: Delivery[] = [];
  private server: Server | undefined;
  private constructor(readonly port: number) {}

  static async start(): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(await freePort());
    await receiver.up();
    return receiver;
  }

  url(generationTag: string): string {
    return `http://127.0.0.1:${this.port}/hook/${generationTag}`;
  }

  get isUp(): boolean {
    return this.server !== undefined;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk.toString()));
      request.on('end', () => {
        let body: Delivery['body'] = {};
        try {
          body = JSON.parse(text) as Delivery['body'];
        } catch {
          // A body that is not JSON is recorded as empty; the checker then finds its event missing.
        }
        this.deliveries.push({
          webhookId: String(request.headers['webhook-id'] ?? ''),
          generation: (request.url ?? '').split('/').pop() ?? '',
          body,
          at: Date.now(),
        });
        response.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export interface SoakSystem {
  apis: string[];
  /** One server of the soak's own (AOF), or a Sentinel set or Cluster of its own (no persistence). */
  topology: SoakTopology;
  receiver: WebhookReceiver;
  storageDir: string;
  redisUp: boolean;
  /** Kills worker `index` (SIGKILL) and starts a new one in its place. */
  killWorker(index: number): Promise<void>;
  restartWorker(index: number): void;
  /** One server: stops it (SIGTERM, AOF written). */
  stopRedis(): Promise<void>;
  startRedis(): Promise<void>;
  /** Sentinel or Cluster: promotes the replica of the generate queue's master. */
  failover(): Promise<void>;
  /** Sentinel or Cluster: kills the generate queue's master; it comes back as a replica. */
  killMaster(): Promise<void>;
  failStorage(on: boolean): Promise<void>;
  /** Whether the service's index lists the generation (whoever made it). */
  generationExists(id: string): Promise<boolean>;
  /** Generation jobs still waiting, delayed or running: 0 once the system has settled. */
  pendingJobs(): Promise<number>;
  /** Where a generation's completed webhook stands in Redis: its job, the outbox, the event log; for a report. */
  webhookTrace(id: string): Promise<string>;
  logs(): string;
  close(): Promise<void>;
}

export type SoakTopology = 'single' | 'sentinel' | 'cluster';

export async function startSystem(dir: string, topology: SoakTopology = 'single'): Promise<SoakSystem> {
  const redis = topology === 'single' ? await privateRedis(dir) : undefined;
  await redis?.start();
  const replicated = topology === 'single' ? undefined : await startRedisTopology(topology, dir);
  const redisEnv = redis ? { REDIS_URL: redis.url } : replicated?.env;
  const receiver = await WebhookReceiver.start();
  const storageDir = join(dir, 'images');
  const faultFile = join(dir, 'storage-fails');
  await mkdir(storageDir, { recursive: true });
  const apiPorts = [await freePort(), await freePort()];
  const { REDIS_URL: _sharedRedis, ...loopback } = loopbackEnv(apiPorts[0], storageDir, 'soak');
  const base = {
    ...loopback,
    ...redisEnv,
    WEBHOOK_SECRET,
    OUTBOUND_ALLOW: '127.0.0.1',
    API_KEYS: `alice:${KEYS.alice},bob:${KEYS.bob}`,
    AUTH_MODE: 'keys',
    LOG_LEVEL: 'warn',
    LOCK_DURATION_MS: '3000',
    STALLED_INTERVAL_MS: '1000',
    GENERATE_BACKOFF_MS: '200',
    GENERATE_ATTEMPTS: '5',
    WEBHOOK_BACKOFF_MS: '200',
    WEBHOOK_ATTEMPTS: '8',
    PROGRESS_EVENT_INTERVAL_MS: '300',
    CLASSIFY_TIMEOUT_MS: '60000',
    SHUTDOWN_TIMEOUT_MS: '2000',
    CPU_THREADS: '1',
    SOAK_STORAGE_FAULT_FILE: faultFile,
  };
  const apis = apiPorts.map((port) =>
    spawnService('src/api/main.ts', { ...base, PORT: String(port), PUBLIC_BASE_URL: `http://127.0.0.1:${port}` }),
  );
  const workers: Service[] = [];
  const startWorkerAt = (index: number) => {
    workers[index] = spawnService('test/soak/worker-entry.ts', base);
  };
  startWorkerAt(0);
  startWorkerAt(1);
  const urls = apiPorts.map((port) => `http://127.0.0.1:${port}`);
  const redisTopology = loadConfig(base).redis;
  const generateWaitKey = `${queueKeyPrefix(loopback.QUEUE_PREFIX, 'generate')}:generate:wait`;
  const replicatedOnly = () => {
    if (!replicated) throw new Error(`the soak's Redis is one server, not ${topology}`);
    return replicated;
  };
  const serverOnly = () => {
    if (!redis) throw new Error(`the soak's Redis is a ${topology}, not one server`);
    return redis;
  };
  for (const url of urls) await waitReadyz(url, 200, 120_000);
  const system: SoakSystem = {
    apis: urls,
    topology,
    receiver,
    storageDir,
    redisUp: true,
    async killWorker(index) {
      await workers[index].stop('SIGKILL');
    },
    restartWorker: startWorkerAt,
    async stopRedis() {
      system.redisUp = false;
      await serverOnly().stop();
    },
    async startRedis() {
      await serverOnly().start();
      system.redisUp = true;
    },
    failover: () => replicatedOnly().failover(generateWaitKey),
    killMaster: () => replicatedOnly().killMaster(generateWaitKey),
    async failStorage(on) {
      if (on) await writeFile(faultFile, 'fail');
      else if (existsSync(faultFile)) await rm(faultFile);
    },
    async generationExists(id) {
      const client = createRedis(redisTopology, 'commands');
      try {
        return (await client.zscore(serviceKeys(loopback.QUEUE_PREFIX).generationIndex, id)) !== null;
      } finally {
        client.disconnect();
      }
    },
    async pendingJobs() {
      const connection = createRedis(redisTopology, 'commands');
      const queue = new Queue('generate', { connection, prefix: queueKeyPrefix(loopback.QUEUE_PREFIX, 'generate') });
      try {
        const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
        return Object.values(counts).reduce((sum, count) => sum + count, 0);
      } finally {
        await queue.close();
        connection.disconnect();
      }
    },
    async webhookTrace(id) {
      const connection = createRedis(redisTopology, 'commands');
      const queue = new Queue('webhooks', { connection, prefix: queueKeyPrefix(loopback.QUEUE_PREFIX, 'webhooks') });
      const keys = serviceKeys(loopback.QUEUE_PREFIX);
      const eventId = `${id}-completed`;
      try {
        const job = await queue.getJob(eventId);
        const jobState = job
          ? `job ${await job.getState()}, ${job.attemptsMade} attempts made, ${job.attemptsStarted} started, failed: ${job.failedReason ?? 'no'}`
          : 'no job';
        const owed = await connection.zrange(keys.webhookOutbox, '0', '-1');
        const listed = owed.some((member) => member.includes(eventId)) ? 'listed in the outbox' : 'not in the outbox';
        const logged = (await connection.hexists(keys.eventIds(id), eventId)) === 1 ? 'in the log' : 'not in the log';
        const record = await connection.hmget(keys.generation(id), 'status', 'webhook_failure');
        return `${jobState}; ${listed}; event ${logged}; record ${JSON.stringify(record)}`;
      } finally {
        await queue.close();
        connection.disconnect();
      }
    },
    logs: () => [...apis, ...workers].map((service) => service.output().slice(-3000)).join('\n---\n'),
    async close() {
      for (const service of [...apis, ...workers]) await service.stop('SIGKILL');
      await receiver.down();
      await redis?.stop();
      await replicated?.stop();
    },
  };
  return system;
}
