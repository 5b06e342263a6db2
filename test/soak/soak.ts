// `npm run soak -- --seconds 300 --seed 7 [--topology single|sentinel|cluster]`: concurrent
// clients and a seeded schedule of faults against two APIs and two workers on a Redis of the
// soak's own (one server restarted, or a Sentinel set or Cluster whose generate master is
// failed over and killed), then a checker over the whole history. Prints a report and exits
// non-zero on any violation. Loopback only.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { until } from '../integration/faults-harness.js';
import { INVARIANTS, type Outage, type Violations, check, finalViews } from './checker.js';
import { type History, type Random, SoakClient, newHistory, seededRandom } from './clients.js';
import { KEYS, type SoakSystem, type SoakTopology, startSystem } from './system.js';

type Fault =
  | 'worker killed'
  | 'Redis restarted'
  | 'Redis failed over'
  | 'Redis master killed'
  | 'webhook receiver down'
  | 'storage failing';

/** The faults of a run: Redis's own differ with its topology. */
export function faultsOf(topology: SoakTopology): Fault[] {
  const redis: Fault[] = topology === 'single' ? ['Redis restarted'] : ['Redis failed over', 'Redis master killed'];
  return ['worker killed', ...redis, 'webhook receiver down', 'storage failing'];
}

export interface SoakOptions {
  seconds: number;
  seed: number;
  topology?: SoakTopology;
  /** Progress lines; silent by default. */
  log?: (line: string) => void;
}

export interface SoakReport {
  seed: number;
  seconds: number;
  topology: SoakTopology;
  requests: Record<string, Record<string, number>>;
  faults: Partial<Record<Fault, number>>;
  violations: Violations;
  generations: Record<string, number>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One fault: its effect, then (after a seeded pause) its repair. */
async function inject(fault: Fault, system: SoakSystem, random: Random, outages: Outage[]): Promise<void> {
  const pause = () => sleep(1500 + random() * 2000);
  switch (fault) {
    case 'worker killed': {
      const index = Math.floor(random() * 2);
      await system.killWorker(index);
      await pause();
      system.restartWorker(index);
      return;
    }
    case 'Redis restarted': {
      const outage = { from: Date.now(), to: Number.POSITIVE_INFINITY };
      outages.push(outage);
      await system.stopRedis();
      await pause();
      await system.startRedis();
      outage.to = Date.now();
      return;
    }
    case 'Redis failed over':
    case 'Redis master killed': {
      // Until the new master has a replica in sync again, new generations may be refused (503).
      const outage = { from: Date.now(), to: Number.POSITIVE_INFINITY };
      outages.push(outage);
      await (fault === 'Redis failed over' ? system.failover() : system.killMaster());
      outage.to = Date.now();
      return;
    }
    case 'webhook receiver down':
      await system.receiver.down();
      await pause();
      await system.receiver.up();
      return;
    case 'storage failing':
      await system.failStorage(true);
      await pause();
      await system.failStorage(false);
      return;
  }
}

/** Every fault once per slot of the run, in a seeded order, each at a seeded moment of its slot. */
async function runFaults(
  system: SoakSystem,
  random: Random,
  seconds: number,
  outages: Outage[],
  counts: Partial<Record<Fault, number>>,
): Promise<void> {
  const faults = faultsOf(system.topology);
  const end = Date.now() + seconds * 1000 * 0.8;
  // Short runs fit every fault once; longer ones repeat them about every half minute.
  const slotMs = Math.min(7500, (seconds * 1000 * 0.8) / faults.length);
  while (Date.now() < end) {
    const order = [...faults].sort(() => random() - 0.5);
    for (const fault of order) {
      const slotEnd = Date.now() + slotMs;
      if (slotEnd > end + slotMs / 2) return;
      await sleep(random() * slotMs * 0.3);
      await inject(fault, system, random, outages);
      counts[fault] = (counts[fault] ?? 0) + 1;
      await sleep(Math.max(0, slotEnd - Date.now()));
    }
  }
}

/**
 * Waits until the system has settled: every accepted generation terminal, each webhook one with
 * its completed event, and no generation job left in the queue (a job canceled while queued
 * reads as canceled at once; the worker that takes it up then finishes it).
 */
async function drain(system: SoakSystem, history: History): Promise<void> {
  const pending = async () => {
    if ((await system.pendingJobs()) > 0) return true;
    for (const generation of history.generations.values()) {
      if (generation.deleted) continue;
      const response = await fetch(`${system.apis[0]}/generations/${generation.id}`, {
        headers: { authorization: `Bearer ${KEYS[generation.owner]}` },
      });
      const body = (await response.json()) as { status?: string; webhook?: { event?: string } | null };
      if (!['succeeded', 'failed', 'canceled'].includes(body.status ?? '')) return true;
      if (!generation.webhook || body.webhook?.event === 'completed') continue;
      const delivered = system.receiver.deliveries.some(
        (delivery) => delivery.body.id === generation.id && delivery.body.event === 'completed',
      );
      if (!delivered) return true;
    }
    return false;
  };
  await until('the system to drain', async () => !(await pending()), 240_000, 500).catch(() => undefined);
}

function tally(history: History): Record<string, Record<string, number>> {
  const table: Record<string, Record<string, number>> = {};
  for (const answer of history.answers) {
    const row = (table[answer.kind] ??= {});
    const column = answer.status === 0 ? 'none' : String(answer.status);
    row[column] = (row[column] ?? 0) + 1;
  }
  return table;
}

export async function runSoak({
  seconds,
  seed,
  topology = 'single',
  log = () => {},
}: SoakOptions): Promise<SoakReport> {
  const dir = await mkdtemp(join(tmpdir(), 'dalle-soak-'));
  const random = seededRandom(seed);
  const history = newHistory();
  const outages: Outage[] = [];
  const faults: Partial<Record<Fault, number>> = Object.fromEntries(faultsOf(topology).map((fault) => [fault, 0]));
  log(`starting: 2 APIs, 2 workers, Redis (${topology === 'single' ? 'one server with AOF' : topology}) in ${dir}`);
  const system = await startSystem(dir, topology);
  try {
    const image = (
      await sharp({ create: { width: 64, height: 64, channels: 3, background: '#d02020' } })
        .png()
        .toBuffer()
    ).toString('base64');
    const until = Date.now() + seconds * 1000;
    const clients = (['alice', 'alice', 'bob', 'bob'] as const).map(
      (key, index) => new SoakClient(system, history, key, seededRandom(seed * 31 + index), image),
    );
    log(`running ${seconds} s, seed ${seed}`);
    await Promise.all([
      ...clients.map((client) => client.run(until)),
      runFaults(system, random, seconds, outages, faults),
    ]);
    log(`draining ${history.generations.size} generations`);
    await drain(system, history);
    const views = await finalViews(system, history);
    const violations = await check(system, history, views, outages);
    const generations: Record<string, number> = {};
    for (const [id, view] of views) {
      const status = history.generations.get(id)?.deleted ? 'deleted' : (view.body.status ?? String(view.status));
      generations[status] = (generations[status] ?? 0) + 1;
    }
    if (Object.values(violations).some((list) => list.length > 0)) log(system.logs());
    return { seed, seconds, topology, requests: tally(history), faults, violations, generations };
  } finally {
    await system.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatReport(report: SoakReport): string {
  const statuses = [...new Set(Object.values(report.requests).flatMap((row) => Object.keys(row)))].sort();
  const lines = [
    `soak: ${report.seconds} s, seed ${report.seed}, Redis ${report.topology} (replay: npm run soak -- --seconds ${report.seconds} --seed ${report.seed} --topology ${report.topology})`,
    '',
    `| request | ${statuses.join(' | ')} |`,
    `| --- | ${statuses.map(() => '---').join(' | ')} |`,
    ...Object.entries(report.requests).map(
      ([kind, row]) => `| ${kind} | ${statuses.map((status) => row[status] ?? 0).join(' | ')} |`,
    ),
    '',
    `generations: ${Object.entries(report.generations)
      .map(([status, count]) => `${count} ${status}`)
      .join(', ')}`,
    '',
    '| fault | injected |',
    '| --- | --- |',
    ...Object.entries(report.faults).map(([fault, count]) => `| ${fault} | ${count} |`),
    '',
    '| invariant | violations |',
    '| --- | --- |',
    ...INVARIANTS.map((name) => `| ${name} | ${report.violations[name].length} |`),
  ];
  for (const name of INVARIANTS) {
    for (const detail of report.violations[name].slice(0, 10)) lines.push(`  ${name}: ${detail}`);
  }
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '300' },
      seed: { type: 'string', default: String(Date.now() % 100000) },
      topology: { type: 'string', default: 'single' },
    },
  });
  const topologies = ['single', 'sentinel', 'cluster'] as const;
  const topology = topologies.find((name) => name === values.topology);
  if (!topology) {
    console.error(`--topology: one of ${topologies.join(', ')}`);
    process.exit(2);
  }
  const report = await runSoak({
    seconds: Number(values.seconds),
    seed: Number(values.seed),
    topology,
    log: (line) => console.error(line),
  });
  console.log(formatReport(report));
  const total = Object.values(report.violations).reduce((sum, list) => sum + list.length, 0);
  process.exit(total === 0 ? 0 : 1);
}
