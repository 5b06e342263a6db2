import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { generateWebhookSecret, parseWebhookSecret } from '../../src/webhooks/secret.js';
import { signWebhook } from '../../src/webhooks/sign.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BODY = JSON.stringify({ event: 'completed', id: 'gen_1', prompt: 'an armchair shaped like an avocado — ☕' });

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

describe('signWebhook', () => {
  test('produces exactly the three Standard Webhooks headers', () => {
    const headers = signWebhook(SECRET, 'msg_1', 1_700_000_000, BODY);
    assert.deepEqual(Object.keys(headers).sort(), ['webhook-id', 'webhook-signature', 'webhook-timestamp']);
    assert.equal(headers['webhook-id'], 'msg_1');
    assert.equal(headers['webhook-timestamp'], '1700000000');
    assert.match(headers['webhook-signature'], /^v1,[A-Za-z0-9+/]{43}=$/);
  });

  test('matches the standardwebhooks library signature and passes its verify', () => {
    const timestamp = nowSeconds();
    const headers = signWebhook(SECRET, 'msg_2', timestamp, BODY);
    const library = new Webhook(SECRET);
    assert.equal(headers['webhook-signature'], library.sign('msg_2', new Date(timestamp * 1000), BODY));
    assert.deepEqual(library.verify(BODY, headers), JSON.parse(BODY));
  });

  test('verification fails when the body, id or timestamp is changed', () => {
    const timestamp = nowSeconds();
    const headers = signWebhook(SECRET, 'msg_3', timestamp, BODY);
    const library = new Webhook(SECRET);
    assert.throws(() => library.verify(`${BODY} `, headers));
    assert.throws(() => library.verify(BODY, { ...headers, 'webhook-id': 'msg_4' }));
    assert.throws(() => library.verify(BODY, { ...headers, 'webhook-timestamp': String(timestamp + 1) }));
    assert.throws(() => new Webhook(generateWebhookSecret()).verify(BODY, headers));
  });

  test('a bad secret is refused with a message that says what is wrong', () => {
    const cases: Array<[unknown, RegExp]> = [
      ['MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', /must start with "whsec_"/],
      ['', /must start with "whsec_"/],
      [undefined, /must start with "whsec_"/],
      ['whsec_not base64!', /must be padded base64/],
      ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS', /must be padded base64/],
      ['whsec_c2hvcnQ=', /must encode 24 to 64 bytes, got 5/],
      [`whsec_${Buffer.alloc(65).toString('base64')}`, /must encode 24 to 64 bytes, got 65/],
    ];
    for (const [secret, message] of cases) {
      assert.throws(() => signWebhook(secret as string, 'msg_1', 1, BODY), message, String(secret));
    }
  });

  test('the id must be a header-safe string and the timestamp whole seconds', () => {
    assert.throws(() => signWebhook(SECRET, '', 1, BODY), /webhook id must be 1 to 256 visible ASCII/);
    assert.throws(() => signWebhook(SECRET, 'msg\r\nx-evil: 1', 1, BODY), /webhook id/);
    assert.throws(() => signWebhook(SECRET, 'msg 1', 1, BODY), /webhook id/);
    assert.throws(() => signWebhook(SECRET, 'msg_1', 1.5, BODY), /whole unix seconds, got 1.5/);
    assert.throws(() => signWebhook(SECRET, 'msg_1', -1, BODY), /whole unix seconds/);
    assert.throws(() => signWebhook(SECRET, 'msg_1', 1, { a: 1 } as unknown as string), /body must be a string/);
  });
});

describe('generateWebhookSecret', () => {
  test('is whsec_ plus 24 random bytes that sign and verify', () => {
    const secret = generateWebhookSecret();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{32}$/);
    assert.equal(parseWebhookSecret(secret).length, 24);
    assert.notEqual(generateWebhookSecret(), secret);
    const headers = signWebhook(secret, 'msg_1', nowSeconds(), BODY);
    assert.deepEqual(new Webhook(secret).verify(BODY, headers), JSON.parse(BODY));
  });
});
