// What a classify request costs Redis, counted so that a regression shows: INFO commandstats
// around N requests (every command, those inside scripts too, the worker's included) on a
// redis-server of the test's own, and the commands the API's own connection sends. In open
// mode without RATE_LIMIT_* the API sends two per request when each goes alone (its admission
// and its job's add), fewer when requests share jobs; no limiter counter, no registry read.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { type Harness, closeSharedEngine, post, startHarness } from './api-harness.js';
import { type PrivateRedis, privateRedis } from './faults-harness.js';
import { queueKeyPrefix } from '../../src/queue/queues.js';

/** Calls per command since the server started, from INFO commandstats. */
async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const text = await redis.info('commandstats');
  return new Map([...text.matchAll(/^cmdstat_(\S+):calls=(\d+)/gm)].map((match) => [match[1], Number(match[2])]));
}

function delta(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const changed = new Map<string, number>();
  for (const [name, calls] of after)
    if (calls !== (before.get(name) ?? 0)) changed.set(name, calls - (before.get(name) ?? 0));
  changed.delete('info');
  return changed;
}

const total = (counts: Map<string, number>) => [...counts.values()].reduce((sum, calls) => sum + calls, 0);

/** Counts the commands sent on `redis`, each command of a pipeline or transaction too. */
function countSent(redis: Redis): { readonly sent: number } {
  const counter = { sent: 0 };
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (...args: Parameters<Redis['sendCommand']>) => {
    counter.sent += 1;
    return send(...args);
  };
  return counter;
}

describe('Redis commands per classify request', () => {
  let dir: string;
  let server: PrivateRedis;
  let admin: Redis;
  let h: Harness;
  let body: unknown;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dalle-commands-'));
    server = await privateRedis(dir, { persist: false });
    await server.start();
    admin = new Redis(server.url);
    h = await startHarness({ env: { REDIS_URL: server.url } });
    const image = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#c03030' } })
      .png()
      .toBuffer();
    body = { image: { base64: image.toString('base64') }, labels: ['circle', 'square'] };
    // Warm: scripts loaded, the registry read, the reply channel subscribed.
    for (let i = 0; i < 3; i++) await classify();
  });
  after(async () => {
    await h?.close();
    await closeSharedEngine();
    admin?.disconnect();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function classify(): Promise<void> {
    const response = await post(h.baseUrl, '/clip/classify', body);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  }

  /** Runs `count` requests, `concurrency` at a time; the commands per request, all and the API's own. */
  async function measure(count: number, concurrency: number) {
    const connection = h.services.queues.redis;
    assert.ok(connection instanceof Redis, 'one server');
    const api = countSent(connection);
    const before = await commandStats(admin);
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < count) await classify();
      }),
    );
    const counts = delta(before, await commandStats(admin));
    return { all: total(counts) / count, api: api.sent / count, counts };
  }

  test('one request at a time: each its own job, two commands from the API', async (t) => {
    const { all, api, counts } = await measure(40, 1);
    t.diagnostic(`${all} commands per request, ${api} from the API`);
    // The admission script and the job's add; nothing else on the request's way.
    assert.ok(api <= 2, `the API sent ${api} commands per request`);
    // No limiter counter (no RATE_LIMIT_*), no registry read per request (one refresh at most).
    const usage = await admin.keys(`${h.config.queuePrefix}:*:usage:*`);
    assert.deepEqual(usage, [], 'no limiter counter');
    assert.ok((counts.get('mget') ?? 0) <= 1, `the registry was read ${counts.get('mget')} times`);
    // Everything, BullMQ's scripts and the worker included: 68 when measured (2026-12), 87
    // before jobs were shared, the registry kept and the limiter skipped.
    assert.ok(all <= 72, `${all} commands per request: ${JSON.stringify(Object.fromEntries(counts))}`);
  });

  test('16 clients at once: requests share jobs, and the commands per request fall', async (t) => {
    const { all, api, counts } = await measure(320, 16);
    t.diagnostic(`${all} commands per request, ${api} from the API`);
    assert.ok(api < 2, `the API sent ${api} commands per request`);
    // 14 to 17 when measured (2026-12); one job per request would be over 60.
    assert.ok(all <= 35, `${all} commands per request: ${JSON.stringify(Object.fromEntries(counts))}`);
    // BullMQ's event stream is kept short: nothing of ours reads it.
    assert.ok((await admin.xlen(`${queueKeyPrefix(h.config.queuePrefix, 'classify')}:classify:events`)) <= 300);
  });
});
