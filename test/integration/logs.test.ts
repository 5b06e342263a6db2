// What the logs say at the default level: the requests people make, not the polls of health
// checks and metrics scrapes (those at debug); a client's cancel as a fact at info, not as a
// failure at warn with a stack.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { type Harness, closeSharedEngine, json, post, startHarness, terminal, waitFor } from './api-harness.js';
import { until } from './faults-harness.js';

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  jobId?: string;
  err?: unknown;
}

const DEBUG = 20;
const INFO = 30;
const WARN = 40;

describe('log levels', () => {
  const lines: LogLine[] = [];
  let h: Harness;
  before(async () => {
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line) as LogLine) });
    h = await startHarness({ logger });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  /** The request's log lines once both (incoming, completed) are written: they follow the answer. */
  async function requestLines(path: string): Promise<LogLine[]> {
    const reqId = `logs-${path.slice(1)}`;
    const response = await fetch(`${h.baseUrl}${path}`, { headers: { 'x-request-id': reqId } });
    await response.arrayBuffer();
    assert.equal(response.status, 200, path);
    return until(`${path}'s request lines`, () => {
      const found = lines.filter((line) => line.reqId === reqId);
      return found.length >= 2 ? found : undefined;
    });
  }

  test('health checks, readiness polls and metrics scrapes are logged at debug; other requests at info', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const found = await requestLines(path);
      assert.deepEqual(
        found.map(({ level, msg }) => [level, msg]),
        [
          [DEBUG, 'incoming request'],
          [DEBUG, 'request completed'],
        ],
        path,
      );
    }
    const models = await requestLines('/models');
    assert.deepEqual(
      models.map(({ level }) => level),
      [INFO, INFO],
    );
  });

  test("a client's cancel of a running generation is logged at info, without an error", async () => {
    const accepted = await json(
      await post(h.baseUrl, '/generations', { prompt: 'cancel me while sampling', candidates: 1024, n: 1 }),
    );
    await waitFor(h.baseUrl, accepted.id, (generation) => generation.status === 'processing' || terminal(generation));
    const cancel = await fetch(`${h.baseUrl}/generations/${accepted.id}/cancel`, { method: 'POST' });
    assert.equal(cancel.status, 202);
    assert.equal((await waitFor(h.baseUrl, accepted.id, terminal)).status, 'canceled');
    const canceled = await until('the worker logs the cancel', () =>
      lines.find((line) => line.jobId === accepted.id && line.msg === 'generation canceled by request'),
    );
    assert.equal(canceled.level, INFO);
    assert.equal(canceled.err, undefined);
    const loud = lines.filter((line) => line.jobId === accepted.id && line.level >= WARN);
    assert.deepEqual(loud, [], 'nothing at warn or above for a cancel');
  });
});
