// Every generation belongs to the key that made it: another key gets 404 for it, its cancel
// and its delete, and never sees it listed; Idempotency-Keys are per key. Each key's
// webhooks are signed with its own secret (standardwebhooks verifies them), so one
// client's secret does not verify another's events.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { until } from './faults-harness.js';
import {
  type Harness,
  type WebhookDelivery,
  type WebhookReceiver,
  closeSharedEngine,
  json,
  post,
  startHarness,
  startWebhookReceiver,
  terminal,
} from './api-harness.js';

interface Client {
  id: string;
  headers: Record<string, string>;
  webhookSecret: string;
}

describe('ownership across two keys', () => {
  let h: Harness;
  let a: Client;
  let b: Client;
  let receiver: WebhookReceiver;
  let receiverUrl: string;
  let deliveries: WebhookReceiver['deliveries'];

  before(async () => {
    h = await startHarness({ env: { AUTH_MODE: 'keys' } });
    const client = async (name: string): Promise<Client> => {
      const { key, record } = await h.services.keyStore.create(name);
      return {
        id: record.id,
        headers: { authorization: `Bearer ${key}` },
        webhookSecret: record.webhook_secret as string,
      };
    };
    a = await client('tenant-a');
    b = await client('tenant-b');
    receiver = await startWebhookReceiver();
    ({ url: receiverUrl, deliveries } = receiver);
  });
  after(async () => {
    await receiver.close();
    await h.close();
    await closeSharedEngine();
  });

  const get = (client: Client, path: string) => fetch(`${h.baseUrl}${path}`, { headers: client.headers });

  function finished(client: Client, id: string): Promise<any> {
    return until(`generation ${id} finished`, async () => {
      const generation = await json(await get(client, `/generations/${id}`));
      return terminal(generation) ? generation : undefined;
    });
  }

  function completedEvent(id: string): Promise<WebhookDelivery> {
    return until(`the completed webhook of ${id}`, () =>
      deliveries.find((d) => JSON.parse(d.body).id === id && JSON.parse(d.body).event === 'completed'),
    );
  }

  test('another key gets 404 for get, cancel and delete, and does not see it listed', async () => {
    const response = await post(h.baseUrl, '/generations', { prompt: 'a red circle', candidates: 2, n: 1 }, a.headers);
    assert.equal(response.status, 202);
    const { id } = await json(response);

    for (const other of [
      await get(b, `/generations/${id}`),
      await post(h.baseUrl, `/generations/${id}/cancel`, {}, b.headers),
    ]) {
      assert.equal(other.status, 404);
      assert.equal((await json(other)).code, 'not_found');
    }
    const listedForB = await json(await get(b, '/generations'));
    assert.ok(!listedForB.data.some((g: any) => g.id === id));
    const listedForA = await json(await get(a, '/generations'));
    assert.deepEqual(
      listedForA.data.map((g: any) => g.id),
      [id],
    );

    const done = await finished(a, id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    // The images are reached only through the owner's view; their signed URLs need no key.
    assert.equal((await fetch(done.images[0].url)).status, 200);
    const deleteByB = await fetch(`${h.baseUrl}/generations/${id}`, { method: 'DELETE', headers: b.headers });
    assert.equal(deleteByB.status, 404);
    assert.equal((await get(a, `/generations/${id}`)).status, 200, 'B’s delete left it alone');
    assert.equal((await fetch(`${h.baseUrl}/generations/${id}`, { method: 'DELETE', headers: a.headers })).status, 204);
  });

  test('the same Idempotency-Key from two keys makes two generations', async () => {
    const headers = (client: Client) => ({ ...client.headers, 'idempotency-key': 'shared-retry-key' });
    const fromA = await post(h.baseUrl, '/generations', { prompt: 'a blue square', candidates: 1 }, headers(a));
    const fromB = await post(h.baseUrl, '/generations', { prompt: 'a green triangle', candidates: 1 }, headers(b));
    assert.equal(fromA.status, 202);
    assert.equal(fromB.status, 202, 'another body under the same key name is not a reuse across clients');
    const [idA, idB] = [(await json(fromA)).id, (await json(fromB)).id];
    assert.notEqual(idA, idB);
    const replay = await post(h.baseUrl, '/generations', { prompt: 'a blue square', candidates: 1 }, headers(a));
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal((await json(replay)).id, idA);
    await finished(a, idA);
    await finished(b, idB);
  });

  test('each key’s webhooks verify with its own secret and not with the other’s', async () => {
    const body = (prompt: string) => ({
      prompt,
      candidates: 1,
      webhook: receiverUrl,
      webhook_events_filter: ['completed'],
    });
    const idA = (await json(await post(h.baseUrl, '/generations', body('a webhook for A'), a.headers))).id;
    const idB = (await json(await post(h.baseUrl, '/generations', body('a webhook for B'), b.headers))).id;
    const eventA = await completedEvent(idA);
    const eventB = await completedEvent(idB);
    const headers = (event: WebhookDelivery) => ({
      'webhook-id': String(event.headers['webhook-id']),
      'webhook-timestamp': String(event.headers['webhook-timestamp']),
      'webhook-signature': String(event.headers['webhook-signature']),
    });
    const verifierA = new Webhook(a.webhookSecret);
    const verifierB = new Webhook(b.webhookSecret);
    assert.equal((verifierA.verify(eventA.body, headers(eventA)) as any).id, idA);
    assert.equal((verifierB.verify(eventB.body, headers(eventB)) as any).id, idB);
    assert.throws(
      () => verifierA.verify(eventB.body, headers(eventB)),
      /signature/i,
      'A’s secret cannot verify B’s webhook',
    );
    assert.throws(() => verifierB.verify(eventA.body, headers(eventA)), /signature/i);
  });
});
