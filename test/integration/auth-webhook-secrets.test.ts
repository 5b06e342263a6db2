// Every key signs its own webhooks, configured (API_KEYS) or stored, and learns its secret
// from GET /webhook-secret: two configured keys' receivers each verify their own events and
// refuse the other key's, and neither verifies with the server's WEBHOOK_SECRET.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import {
  type Harness,
  WEBHOOK_SECRET,
  type WebhookDelivery,
  type WebhookReceiver,
  closeSharedEngine,
  json,
  post,
  startHarness,
  startWebhookReceiver,
} from './api-harness.js';
import { loadConfig } from '../../src/config.js';
import { KeyStore } from '../../src/service/api-keys.js';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';

function auth(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

function signatureHeaders(event: WebhookDelivery): Record<string, string> {
  return {
    'webhook-id': String(event.headers['webhook-id']),
    'webhook-timestamp': String(event.headers['webhook-timestamp']),
    'webhook-signature': String(event.headers['webhook-signature']),
  };
}

describe('webhook secrets of configured and stored keys', () => {
  let h: Harness;
  let aliceReceiver: WebhookReceiver;
  let bobReceiver: WebhookReceiver;
  before(async () => {
    h = await startHarness({ env: { API_KEYS: `alice:${ALICE},bob:${BOB}` } });
    aliceReceiver = await startWebhookReceiver();
    bobReceiver = await startWebhookReceiver();
  });
  after(async () => {
    await aliceReceiver.close();
    await bobReceiver.close();
    await h.close();
    await closeSharedEngine();
  });

  async function secretOf(key: string): Promise<string> {
    const response = await fetch(`${h.baseUrl}/webhook-secret`, { headers: auth(key) });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    const { webhook_secret: secret } = await json(response);
    assert.match(secret, /^whsec_/);
    return secret;
  }

  async function completedEvent(key: string, receiver: WebhookReceiver): Promise<WebhookDelivery> {
    const body = {
      prompt: 'a signed circle',
      candidates: 1,
      webhook: receiver.url,
      webhook_events_filter: ['completed'],
    };
    const accepted = await post(h.baseUrl, '/generations', body, auth(key));
    assert.equal(accepted.status, 202);
    const { id } = await json(accepted);
    for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
      const found = receiver.deliveries.find((delivery) => JSON.parse(delivery.body).id === id);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no completed webhook for ${id}`);
  }

  test('two configured keys: each receiver verifies with its own secret only', async () => {
    const [aliceSecret, bobSecret] = [await secretOf(ALICE), await secretOf(BOB)];
    assert.notEqual(aliceSecret, bobSecret);
    assert.notEqual(aliceSecret, WEBHOOK_SECRET);
    const [fromAlice, fromBob] = await Promise.all([
      completedEvent(ALICE, aliceReceiver),
      completedEvent(BOB, bobReceiver),
    ]);
    const alice = new Webhook(aliceSecret);
    const bob = new Webhook(bobSecret);
    assert.equal((alice.verify(fromAlice.body, signatureHeaders(fromAlice)) as any).event, 'completed');
    assert.equal((bob.verify(fromBob.body, signatureHeaders(fromBob)) as any).event, 'completed');
    assert.throws(() => alice.verify(fromBob.body, signatureHeaders(fromBob)), /signature/i);
    assert.throws(() => bob.verify(fromAlice.body, signatureHeaders(fromAlice)), /signature/i);
    const server = new Webhook(WEBHOOK_SECRET);
    assert.throws(() => server.verify(fromAlice.body, signatureHeaders(fromAlice)), /signature/i);
  });

  test('a configured key keeps its secret across processes; a stored key is shown its own', async () => {
    assert.equal(await secretElsewhere(h), await secretOf(ALICE));
    const { key, record } = await h.services.keyStore.create('stored');
    assert.equal(await secretOf(key), record.webhook_secret);
    const rotated = await h.services.keyStore.rotateWebhookSecret(record.id);
    assert.equal(await secretOf(key), rotated);
  });
});

describe('webhook secret in open mode', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false });
  });
  after(() => h.close());

  test('anonymous is not handed the server secret', async () => {
    const body = await json(await fetch(`${h.baseUrl}/webhook-secret`));
    assert.deepEqual(body, { key: { id: 'anonymous', name: 'anonymous' }, webhook_secret: null });
  });
});

/** Alice's secret as another process with the same WEBHOOK_SECRET derives it. */
async function secretElsewhere(h: Harness): Promise<string> {
  const store = new KeyStore({ redis: h.services.queues.redis }, loadConfig(h.env));
  const principal = await store.authenticate(ALICE);
  assert.ok(principal?.webhookSecret);
  return principal.webhookSecret;
}
