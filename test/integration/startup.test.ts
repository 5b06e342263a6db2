// `npm start` as the quick start runs it: open, on 127.0.0.1 only, a generation end to end.
// Starting against a Redis that is not there: the API, the worker and `npm start` with a
// REDIS_URL of their own log each retry with the URL (its password hidden), then exit 1 with a
// line that says what to fix, instead of waiting without a word.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { REDIS_URL, freePort, removeQueues } from './api-harness.js';
import { spawnService, until } from './faults-harness.js';

async function startAgainstNothing(entry: string): Promise<{ code: number | null; lines: string[] }> {
  const port = await freePort();
  const service = spawnService(entry, {
    REDIS_URL: `redis://default:s3cret-password@127.0.0.1:${port}`,
    REDIS_STARTUP_WAIT_MS: '1500',
    MODELS_DIR: 'packs',
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    WORKER_METRICS_PORT: '0',
    LOG_LEVEL: 'info',
    AUTH_MODE: 'open',
  });
  const timeout = setTimeout(() => void service.stop(), 60_000);
  const code = await service.exited;
  clearTimeout(timeout);
  const output = service.output();
  assert.doesNotMatch(output, /s3cret-password/, 'the password never shows');
  return { code, lines: output.split('\n').filter(Boolean) };
}

function messages(lines: string[]): string[] {
  return lines.flatMap((line) => {
    try {
      return [String((JSON.parse(line) as { msg?: unknown }).msg)];
    } catch {
      return [line];
    }
  });
}

describe('start-up without Redis', () => {
  for (const [entry, fix] of [
    ['src/api/main.ts', /point REDIS_URL at one that runs/],
    ['src/worker/main.ts', /point REDIS_URL at one that runs/],
    ['src/start.ts', /leave REDIS_URL unset for `npm start` to start its own/],
  ] as const) {
    test(`${entry} says where it looked and what to do, then exits 1`, async () => {
      const { code, lines } = await startAgainstNothing(entry);
      assert.equal(code, 1);
      const said = messages(lines);
      assert.ok(
        said.some((msg) => /^Redis does not answer; retrying for \d+ s$/.test(msg)),
        said.join('\n'),
      );
      const last = said.findLast((msg) => msg.startsWith('start failed: '));
      assert.ok(last, said.join('\n'));
      assert.match(last, /Redis at redis:\/\/default:\*\*\*@127\.0\.0\.1:\d+ did not answer within 2 s/);
      assert.match(last, fix);
    });
  }
});

describe('npm start', () => {
  test('serves this machine only, in open mode, and generates', async () => {
    const port = await freePort();
    const dir = await mkdtemp(join(tmpdir(), 'dalle-start-'));
    const env = {
      REDIS_URL,
      QUEUE_PREFIX: `start-${randomUUID().slice(0, 8)}`,
      PORT: String(port),
      STORAGE_DIR: dir,
      WORKER_METRICS_PORT: '0',
      CPU_THREADS: '1',
      LOG_LEVEL: 'info',
    };
    const service = spawnService('src/start.ts', env);
    try {
      await until('dalle-serve is up', () => service.output().includes('dalle-serve is up'), 120_000);
      const listening = service.output().match(/Server listening at (http:\/\/[^"]+)/g) ?? [];
      assert.deepEqual(listening, [`Server listening at http://127.0.0.1:${port}`]);
      const base = `http://127.0.0.1:${port}`;
      const created = await fetch(`${base}/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'a red circle', candidates: 2, n: 1 }),
      });
      assert.equal(created.status, 202, 'no key needed');
      const { id } = (await created.json()) as { id: string };
      const status = await until(
        'the generation ends',
        async () => {
          const generation = (await (await fetch(`${base}/generations/${id}`)).json()) as { status: string };
          return ['succeeded', 'failed', 'canceled'].includes(generation.status) ? generation.status : '';
        },
        120_000,
      );
      assert.equal(status, 'succeeded');
    } finally {
      await service.stop('SIGTERM');
      await removeQueues(loadConfig(env));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
