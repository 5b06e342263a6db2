// What the logs say at the default level: the requests people make, not the polls of health
// checks and metrics scrapes (those at debug).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { type Harness, closeSharedEngine, startHarness } from './api-harness.js';
import { until } from './faults-harness.js';

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
}

const DEBUG = 20;
const INFO = 30;

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
});
