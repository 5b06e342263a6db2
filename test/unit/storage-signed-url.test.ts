import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { verifyFileSignature } from '../../src/storage/index.js';

const SECRET = 'signed-url-test-secret-0123456789';
const KEY = 'generations/g1/1.png';
const EXPIRES = '1800000000';
const NOW = new Date(1_700_000_000_000);

/** The documented format: hex HMAC-SHA256 of `<key>\n<expires>`. */
function signature(key: string, expires: string, secret = SECRET): string {
  return createHmac('sha256', secret).update(`${key}\n${expires}`).digest('hex');
}

describe('verifyFileSignature', () => {
  test('accepts the signature of this key and expiry before it expires', () => {
    assert.equal(verifyFileSignature(SECRET, KEY, EXPIRES, signature(KEY, EXPIRES), NOW), true);
  });

  test('refuses at and after the expiry second', () => {
    const sig = signature(KEY, EXPIRES);
    assert.equal(verifyFileSignature(SECRET, KEY, EXPIRES, sig, new Date(Number(EXPIRES) * 1000 - 1)), true);
    assert.equal(verifyFileSignature(SECRET, KEY, EXPIRES, sig, new Date(Number(EXPIRES) * 1000)), false);
    assert.equal(verifyFileSignature(SECRET, KEY, EXPIRES, sig, new Date(Number(EXPIRES) * 1000 + 60_000)), false);
  });

  test('refuses a signature for another key, another expiry or another secret', () => {
    const sig = signature(KEY, EXPIRES);
    assert.equal(verifyFileSignature(SECRET, 'generations/g1/2.png', EXPIRES, sig, NOW), false);
    assert.equal(verifyFileSignature(SECRET, KEY, '1900000000', sig, NOW), false);
    assert.equal(verifyFileSignature('another-secret-0123456789', KEY, EXPIRES, sig, NOW), false);
  });

  test('a key ending in digits cannot borrow digits from the expiry', () => {
    // Without a separator, key "a1" + expires "1800000000" would sign the same text as
    // key "a" + expires "11800000000".
    const sig = signature('a1', '1800000000');
    assert.equal(verifyFileSignature(SECRET, 'a', '11800000000', sig, NOW), false);
  });

  test('malformed input from a request is false, never an exception', () => {
    const sig = signature(KEY, EXPIRES);
    const cases: Array<[string, string, string]> = [
      [KEY, EXPIRES, sig.toUpperCase()],
      [KEY, EXPIRES, sig.slice(0, 63)],
      [KEY, EXPIRES, `${sig}00`],
      [KEY, EXPIRES, ''],
      [KEY, '', sig],
      [KEY, '1.8e9', sig],
      [KEY, '-1800000000', sig],
      [KEY, ` ${EXPIRES}`, sig],
      [KEY, '9'.repeat(13), signature(KEY, '9'.repeat(13))],
    ];
    for (const [key, expires, candidate] of cases) {
      assert.equal(verifyFileSignature(SECRET, key, expires, candidate, NOW), false, `${expires} ${candidate}`);
    }
    const notStrings = [undefined, null, 42, ['a']] as unknown as string[];
    for (const value of notStrings) {
      assert.equal(verifyFileSignature(SECRET, value, EXPIRES, sig, NOW), false);
      assert.equal(verifyFileSignature(SECRET, KEY, value, sig, NOW), false);
      assert.equal(verifyFileSignature(SECRET, KEY, EXPIRES, value, NOW), false);
    }
  });

  test('a correctly signed but invalid key is still refused', () => {
    const key = '../../etc/passwd';
    assert.equal(verifyFileSignature(SECRET, key, EXPIRES, signature(key, EXPIRES), NOW), false);
  });
});
