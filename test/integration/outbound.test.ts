// The outbound policy against real loopback servers: image URLs to classify and webhook
// receivers on internal addresses are refused unless OUTBOUND_ALLOW names them, after DNS and
// on every redirect; a refused request never reaches the server.
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import {
  EMPTY_ALLOW_LIST,
  OutboundFetchError,
  OutboundRefusedError,
  outboundGet,
  parseAllowList,
} from '../../src/net/outbound.js';
import {
  WEBHOOK_SECRET as SECRET,
  type Harness,
  closeSharedEngine,
  json,
  post,
  startHarness,
  terminal,
  waitFor,
} from './api-harness.js';
import { deliverWebhook } from '../../src/webhooks/deliver.js';
import { WebhookDeliveryError } from '../../src/webhooks/errors.js';

const LOOPBACK = parseAllowList('127.0.0.1');
const limits = { timeoutMs: 5000, maxBytes: 1024 * 1024 };

describe('outbound policy', () => {
  let server: Server;
  let base: string;
  let port: number;
  const hits: string[] = [];
  let png: Buffer;

  before(async () => {
    png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#ff0000' } })
      .png()
      .toBuffer();
    server = createServer((request, response) => {
      hits.push(`${request.method} ${request.url}`);
      const url = request.url ?? '';
      if (url === '/red.png') return response.writeHead(200, { 'content-type': 'image/png' }).end(png);
      if (url.startsWith('/redirect?to='))
        return response.writeHead(302, { location: decodeURIComponent(url.slice(13)) }).end();
      if (url === '/loop') return response.writeHead(302, { location: '/loop' }).end();
      if (url === '/big') return response.writeHead(200).end(Buffer.alloc(2 * 1024 * 1024));
      if (url === '/hook') {
        request.resume();
        return response.writeHead(204).end();
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    base = `http://127.0.0.1:${port}`;
  });
  after(() => server.close());

  test('a loopback image URL is refused without the allow-list and fetched with it', async () => {
    hits.length = 0;
    await assert.rejects(outboundGet(`${base}/red.png`, { ...limits, allow: EMPTY_ALLOW_LIST }), OutboundRefusedError);
    assert.deepEqual(hits, [], 'the server saw nothing');
    const { bytes } = await outboundGet(`${base}/red.png`, { ...limits, allow: LOOPBACK });
    assert.deepEqual(Buffer.from(bytes), png);
  });

  test('a name resolving to 127.0.0.1 (localhost) is refused when connecting', async () => {
    hits.length = 0;
    await assert.rejects(
      outboundGet(`http://localhost:${port}/red.png`, { ...limits, allow: EMPTY_ALLOW_LIST }),
      (error: Error) => error instanceof OutboundRefusedError && /localhost is (127\.0\.0\.1|::1)/.test(error.message),
    );
    assert.deepEqual(hits, []);
  });

  test('every redirect is re-checked: from an allowed host to a refused one fails', async () => {
    hits.length = 0;
    for (const to of [
      'http://169.254.169.254/latest/meta-data/',
      'http://127.0.0.2/x',
      `http://[::1]:${port}/red.png`,
      `http://localhost:${port}/red.png`,
      'file:///etc/passwd',
    ]) {
      const allow = to.includes('localhost') ? parseAllowList('127.0.0.1/32') : LOOPBACK;
      // localhost is refused unless every address it resolves to is allowed; ::1 is not here.
      const url = `${base}/redirect?to=${encodeURIComponent(to)}`;
      if (to.includes('localhost')) {
        const outcome = await outboundGet(url, { ...limits, allow }).then(
          () => 'fetched',
          (error) => error,
        );
        // Where localhost is 127.0.0.1 alone, it is allowed; where it also has ::1, refused.
        assert.ok(outcome === 'fetched' || outcome instanceof OutboundRefusedError, String(outcome));
        continue;
      }
      await assert.rejects(outboundGet(url, { ...limits, allow }), OutboundRefusedError, to);
    }
    assert.ok(
      hits.every((hit) => hit.startsWith('GET /redirect') || hit === 'GET /red.png'),
      hits.join(),
    );
    // Allowed redirects are followed, a few at most.
    const { bytes } = await outboundGet(`${base}/redirect?to=${encodeURIComponent('/red.png')}`, {
      ...limits,
      allow: LOOPBACK,
    });
    assert.equal(bytes.length, png.length);
    await assert.rejects(outboundGet(`${base}/loop`, { ...limits, allow: LOOPBACK }), /more than 3 redirects/);
  });

  test('size limits on every fetch', async () => {
    await assert.rejects(
      outboundGet(`${base}/big`, { ...limits, allow: LOOPBACK }),
      (error: Error) => error instanceof OutboundFetchError && /larger than/.test(error.message),
    );
    await assert.rejects(outboundGet(`${base}/nothing`, { ...limits, allow: LOOPBACK }), /HTTP 404/);
  });

  test('webhooks: a receiver on loopback or behind a name is refused when connecting, and final', async () => {
    hits.length = 0;
    const delivery = { id: 'msg_1', body: '{}', secret: SECRET, timeoutMs: 5000, blockPrivateAddresses: true };
    for (const url of [`${base}/hook`, `http://localhost:${port}/hook`]) {
      const error = await deliverWebhook({ ...delivery, url }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(
        error instanceof WebhookDeliveryError && !error.retryable && /not a public address/.test(error.message),
        `${url}: ${error}`,
      );
    }
    assert.deepEqual(hits, []);
    assert.equal((await deliverWebhook({ ...delivery, url: `${base}/hook`, allow: LOOPBACK })).status, 204);
  });

  describe('through the API', () => {
    let h: Harness;
    before(async () => {
      h = await startHarness({ env: { OUTBOUND_ALLOW: '' } });
    });
    after(async () => {
      await h.close();
      await closeSharedEngine();
    });

    test('classify: a loopback URL is 400 url_not_allowed naming the field', async () => {
      hits.length = 0;
      for (const url of [`${base}/red.png`, `http://localhost:${port}/red.png`, `${base}/redirect?to=x`]) {
        const response = await post(h.baseUrl, '/clip/classify', { image: { url }, labels: ['red', 'blue'] });
        const body = await json(response);
        assert.equal(response.status, 400, url);
        assert.equal(body.code, 'url_not_allowed');
        assert.equal(body.errors[0].field, 'image.url');
        // The message names the ways round the refusal.
        assert.match(body.detail, /base64.*multipart upload.*OUTBOUND_ALLOW/);
      }
      assert.deepEqual(hits, []);
    });

    test('webhooks: a literal internal address is refused at POST; a name resolving to one fails at delivery, not retried', async () => {
      const literal = await post(h.baseUrl, '/generations', { prompt: 'x', webhook: `${base}/hook` });
      assert.equal(literal.status, 400);
      assert.equal((await json(literal)).code, 'url_not_allowed');
      hits.length = 0;
      const accepted = await json(
        await post(h.baseUrl, '/generations', {
          prompt: 'a red circle',
          candidates: 1,
          n: 1,
          webhook: `http://localhost:${port}/hook`,
          webhook_events_filter: ['completed'],
        }),
      );
      assert.equal((await waitFor(h.baseUrl, accepted.id, terminal)).status, 'succeeded');
      const job = await (async () => {
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline) {
          const found = await h.services.queues.get('webhooks').getJob(`${accepted.id}-completed`);
          if (found && (await found.getState()) === 'failed') return found;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error('the webhook job did not fail');
      })();
      assert.equal(job.attemptsMade, 1, 'not retried');
      assert.match(job.failedReason, /not a public address/);
      assert.deepEqual(hits, []);
    });
  });
});
