// Deliveries against a real HTTP receiver on loopback; each test sets how it answers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { deliverWebhook } from '../../src/webhooks/deliver.js';
import { WebhookDeliveryError } from '../../src/webhooks/errors.js';
import { generateWebhookSecret } from '../../src/webhooks/secret.js';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Answer = (request: http.IncomingMessage, response: http.ServerResponse) => void;

describe('deliverWebhook', () => {
  const secret = generateWebhookSecret();
  const body = JSON.stringify({ event: 'completed', id: 'gen_1', status: 'succeeded' });
  let server: http.Server;
  let base: string;
  let received: Received[];
  let answer: Answer;

  before(async () => {
    server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        received.push({
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        answer(request, response);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    received = [];
    answer = (_request, response) => response.writeHead(204).end();
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function deliver(overrides: Partial<Parameters<typeof deliverWebhook>[0]> = {}) {
    return deliverWebhook({
      url: `${base}/hooks/dalle?token=t`,
      id: 'msg_1',
      body,
      secret,
      timeoutMs: 5000,
      ...overrides,
    });
  }

  async function failure(promise: Promise<unknown>): Promise<WebhookDeliveryError> {
    const error = await promise.then(
      () => assert.fail('delivery should have failed'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof WebhookDeliveryError, String(error));
    return error;
  }

  test('a 2xx answer resolves, and the receiver can verify the request', async () => {
    const result = await deliver();
    assert.equal(result.status, 204);
    assert.ok(result.durationMs >= 0);
    assert.equal(received.length, 1);
    const [request] = received;
    assert.equal(request.method, 'POST');
    assert.equal(request.path, '/hooks/dalle?token=t');
    assert.equal(request.body, body);
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['user-agent'], `dalle-serve-webhooks/${version}`);
    assert.equal(request.headers['webhook-id'], 'msg_1');
    assert.ok(Math.abs(Number(request.headers['webhook-timestamp']) - Date.now() / 1000) < 60);
    const verified = new Webhook(secret).verify(request.body, request.headers as Record<string, string>);
    assert.deepEqual(verified, JSON.parse(body));
  });

  test('a 500 is a retryable failure carrying the status', async () => {
    answer = (_request, response) => response.writeHead(500).end('boom');
    const error = await failure(deliver());
    assert.equal(error.retryable, true);
    assert.equal(error.status, 500);
    assert.match(error.message, /answered 500/);
  });

  test('408 and 429 are retryable; 400, 404 and 410 are not', async () => {
    for (const [status, retryable] of [
      [408, true],
      [429, true],
      [503, true],
      [400, false],
      [404, false],
      [410, false],
    ] as const) {
      answer = (_request, response) => response.writeHead(status).end();
      const error = await failure(deliver());
      assert.equal(error.status, status);
      assert.equal(error.retryable, retryable, String(status));
    }
  });

  test('a redirect is a failure and is not followed', async () => {
    answer = (request, response) => {
      if (request.url === '/elsewhere') response.writeHead(200).end();
      else response.writeHead(302, { location: `${base}/elsewhere` }).end();
    };
    const error = await failure(deliver());
    assert.equal(error.status, 302);
    assert.equal(error.retryable, false);
    assert.match(error.message, /redirects are not followed/);
    assert.deepEqual(
      received.map((request) => request.path),
      ['/hooks/dalle?token=t'],
    );
  });

  test('a receiver slower than the timeout is a retryable timeout', async () => {
    answer = (_request, response) => {
      setTimeout(() => response.writeHead(200).end(), 3000).unref();
    };
    const error = await failure(deliver({ timeoutMs: 200 }));
    assert.equal(error.retryable, true);
    assert.equal(error.status, undefined);
    assert.match(error.message, /timed out after 200 ms/);
  });

  test('an endless response body is cut off once the status is in', { timeout: 20_000 }, async () => {
    answer = (_request, response) => {
      response.writeHead(200);
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      const pump = (): void => {
        while (!response.destroyed && response.write(chunk));
        if (!response.destroyed) response.once('drain', pump);
      };
      pump();
    };
    // Reading to the end would never finish; the timeout is far past the test's own limit.
    const result = await deliver({ timeoutMs: 60_000 });
    assert.equal(result.status, 200);
  });

  test('a 2xx whose body dribbles past the timeout is delivered: the status is the answer', async () => {
    let stopped = false;
    answer = (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const dribble = setInterval(() => {
        if (response.destroyed || stopped) clearInterval(dribble);
        else response.write('.');
      }, 50);
      response.on('close', () => clearInterval(dribble));
    };
    try {
      // The body never ends; the timeout passes while it is still arriving.
      const result = await deliver({ timeoutMs: 300 });
      assert.equal(result.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 600));
    } finally {
      stopped = true;
    }
  });

  test('a refused connection is retryable and names the origin only', async () => {
    const error = await failure(deliver({ url: 'http://user:pass@127.0.0.1:1/hook?token=secret' }));
    assert.equal(error.retryable, true);
    assert.match(error.message, /http:\/\/127\.0\.0\.1:1 failed: ECONNREFUSED/);
    assert.doesNotMatch(error.message, /pass|secret/);
  });

  test('the caller can abort a delivery', async () => {
    answer = () => {};
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100).unref();
    const error = await failure(deliver({ signal: controller.signal }));
    assert.equal(error.retryable, true);
    assert.match(error.message, /was aborted/);
  });

  test('bad input fails without a request and is not retryable', async () => {
    const cases: Array<[Partial<Parameters<typeof deliverWebhook>[0]>, RegExp]> = [
      [{ url: 'ftp://127.0.0.1/hook' }, /absolute http\(s\) URL/],
      [{ url: 'not a url' }, /absolute http\(s\) URL/],
      [{ secret: 'whsec_short' }, /webhook secret/],
      [{ id: '' }, /webhook id/],
      [{ timeoutMs: 0 }, /timeoutMs must be a positive number/],
    ];
    for (const [overrides, message] of cases) {
      const error = await failure(deliver(overrides));
      assert.equal(error.retryable, false, String(message));
      assert.match(error.message, message);
    }
    assert.equal(received.length, 0);
  });

  test('with blockPrivateAddresses, loopback and private receivers are refused before any request', async () => {
    const port = new URL(base).port;
    const urls = [
      `${base}/hook`,
      `http://localhost:${port}/hook`,
      `http://[::1]:${port}/hook`,
      `http://[::ffff:127.0.0.1]:${port}/hook`,
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.8/hook',
    ];
    for (const url of urls) {
      const error = await failure(deliver({ url, blockPrivateAddresses: true }));
      assert.equal(error.retryable, false, url);
      assert.match(error.message, /not a public address/, url);
    }
    assert.equal(received.length, 0);
    assert.equal((await deliver({ blockPrivateAddresses: false })).status, 204, 'off by default and when false');
  });
});
