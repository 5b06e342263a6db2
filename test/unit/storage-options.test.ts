import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { assertValidKey, createObjectStore, isValidKey, type StorageOptions } from '../../src/storage/index.js';

const s3: Extract<StorageOptions, { kind: 's3' }> = {
  kind: 's3',
  endpoint: 'http://127.0.0.1:9000',
  region: 'us-east-1',
  bucket: 'images',
  forcePathStyle: true,
  accessKeyId: 'minio',
  secretAccessKey: 'minio-secret',
  presignExpiresSeconds: 3600,
  requestTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
};

describe('createObjectStore options', () => {
  test('an unknown kind names the valid ones', () => {
    assert.throws(
      () => createObjectStore({ kind: 'ftp' } as unknown as StorageOptions),
      /unknown storage kind "ftp": expected "fs" or "s3"/,
    );
  });

  test('s3 needs a bucket and a region', () => {
    assert.throws(() => createObjectStore({ ...s3, bucket: '' }), /needs a bucket/);
    assert.throws(() => createObjectStore({ ...s3, region: '' }), /needs a region/);
  });

  test('s3 credentials come in pairs', () => {
    assert.throws(
      () => createObjectStore({ ...s3, secretAccessKey: undefined }),
      /both accessKeyId and secretAccessKey/,
    );
    assert.throws(() => createObjectStore({ ...s3, accessKeyId: undefined }), /both accessKeyId and secretAccessKey/);
    assert.ok(createObjectStore({ ...s3, accessKeyId: undefined, secretAccessKey: undefined }));
  });

  test('s3 presigned lifetimes stay within what SigV4 allows', () => {
    for (const presignExpiresSeconds of [0, -5, 1.5, 604_801]) {
      assert.throws(
        () => createObjectStore({ ...s3, presignExpiresSeconds }),
        /presignExpiresSeconds must be 1 to 604800/,
      );
    }
    assert.ok(createObjectStore({ ...s3, presignExpiresSeconds: 604_800 }));
  });

  test('s3 timeouts are positive whole milliseconds', () => {
    assert.throws(
      () => createObjectStore({ ...s3, requestTimeoutMs: 0 }),
      /requestTimeoutMs must be a positive whole number of ms, got 0/,
    );
    assert.throws(
      () => createObjectStore({ ...s3, connectTimeoutMs: 2.5 }),
      /connectTimeoutMs must be a positive whole number of ms, got 2.5/,
    );
  });

  test('s3 endpoint and public base URL must be absolute http(s) URLs', () => {
    assert.throws(() => createObjectStore({ ...s3, endpoint: 'minio:9000' }), /s3 storage endpoint must be/);
    assert.throws(
      () => createObjectStore({ ...s3, publicBaseUrl: 'cdn.example.com' }),
      /s3 storage publicBaseUrl must be/,
    );
  });
});

describe('object keys', () => {
  test('ordinary keys are accepted', () => {
    for (const key of ['a', 'generations/0190a1b2-c3d4/1.png', 'A_b-c.d/e', 'x/y/z/w.webp', 'a..b', 'x'.repeat(512)]) {
      assert.equal(isValidKey(key), true, key);
    }
  });

  test('a refused key gets a message that names it and the rule', () => {
    assert.throws(
      () => assertValidKey('a/../b'),
      /invalid object key "a\/\.\.\/b": each "\/"-separated part must be non-empty/,
    );
    assert.throws(() => assertValidKey(''), /invalid object key "": expected 1 to 512 characters/);
    assert.throws(() => assertValidKey(7), /invalid object key number/);
  });
});
