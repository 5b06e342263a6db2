// bench:api's load generator, in a process of its own so that its CPU is neither the API's nor
// the worker's: `--clients` keep-alive clients (Node's fetch, one undici connection each) send
// the same request, each waiting for its answer before sending the next, `--requests` in all.
// On stdio: every client sends one request first (the connections open, the path warms), then
// `{"ready":true}` is written; a line on stdin starts the measured run; its result is written
// as one JSON line (latencies in ms, of the answers with `--status` only); it exits when stdin
// closes (its CPU time is read before).
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    body: { type: 'string' },
    clients: { type: 'string', default: '16' },
    requests: { type: 'string', default: '1000' },
    status: { type: 'string', default: '200' },
  },
});
if (!values.url || !values.body) throw new Error('--url and --body (a file holding the JSON body) are required');
const url = values.url;
const CLIENTS = Number(values.clients);
const REQUESTS = Number(values.requests);
const STATUS = Number(values.status);
const body = await readFile(values.body, 'utf8');

/** One request; its latency in ms, or the status (or error) it failed with. */
async function send(): Promise<number | string> {
  const started = performance.now();
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await response.arrayBuffer();
    return response.status === STATUS ? performance.now() - started : String(response.status);
  } catch (error) {
    return error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : 'error';
  }
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

const warm = await Promise.all(Array.from({ length: CLIENTS }, send));
const failed = warm.filter((outcome) => typeof outcome === 'string');
if (failed.length > 0) throw new Error(`warm-up: ${failed.length} of ${CLIENTS} requests failed (${failed[0]})`);
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
const lines = createInterface({ input: process.stdin });
const closed = new Promise((resolve) => lines.once('close', resolve));
await new Promise((resolve) => lines.once('line', resolve));

const latencies: number[] = [];
const failures: Record<string, number> = {};
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: CLIENTS }, async () => {
    while (next < REQUESTS) {
      next += 1;
      const outcome = await send();
      if (typeof outcome === 'number') latencies.push(outcome);
      else failures[outcome] = (failures[outcome] ?? 0) + 1;
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const result = {
  requests: REQUESTS,
  ok: latencies.length,
  failures,
  seconds,
  rps: latencies.length / seconds,
  p50_ms: percentile(latencies, 50),
  p90_ms: percentile(latencies, 90),
  p99_ms: percentile(latencies, 99),
  max_ms: latencies.at(-1) ?? NaN,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
// Alive until stdin closes, so that its CPU time can still be read.
await closed;
