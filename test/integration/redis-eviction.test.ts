// A Redis that may evict keys is named at start-up: an evicted job or record is work lost
// without a trace. Checked against a redis-server of the test's own (never the shared one).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { waitForRedis } from '../../src/queue/redis.js';
import { privateRedis } from './faults-harness.js';

test('start-up warns about a maxmemory-policy other than noeviction, and only then', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dalle-eviction-'));
  const server = await privateRedis(dir, { persist: false });
  await server.start();
  const admin = new Redis(server.url);
  try {
    const warnings: string[] = [];
    const log = { warn: (_fields: object, message: string) => warnings.push(message) };
    await waitForRedis({ kind: 'single', url: server.url }, 1000, log);
    assert.deepEqual(warnings, [], 'noeviction, the default');
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    await waitForRedis({ kind: 'single', url: server.url }, 1000, log);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /maxmemory-policy allkeys-lru\): set it to noeviction/);
  } finally {
    admin.disconnect();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
