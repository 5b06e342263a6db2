// Redis Cluster (3 masters, 3 replicas) and Sentinel (1 master, 1 replica, 3 sentinels) on
// loopback, from Debian's redis-server and redis-sentinel, in a folder of the caller's: the
// topologies the service claims to run on, started for real by the tests and the soak, with a
// failover each can be put through mid-run.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { until } from './faults-harness.js';

const run = promisify(execFile);
const SENTINEL_MASTER = 'dalle-test';

export interface RedisTopologyHarness {
  kind: 'cluster' | 'sentinel';
  /** The settings that point the service at it (instead of REDIS_URL). */
  env: Record<string, string>;
  /** Promotes a replica: SENTINEL FAILOVER, or CLUSTER FAILOVER at the replica of the master holding `key`. */
  failover(key: string): Promise<void>;
  /** The slot of `key` as the Cluster itself computes it (CLUSTER KEYSLOT). */
  keySlot?(key: string): Promise<number>;
  /**
   * Kills (SIGKILL) the master holding `key`; once its replica took over, starts it again, as a
   * supervisor would, and waits until it is back as the new master's replica, in sync.
   */
  killMaster(key: string): Promise<void>;
  stop(): Promise<void>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * `count` free ports, each with port + 10000 free too (a Cluster node's bus), below the
 * ephemeral range so that outgoing connections do not take them meanwhile.
 */
async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = 20_000 + Math.floor(Math.random() * 9_000);
    if (ports.includes(port)) continue;
    if ((await portFree(port)) && (await portFree(port + 10_000))) ports.push(port);
  }
  return ports;
}

interface Server {
  port: number;
  command: string;
  args: string[];
  child: ChildProcess;
  exited: Promise<unknown>;
  output(): string;
}

function startServer(command: string, args: string[], port: number): Server {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const keep = (chunk: Buffer) => (text = (text + chunk.toString()).slice(-20_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { port, command, args, child, exited: once(child, 'exit'), output: () => text };
}

/** Whether the master at `port` has a replica in sync. */
async function hasOnlineReplica(port: number): Promise<boolean> {
  return /^slave[0-9]+:.*state=online/m.test(String(await ask(port, 'INFO', 'replication')));
}

async function stopServer(server: Server, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill(signal);
  await server.exited;
}

/** One command at one server, on a connection of its own. */
async function ask(port: number, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    client.disconnect();
  }
}

async function answers(server: Server): Promise<boolean> {
  return (await ask(server.port, 'PING')) === 'PONG';
}

const serverArgs = (port: number, dir: string) => [
  '--port',
  String(port),
  '--bind',
  '127.0.0.1',
  '--save',
  '',
  '--appendonly',
  'no',
  '--dir',
  dir,
];

export async function startRedisCluster(dir: string): Promise<RedisTopologyHarness> {
  const ports = await freePorts(6);
  const servers = new Map<number, Server>();
  for (const port of ports) {
    const args = [
      ...serverArgs(port, dir),
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, `nodes-${port}.conf`),
      // A killed master is replaced after this long.
      '--cluster-node-timeout',
      '2000',
    ];
    servers.set(port, startServer('redis-server', args, port));
  }
  const stop = async () => {
    await Promise.all([...servers.values()].map((server) => stopServer(server, 'SIGKILL')));
  };
  try {
    for (const server of servers.values())
      await until(`cluster node ${server.port}`, () => answers(server), 10_000, 50);
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ]);
    await until(
      'the cluster to agree (cluster_state:ok everywhere, a replica for every slot range)',
      async () => {
        for (const port of ports) {
          if (!String(await ask(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
          const ranges = (await ask(port, 'CLUSTER', 'SLOTS')) as unknown[][];
          if (ranges.length !== 3 || ranges.some((range) => range.length < 4)) return false;
        }
        return true;
      },
      30_000,
      200,
    );
  } catch (error) {
    await stop();
    throw new Error(`the cluster did not start: ${(error as Error).message}`, { cause: error });
  }

  /** The live master serving `key`'s slot and its replica, as the cluster sees them now. */
  const holders = async (key: string) => {
    const live = [...servers.values()].find((server) => server.child.exitCode === null && !server.child.signalCode);
    if (!live) throw new Error('no cluster node runs');
    const slot = Number(await ask(live.port, 'CLUSTER', 'KEYSLOT', key));
    const ranges = (await ask(live.port, 'CLUSTER', 'SLOTS')) as [number, number, ...[string, number, string][]][];
    const range = ranges.find(([first, last]) => slot >= first && slot <= last);
    if (!range) throw new Error(`no node serves slot ${slot}`);
    const [, , master, replica] = range;
    return { master: master[1], replica: replica?.[1] };
  };
  /** The master holding `key` and its replica, once it has one again (after a failover, it takes a moment). */
  const replicaOf = async (key: string) =>
    until(
      `a replica of the master holding ${key}`,
      async () => {
        const { master, replica } = await holders(key);
        return replica === undefined ? undefined : { master, replica };
      },
      30_000,
      200,
    );

  return {
    kind: 'cluster',
    keySlot: async (key) => Number(await ask(ports[0] as number, 'CLUSTER', 'KEYSLOT', key)),
    env: { REDIS_CLUSTER_NODES: ports.map((port) => `127.0.0.1:${port}`).join(',') },
    async failover(key) {
      const { master, replica } = await replicaOf(key);
      await ask(replica, 'CLUSTER', 'FAILOVER');
      await until(`node ${replica} to take over from ${master}`, async () => (await holders(key)).master === replica);
      await until(`node ${master} in sync as ${replica}'s replica`, () => hasOnlineReplica(replica), 60_000, 200);
    },
    async killMaster(key) {
      const { master, replica } = await replicaOf(key);
      const server = servers.get(master);
      if (!server) throw new Error(`no node on ${master}`);
      await stopServer(server, 'SIGKILL');
      await until(
        `node ${replica} to replace the killed ${master}`,
        async () => (await holders(key)).master === replica,
        30_000,
        200,
      );
      servers.set(master, startServer(server.command, server.args, master));
      await until(`node ${master} back as ${replica}'s replica`, () => hasOnlineReplica(replica), 60_000, 200);
    },
    stop,
  };
}

export async function startRedisSentinel(dir: string): Promise<RedisTopologyHarness> {
  const [masterPort, replicaPort, ...sentinelPorts] = await freePorts(5);
  if (masterPort === undefined || replicaPort === undefined) throw new Error('no ports');
  const servers: Server[] = [
    startServer('redis-server', serverArgs(masterPort, dir), masterPort),
    startServer(
      'redis-server',
      [...serverArgs(replicaPort, dir), '--replicaof', '127.0.0.1', String(masterPort)],
      replicaPort,
    ),
  ];
  const stop = async () => {
    await Promise.all(servers.map((server) => stopServer(server, 'SIGKILL')));
  };
  try {
    for (const server of servers) await until(`redis-server ${server.port}`, () => answers(server), 10_000, 50);
    for (const port of sentinelPorts) {
      // Sentinel rewrites its configuration file: each one gets a file of its own.
      const file = join(dir, `sentinel-${port}.conf`);
      await writeFile(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
          '',
        ].join('\n'),
      );
      servers.push(startServer('redis-sentinel', [file], port));
    }
    await until(
      'the sentinels to see the replica and each other',
      async () => {
        for (const port of sentinelPorts) {
          const replicas = (await ask(port, 'SENTINEL', 'REPLICAS', SENTINEL_MASTER)) as unknown[];
          const others = (await ask(port, 'SENTINEL', 'SENTINELS', SENTINEL_MASTER)) as unknown[];
          if (replicas.length < 1 || others.length < 2) return false;
        }
        return true;
      },
      30_000,
      200,
    );
  } catch (error) {
    await stop();
    throw new Error(`the sentinel set did not start: ${(error as Error).message}`, { cause: error });
  }

  const firstSentinel = sentinelPorts[0] as number;
  const masterNow = async () => {
    const [, port] = (await ask(firstSentinel, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER)) as string[];
    return Number(port);
  };
  /** Waits until the sentinels name another master, and that master says it is one; its port. */
  const promoted = async (from: number) =>
    until(
      `the sentinels to promote a replica of ${from}`,
      async () => {
        const port = await masterNow();
        if (port === from) return undefined;
        return String(await ask(port, 'ROLE')).startsWith('master') ? port : undefined;
      },
      30_000,
      200,
    );

  /** Who is what now, for an error: each server's role and each sentinel's master. */
  const describe = async () => {
    const roles = await Promise.all(
      servers
        .filter((server) => server.command === 'redis-server')
        .map(
          async (server) => `${server.port}: ${String(await ask(server.port, 'ROLE').catch((e: Error) => e.message))}`,
        ),
    );
    const masters = await Promise.all(
      sentinelPorts.map(async (port) =>
        String(await ask(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER).catch((e: Error) => e.message)),
      ),
    );
    return `roles ${roles.join('; ')}; sentinels name ${masters.join(' / ')}`;
  };

  /**
   * Waits until the master the sentinels name has a replica in sync. Not necessarily the one just
   * promoted: under load the sentinels may fail over once more by themselves meanwhile.
   */
  const inSync = (what: string) =>
    until(what, async () => hasOnlineReplica(await masterNow()), 60_000, 200).catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message} (${await describe()})`, { cause: error });
    });

  return {
    kind: 'sentinel',
    env: {
      REDIS_SENTINELS: sentinelPorts.map((port) => `127.0.0.1:${port}`).join(','),
      REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
    },
    async failover() {
      const from = await masterNow();
      // A replica back from a fault only just now is not yet one the sentinels would promote
      // (NOGOODSLAVE): asked again until it is.
      await until(
        'a replica the sentinels would promote',
        () => ask(firstSentinel, 'SENTINEL', 'FAILOVER', SENTINEL_MASTER).then(() => true),
        30_000,
        500,
      );
      const to = await promoted(from);
      // The sentinels turn the old master into the new one's replica (within about 10 s).
      await inSync(`${from} in sync as ${to}'s replica`);
    },
    async killMaster() {
      const from = await masterNow();
      const index = servers.findIndex((candidate) => candidate.port === from);
      const server = servers[index];
      if (!server) throw new Error(`no server on ${from}`);
      await stopServer(server, 'SIGKILL');
      const to = await promoted(from);
      // Back as the new master's replica at once, as a supervisor restarting it from the
      // configuration the sentinels rewrote would (left to them, it takes ten seconds or more).
      const args = [...serverArgs(from, dir), '--replicaof', '127.0.0.1', String(to)];
      servers[index] = startServer(server.command, args, from);
      await inSync(`${from} back as ${to}'s replica`);
    },
    stop,
  };
}

export function startRedisTopology(kind: 'cluster' | 'sentinel', dir: string): Promise<RedisTopologyHarness> {
  return kind === 'cluster' ? startRedisCluster(dir) : startRedisSentinel(dir);
}
