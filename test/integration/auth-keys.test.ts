// API keys through real HTTP on real Redis: open mode only when AUTH_MODE=open, 401
// problem+json with WWW-Authenticate otherwise, whatever Redis holds (even flushed), config
// and store keys, revocation, public endpoints, and the key CLI run as a child process
// against the test's prefix.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ConfigError, loadConfig } from '../../src/config.js';
import { type Harness, json, post, removeQueues, startHarness } from './api-harness.js';

const run = promisify(execFile);
const ALICE = 'alice-key-0123456789abcdef';

function auth(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

async function expectUnauthorized(response: Response, challenge = true): Promise<void> {
  const body = await json(response);
  assert.equal(response.status, 401, JSON.stringify(body));
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(body.code, 'unauthorized');
  if (challenge) assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer realm="dalle-serve"/);
}

async function publicEndpointsAnswer(baseUrl: string): Promise<void> {
  for (const path of ['/healthz', '/metrics', '/openapi.json', '/docs/json']) {
    const response = await fetch(`${baseUrl}${path}`);
    assert.equal(response.status, 200, path);
  }
  // Not ready (no worker), but answered without a key.
  assert.equal((await fetch(`${baseUrl}/readyz`)).status, 503);
}

describe('open mode: AUTH_MODE=open', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { AUTH_MODE: 'open' } });
  });
  after(() => h.close());

  test('requests without a key work and act as anonymous; any key sent is ignored', async () => {
    assert.equal((await post(h.baseUrl, '/generations', { prompt: 'open circle', candidates: 1 })).status, 202);
    assert.equal((await json(await fetch(`${h.baseUrl}/generations`))).data.length, 1);
    const usage = await json(await fetch(`${h.baseUrl}/usage`, { headers: auth('whatever-key-0123456789') }));
    assert.equal(usage.key.id, 'anonymous');
  });

  test('a stored key does not change the mode: only the setting does', async () => {
    const { key } = await h.services.keyStore.create('first');
    assert.equal((await json(await fetch(`${h.baseUrl}/usage`, { headers: auth(key) }))).key.id, 'anonymous');
    assert.equal((await fetch(`${h.baseUrl}/generations`)).status, 200);
  });

  test('AUTH_MODE=open with API_KEYS is refused at start', () => {
    assert.throws(
      () => loadConfig({ ...h.env, API_KEYS: `alice:${ALICE}` }),
      (error: ConfigError) => error.problems.some((problem) => problem.startsWith('AUTH_MODE=open')),
    );
  });
});

describe('closed by default: AUTH_MODE=keys', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { AUTH_MODE: '' } });
  });
  after(() => h.close());

  test('with no key anywhere every request is 401, never open', async () => {
    assert.equal(h.config.authMode, 'keys');
    await expectUnauthorized(await fetch(`${h.baseUrl}/generations`));
    await expectUnauthorized(await post(h.baseUrl, '/generations', { prompt: 'x' }));
  });

  test('keys only in the store, then the store flushed: 401, never open', async () => {
    const { key, record } = await h.services.keyStore.create('first');
    assert.equal((await fetch(`${h.baseUrl}/generations`, { headers: auth(key) })).status, 200);
    assert.equal((await fetch(`${h.baseUrl}/generations`, { headers: { 'x-api-key': key } })).status, 200);
    await h.services.keyStore.revoke(record.id);
    await expectUnauthorized(await fetch(`${h.baseUrl}/generations`, { headers: auth(key) }));
    await h.services.keyStore.create('second');
    // Everything under the prefix gone, as after a Redis restart that kept nothing on disk.
    await removeQueues(h.config);
    assert.equal(await h.services.keyStore.hasKeys(), false);
    await expectUnauthorized(await fetch(`${h.baseUrl}/generations`));
    await expectUnauthorized(await fetch(`${h.baseUrl}/usage`, { headers: auth(key) }));
    await expectUnauthorized(await post(h.baseUrl, '/generations', { prompt: 'after the flush' }));
    await publicEndpointsAnswer(h.baseUrl);
  });
});

describe('keys from API_KEYS', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { API_KEYS: `alice:${ALICE},bob:bob-key-0123456789abcdef` } });
  });
  after(() => h.close());

  test('no key, a wrong key and a malformed header get 401 problem+json', async () => {
    await expectUnauthorized(await fetch(`${h.baseUrl}/generations`));
    await expectUnauthorized(await fetch(`${h.baseUrl}/generations`, { headers: auth('wrong-key-0123456789abcdef') }));
    await expectUnauthorized(await fetch(`${h.baseUrl}/generations`, { headers: { authorization: `Basic ${ALICE}` } }));
    await expectUnauthorized(await post(h.baseUrl, '/generations', { prompt: 'x' }));
    await expectUnauthorized(await fetch(`${h.baseUrl}/models`));
    await expectUnauthorized(await fetch(`${h.baseUrl}/no-such-route`));
  });

  test('the right key in either header is let through and named by /usage', async () => {
    const usage = await json(await fetch(`${h.baseUrl}/usage`, { headers: auth(ALICE) }));
    assert.deepEqual(usage.key, { id: 'cfg-alice', name: 'alice' });
    assert.equal((await fetch(`${h.baseUrl}/usage`, { headers: { 'x-api-key': ALICE } })).status, 200);
  });

  test('health, readiness, metrics, the API document and docs stay open', async () => {
    await publicEndpointsAnswer(h.baseUrl);
    const document = await json(await fetch(`${h.baseUrl}/openapi.json`));
    assert.ok(document.components.securitySchemes.bearerAuth);
    assert.deepEqual(document.paths['/healthz'].get.security, []);
  });
});

describe('npm run keys', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { AUTH_MODE: 'keys' } });
  });
  after(() => h.close());

  async function cli(...args: string[]): Promise<any> {
    const env = {
      ...process.env,
      REDIS_URL: h.env.REDIS_URL,
      QUEUE_PREFIX: h.env.QUEUE_PREFIX,
      STORAGE_DIR: h.env.STORAGE_DIR,
    };
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/api-keys.ts', ...args, '--json'], {
      env,
    });
    return JSON.parse(stdout);
  }

  test('creates a key that works, lists it without secrets, rotates its webhook secret and revokes it', async () => {
    const created = await cli('create', 'cli-client', '--rpm', '100');
    assert.match(created.key, /^dsk_/);
    assert.match(created.webhook_secret, /^whsec_/);
    assert.deepEqual(created.limits, { requests_per_minute: 100 });
    const usage = await json(await fetch(`${h.baseUrl}/usage`, { headers: auth(created.key) }));
    assert.equal(usage.key.id, created.id);
    assert.equal(usage.limits.requests_per_minute, 100);

    const listed = await cli('list');
    assert.equal(listed.length, 1);
    assert.equal(listed[0].id, created.id);
    assert.equal(listed[0].revoked, false);
    assert.ok(
      !JSON.stringify(listed).includes(created.key) && !('webhook_secret' in listed[0]),
      'list shows no secrets',
    );

    const rotated = await cli('rotate-webhook-secret', created.id);
    assert.notEqual(rotated.webhook_secret, created.webhook_secret);
    assert.equal((await h.services.keyStore.get(created.id))?.webhook_secret, rotated.webhook_secret);

    await cli('revoke', created.id);
    assert.equal((await cli('list'))[0].revoked, true);
    await expectUnauthorized(await fetch(`${h.baseUrl}/usage`, { headers: auth(created.key) }));
  });

  test('an unknown id is an error', async () => {
    await assert.rejects(cli('revoke', 'key_nonexistent'), /no key key_nonexistent/);
  });
});
