// A generation whose job was added but whose index write then failed still runs, so its
// Idempotency-Key record and quota stay: a retry replays the same id (and mends the index)
// instead of making a second generation. The index write is refused for real: the API
// talks to Redis as a user whose ACL leaves out the generation index keys.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { serviceKeys } from '../../src/queue/keys.js';
import {
  type Harness,
  REDIS_URL,
  closeSharedEngine,
  json,
  post,
  startHarness,
  terminal,
  waitFor,
} from './api-harness.js';

describe('the index write after add fails', () => {
  let h: Harness;
  let admin: Redis;
  const user = `promises-${randomUUID().slice(0, 8)}`;
  const password = randomUUID();
  const prefix = `test-${randomUUID().slice(0, 8)}`;

  before(async () => {
    admin = new Redis(REDIS_URL);
    // Everything the API touches for a generation, except <prefix>:svc:generations*.
    const allowed = ['generate:*', 'svc:idem:*', 'svc:usage:*', 'svc:models*', 'svc:cancel*', 'svc:committed:*'];
    await admin.call(
      'ACL',
      'SETUSER',
      user,
      'on',
      `>${password}`,
      '+@all',
      '&*',
      ...allowed.map((k) => `~${prefix}:${k}`),
    );
    const url = new URL(REDIS_URL);
    url.username = user;
    url.password = password;
    h = await startHarness({ worker: false, env: { REDIS_URL: url.toString(), QUEUE_PREFIX: prefix } });
    await h.startWorker({ REDIS_URL });
  });
  after(async () => {
    await admin.call('ACL', 'SETUSER', user, '~*');
    await h.close();
    await admin.call('ACL', 'DELUSER', user);
    admin.disconnect();
    await closeSharedEngine();
  });

  test('the generation is accepted once, and a retry replays it', async () => {
    const headers = { 'idempotency-key': 'index-write-fails' };
    const body = { prompt: 'indexed later', candidates: 1, n: 1 };
    const first = await post(h.baseUrl, '/generations', body, headers);
    assert.equal(first.status, 202, JSON.stringify(await first.clone().json()));
    const { id } = await json(first);
    const keys = serviceKeys(prefix);
    assert.equal(await admin.zscore(keys.generationIndex, id), null, 'the index write was refused');

    const retry = await post(h.baseUrl, '/generations', body, headers);
    assert.equal(retry.status, 202);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    assert.equal((await json(retry)).id, id);
    const counts = await h.services.queues.get('generate').getJobCounts();
    assert.equal(
      Object.values(counts).reduce((a, b) => a + b, 0),
      1,
      'one generation, not two',
    );

    // Once the index can be written again, the next replay mends it.
    await admin.call('ACL', 'SETUSER', user, '~*');
    assert.equal((await post(h.baseUrl, '/generations', body, headers)).headers.get('idempotent-replayed'), 'true');
    assert.notEqual(await admin.zscore(keys.generationIndex, id), null);
    assert.equal((await waitFor(h.baseUrl, id, terminal, 120_000)).status, 'succeeded');
  });
});
