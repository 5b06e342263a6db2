// bench:api's printout: one Markdown table, min / median / max over the rounds, the goals of
// issue 25 beside the figures (judged on the median round), and where the CPU goes.

export interface ClientsResult {
  requests: number;
  ok: number;
  failures: Record<string, number>;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  /** Requests per engine call in the worker, on average (its dalle_classify_batch_size). */
  worker_batch?: number;
}

export interface ReferenceResult {
  requests: number;
  rps: number;
}

/** A result with each process's CPU ms per request (`redis` from INFO) and Redis's commands per request. */
export type Reading<R> = R & { cpu_ms: Record<string, number>; commands: number; top_commands: Record<string, number> };

export interface Round {
  http: Reading<ClientsResult>;
  reference: Reading<ReferenceResult>;
  ratio: number;
  /** The 1-minute load average after the round. */
  load: number;
}

export interface Enqueue {
  clients: number;
  http: Reading<ClientsResult>;
  bullmq_add: Reading<ReferenceResult>;
}

export interface Conditions {
  requests: number;
  batch: number;
  loadStart: number[];
  loadEnd: number[];
  cpus: number;
  redis: string;
  otherRedisClients: number;
}

/** Issue 25's goals: HTTP over in process by client count; p99 at every count. */
const RATIO_GOALS: Record<number, number> = { 16: 0.7, 64: 0.9 };
const P99_GOAL_MS = 100;

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (x: number) => x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2);
const spread = (xs: number[], unit = '') =>
  `${fmt(Math.min(...xs))} / ${fmt(median(xs))} / ${fmt(Math.max(...xs))}${unit}`;
const verdict = (met: boolean) => (met ? 'met' : 'missed');

export function printTable(rounds: Record<number, Round[]>, enqueue: Enqueue | undefined, conditions: Conditions) {
  const counts = Object.keys(rounds).map(Number);
  const of = <T>(pick: (round: Round) => T) => counts.map((clients) => rounds[clients].map(pick));
  const cpu = (source: 'http' | 'reference', name: string) =>
    of((round) => round[source].cpu_ms[name]).map((xs) => fmt(median(xs)));
  const ratioGoal = counts
    .filter((clients) => RATIO_GOALS[clients] !== undefined)
    .map((clients) => {
      const ratio = median(rounds[clients].map((round) => round.ratio));
      return `≥ ${RATIO_GOALS[clients]}× at ${clients}: ${verdict(ratio >= RATIO_GOALS[clients])} (${fmt(ratio)}×)`;
    });
  const p99Goal = counts.map((clients) => {
    const p99 = median(rounds[clients].map((round) => round.http.p99_ms));
    return `${verdict(p99 <= P99_GOAL_MS)} at ${clients} (${fmt(p99)} ms)`;
  });
  const rows: string[][] = [
    ['measure', ...counts.map((clients) => `${clients} clients`), 'goal (median round)'],
    ['HTTP req/s', ...of((round) => round.http.rps).map((xs) => spread(xs)), ''],
    [
      `in process req/s, batches of ${conditions.batch}`,
      ...of((round) => round.reference.rps).map((xs) => spread(xs)),
      '',
    ],
    ['HTTP / in process', ...of((round) => round.ratio).map((xs) => spread(xs, '×')), ratioGoal.join('; ')],
    ['worker batch, mean requests', ...of((round) => round.http.worker_batch ?? NaN).map((xs) => spread(xs)), ''],
    ['p50 ms', ...of((round) => round.http.p50_ms).map((xs) => spread(xs)), ''],
    [
      'p99 ms',
      ...of((round) => round.http.p99_ms).map((xs) => spread(xs)),
      `≤ ${P99_GOAL_MS} ms: ${p99Goal.join(', ')}`,
    ],
    ['CPU ms/request (median): API', ...cpu('http', 'api'), ''],
    ['… worker', ...cpu('http', 'worker'), ''],
    ['… … of which its main thread (BullMQ, Redis)', ...cpu('http', 'worker_main'), ''],
    ['… Redis', ...cpu('http', 'redis'), ''],
    ['… HTTP path (API + worker + Redis)', ...of((round) => httpPathCpu(round)).map((xs) => fmt(median(xs))), ''],
    ['… in process (the reference)', ...cpu('reference', 'reference'), ''],
    ['… load generator', ...cpu('http', 'clients'), ''],
    ['Redis commands/request', ...of((round) => round.http.commands).map((xs) => spread(xs)), ''],
    ['load average (1 min) after each round', ...of((round) => round.load).map((xs) => spread(xs)), ''],
  ];
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (row: string[]) => `| ${row.map((cell, column) => cell.padEnd(widths[column])).join(' | ')} |`;
  const out = [
    `bench:api: POST /clip/classify (64×64 PNG, 5 labels) through HTTP + queue + worker against the engine in`,
    `process, each in its own process; ${Object.values(rounds)[0].length} rounds of ${conditions.requests} requests, the two alternating; min / median / max.`,
    `Load average ${conditions.loadStart.join(' ')} at the start, ${conditions.loadEnd.join(' ')} at the end (1 / 5 / 15 min, ${conditions.cpus} CPUs); Redis ${conditions.redis}` +
      (conditions.otherRedisClients > 0
        ? `, with ${conditions.otherRedisClients} other clients connected at the start: its CPU and commands may include theirs.`
        : ', no other clients at the start.'),
    '',
    line(rows[0]),
    `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`,
    ...rows.slice(1).map(line),
    '',
  ];
  for (const clients of counts) {
    const http = median(rounds[clients].map(httpPathCpu));
    const model = median(rounds[clients].map((round) => round.reference.cpu_ms.reference));
    out.push(
      `Where the CPU goes at ${clients} clients: ${fmt(http)} ms per request on the HTTP path against ${fmt(model)} ms in process ` +
        `(${fmt(http / model)}×); with the load generator's ${fmt(median(rounds[clients].map((round) => round.http.cpu_ms.clients)))} ms, ` +
        `${conditions.cpus} CPUs bound the HTTP path at about ${fmt((conditions.cpus * 1000) / (http + median(rounds[clients].map((round) => round.http.cpu_ms.clients))))} req/s.`,
    );
  }
  if (enqueue) {
    const { http, bullmq_add: add } = enqueue;
    out.push(
      `POST /generations at ${enqueue.clients} clients (no generate worker): ${fmt(http.rps)} req/s, p50 ${fmt(http.p50_ms)} ms, ` +
        `p99 ${fmt(http.p99_ms)} ms; per request API ${fmt(http.cpu_ms.api)} ms + Redis ${fmt(http.cpu_ms.redis)} ms CPU, ` +
        `${fmt(http.commands)} Redis commands. BullMQ's add alone: ${fmt(add.rps)} jobs/s (HTTP ${fmt(http.rps / add.rps)}×).`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

function httpPathCpu(round: Round): number {
  const { api, worker, redis } = round.http.cpu_ms;
  return api + worker + redis;
}
