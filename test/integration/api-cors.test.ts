// CORS: off unless CORS_ORIGINS names origins; then a browser page on one of them gets its
// preflight answered without a key, and reads the headers the API gives, while keys still apply.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { type Harness, startHarness } from './api-harness.js';

const APP = 'https://app.example.com';
const KEY = 'cors-client-0123456789abcdef';

function preflight(baseUrl: string, origin: string): Promise<Response> {
  return fetch(`${baseUrl}/generations`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type, idempotency-key',
    },
  });
}

describe('CORS', () => {
  let h: Harness;
  let off: Harness;
  before(async () => {
    h = await startHarness({
      worker: false,
      env: { CORS_ORIGINS: `${APP}, http://localhost:5173`, API_KEYS: `web:${KEY}` },
    });
    off = await startHarness({ worker: false });
  });
  after(async () => {
    await h.close();
    await off.close();
  });

  test('a preflight from an allowed origin is answered without a key, naming what the page may send', async () => {
    const answer = await preflight(h.baseUrl, APP);
    assert.equal(answer.status, 204);
    assert.equal(answer.headers.get('access-control-allow-origin'), APP);
    assert.match(answer.headers.get('access-control-allow-methods') ?? '', /POST/);
    const allowed = (answer.headers.get('access-control-allow-headers') ?? '').split(/,\s*/);
    for (const header of ['authorization', 'content-type', 'idempotency-key']) assert.ok(allowed.includes(header));
  });

  test('the page reads the answer and the headers it needs; the key still decides', async () => {
    const accepted = await fetch(`${h.baseUrl}/generations`, {
      method: 'POST',
      headers: { origin: APP, authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a red circle', candidates: 1 }),
    });
    assert.equal(accepted.status, 202);
    assert.equal(accepted.headers.get('access-control-allow-origin'), APP);
    const exposed = (accepted.headers.get('access-control-expose-headers') ?? '').split(/,\s*/);
    for (const header of ['location', 'x-request-id', 'retry-after']) assert.ok(exposed.includes(header), header);
    const keyless = await fetch(`${h.baseUrl}/generations`, { headers: { origin: APP } });
    assert.equal(keyless.status, 401);
  });

  test('another origin gets no CORS headers, so its browser keeps the answer from it', async () => {
    const answer = await preflight(h.baseUrl, 'https://elsewhere.example');
    assert.equal(answer.headers.get('access-control-allow-origin'), null);
  });

  test('without CORS_ORIGINS there is no CORS at all', async () => {
    const answer = await preflight(off.baseUrl, APP);
    assert.equal(answer.headers.get('access-control-allow-origin'), null);
    const get = await fetch(`${off.baseUrl}/generations`, { headers: { origin: APP } });
    assert.equal(get.headers.get('access-control-allow-origin'), null);
  });

  test('CORS_ORIGINS takes origins only, and * alone', () => {
    const env = { ...h.env };
    for (const bad of ['app.example.com', 'https://app.example.com/path', 'ftp://x.example', '*, https://a.example'])
      assert.throws(() => loadConfig({ ...env, CORS_ORIGINS: bad }), /CORS_ORIGINS/, bad);
    assert.deepEqual(loadConfig({ ...env, CORS_ORIGINS: '*' }).corsOrigins, ['*']);
  });
});
