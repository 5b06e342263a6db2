// One behavioural suite, two backends: the folder store (its signed URLs served by a small
// loopback file server, as the API does) and the S3 store against s3rver on loopback.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  InvalidStorageArgumentError,
  createObjectStore,
  verifyFileSignature,
  type ObjectStore,
  type S3StorageOptions,
} from '../../src/storage/index.js';

// s3rver runs in its own process: its ListObjectsV2 continuation tokens use DES, which
// Node's OpenSSL 3 only offers with the legacy provider, a flag for the whole process.
const S3RVER_MAIN = createRequire(import.meta.url).resolve('s3rver');
const S3RVER_SCRIPT = `
const [main, directory, bucket] = process.argv.slice(1);
const S3rver = require(main);
const server = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: bucket }] });
server.run().then(({ port }) => console.log(port));
// Exits when the test process goes away, even if it dies before stopping this one.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

async function startS3rver(directory: string, bucket: string): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', S3RVER_SCRIPT, S3RVER_MAIN, directory, bucket],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const exited = once(child, 'exit');
  const [firstLine] = (await once(child.stdout, 'data')) as [Buffer];
  const port = Number(firstLine.toString().trim());
  assert.ok(port > 0, `s3rver did not report its port: ${firstLine.toString()}`);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      child.stdin.end();
      await exited;
    },
  };
}

const SIGNING_SECRET = 'test-signing-secret-0123456789';
const BUCKET = 'images';

interface Backend {
  name: string;
  store: ObjectStore;
  /** The base that url() results start with. */
  urlBase: string;
  close(): Promise<void>;
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The folder store behind the same signed `/files/<key>` route the API serves. */
async function startFsBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'storage-fs-'));
  // eslint-disable-next-line prefer-const -- the server below reads it, and is created first
  let store: ObjectStore | undefined;
  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const key = url.pathname.replace(/^\/files\//, '');
    const { expires = '', signature = '' } = Object.fromEntries(url.searchParams);
    if (!verifyFileSignature(SIGNING_SECRET, key, expires, signature)) {
      response.writeHead(403).end();
      return;
    }
    const object = await store!.get(key);
    if (!object) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': object.contentType }).end(object.body);
  });
  const base = await listen(server);
  store = createObjectStore({ kind: 'fs', dir, publicBaseUrl: base, signingSecret: SIGNING_SECRET });
  return {
    name: 'fs',
    store,
    urlBase: `${base}/files/`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The S3 store's options for an endpoint on loopback (s3rver's credentials). */
function s3Options(endpoint: string, overrides: Partial<S3StorageOptions> = {}): S3StorageOptions {
  return {
    kind: 's3',
    endpoint,
    region: 'us-east-1',
    bucket: BUCKET,
    forcePathStyle: true,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    presignExpiresSeconds: 3600,
    requestTimeoutMs: 30_000,
    connectTimeoutMs: 5_000,
    ...overrides,
  };
}

async function startS3Backend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'storage-s3-'));
  const { endpoint, stop } = await startS3rver(dir, BUCKET);
  const store = createObjectStore(s3Options(endpoint));
  return {
    name: 's3',
    store,
    urlBase: `${endpoint}/${BUCKET}/`,
    close: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function fetchBytes(url: string): Promise<{ status: number; body: Uint8Array; contentType: string | null }> {
  const response = await fetch(url);
  return {
    status: response.status,
    body: new Uint8Array(await response.arrayBuffer()),
    contentType: response.headers.get('content-type'),
  };
}

const HOSTILE_KEYS = [
  '../outside.png',
  'a/../../outside.png',
  '/etc/passwd',
  'a\\..\\b.png',
  'a//b.png',
  'a/./b.png',
  '.hidden',
  'a/',
  '',
  'a b.png',
  'a\nb.png',
  '%2e%2e/x.png',
  'caf\u00e9.png',
  'x'.repeat(600),
];

for (const start of [startFsBackend, startS3Backend]) {
  describe(`ObjectStore contract: ${start === startFsBackend ? 'fs' : 's3'}`, () => {
    let backend: Backend;
    let store: ObjectStore;
    before(async () => {
      backend = await start();
      store = backend.store;
    });
    after(async () => backend.close());

    test('put then get returns the same bytes and content type', async () => {
      const body = new Uint8Array(256).map((_, index) => index);
      await store.put('generations/g1/1.png', body, 'image/png');
      assert.deepEqual(await store.get('generations/g1/1.png'), { body, contentType: 'image/png' });
    });

    test('a second put replaces the object and its content type', async () => {
      await store.put('replace/x', new Uint8Array([1, 2, 3]), 'image/png');
      await store.put('replace/x', new Uint8Array([9]), 'image/webp');
      assert.deepEqual(await store.get('replace/x'), { body: new Uint8Array([9]), contentType: 'image/webp' });
    });

    test('a large object round-trips', async () => {
      const body = new Uint8Array(randomBytes(3 * 1024 * 1024));
      await store.put('large/blob.bin', body, 'application/octet-stream');
      const object = await store.get('large/blob.bin');
      assert.ok(object);
      assert.equal(Buffer.compare(object.body, body), 0);
    });

    test('a missing key reads as null', async () => {
      assert.equal(await store.get('missing/nothing.png'), null);
      await store.put('missing/present.png', new Uint8Array([1]), 'image/png');
      assert.equal(await store.get('missing'), null);
    });

    test('delete removes the object, and deleting a missing one is fine', async () => {
      await store.put('delete/one.png', new Uint8Array([1]), 'image/png');
      await store.delete('delete/one.png');
      assert.equal(await store.get('delete/one.png'), null);
      await store.delete('delete/one.png');
      await store.delete('delete/never-existed.png');
    });

    test('deletePrefix removes exactly the keys that start with the prefix', async () => {
      const keys = ['dp/job-1/1.png', 'dp/job-1/2.png', 'dp/job-10/1.png', 'dp/job-2/1.png', 'dp/job-1.json'];
      for (const key of keys) await store.put(key, new Uint8Array([7]), 'image/png');
      assert.equal(await store.deletePrefix('dp/job-1/'), 2);
      assert.equal(await store.get('dp/job-1/1.png'), null);
      assert.ok(await store.get('dp/job-10/1.png'));
      // A prefix is a string prefix, not a folder: "dp/job-1" also covers job-10 and job-1.json.
      assert.equal(await store.deletePrefix('dp/job-1'), 2);
      assert.equal(await store.get('dp/job-1.json'), null);
      assert.ok(await store.get('dp/job-2/1.png'));
      assert.equal(await store.deletePrefix('dp/job-1'), 0);
      assert.equal(await store.deletePrefix('nothing-here/'), 0);
    });

    test('url() serves the bytes over HTTP until it expires', async () => {
      const body = new Uint8Array(randomBytes(1000));
      await store.put('urls/a.png', body, 'image/png');
      const before = Date.now();
      const { url, expiresAt } = await store.url('urls/a.png', 600);
      assert.ok(url.startsWith(`${backend.urlBase}urls/a.png?`), url);
      assert.ok(Math.abs(expiresAt.getTime() - (before + 600_000)) < 5_000, expiresAt.toISOString());
      const fetched = await fetchBytes(url);
      assert.equal(fetched.status, 200);
      assert.equal(Buffer.compare(fetched.body, body), 0);
      assert.equal(fetched.contentType, 'image/png');
    });

    test('a url() stops serving once it has expired', async () => {
      await store.put('urls/short.png', new Uint8Array([1]), 'image/png');
      const { url, expiresAt } = await store.url('urls/short.png', 1);
      assert.equal((await fetchBytes(url)).status, 200);
      await sleep(expiresAt.getTime() - Date.now() + 1100);
      assert.equal((await fetchBytes(url)).status, 403);
    });

    test('hostile keys are refused by every method', async () => {
      for (const key of HOSTILE_KEYS) {
        const name = JSON.stringify(key.slice(0, 20));
        await assert.rejects(store.put(key, new Uint8Array([1]), 'image/png'), InvalidStorageArgumentError, name);
        await assert.rejects(store.get(key), InvalidStorageArgumentError, name);
        await assert.rejects(store.delete(key), InvalidStorageArgumentError, name);
        await assert.rejects(store.url(key, 60), InvalidStorageArgumentError, name);
      }
      for (const prefix of ['', '../', '/', 'a/../', 'a\\b', '.']) {
        await assert.rejects(store.deletePrefix(prefix), InvalidStorageArgumentError, JSON.stringify(prefix));
      }
    });

    test('bad content types, bodies and lifetimes are refused with a clear message', async () => {
      await assert.rejects(
        store.put('bad/ct.png', new Uint8Array([1]), 'image/png\r\nx-evil: 1'),
        /invalid content type/,
      );
      await assert.rejects(store.put('bad/ct.png', new Uint8Array([1]), ''), /invalid content type/);
      await assert.rejects(
        store.put('bad/body.png', 'text' as unknown as Uint8Array, 'image/png'),
        /expected a Uint8Array/,
      );
      for (const lifetime of [0, -1, 1.5, Number.NaN]) {
        await assert.rejects(store.url('bad/ct.png', lifetime), /invalid URL lifetime/);
      }
      assert.equal(await store.get('bad/ct.png'), null);
    });

    test('content types with parameters round-trip', async () => {
      await store.put('types/data.json', new TextEncoder().encode('{}'), 'application/json; charset=utf-8');
      assert.equal((await store.get('types/data.json'))?.contentType, 'application/json; charset=utf-8');
    });
  });
}

describe('S3 store specifics', () => {
  let backend: Backend;
  before(async () => {
    backend = await startS3Backend();
  });
  after(async () => backend.close());

  function storeWith(options: { publicBaseUrl?: string; presignExpiresSeconds?: number }): ObjectStore {
    return createObjectStore(
      s3Options(new URL(backend.urlBase).origin, {
        presignExpiresSeconds: options.presignExpiresSeconds ?? 3600,
        ...(options.publicBaseUrl ? { publicBaseUrl: options.publicBaseUrl } : {}),
      }),
    );
  }

  test('presigned URLs are SigV4 and never outlive presignExpiresSeconds', async () => {
    const store = storeWith({ presignExpiresSeconds: 60 });
    await store.put('presign/a.png', new Uint8Array([5]), 'image/png');
    const started = Date.now();
    const { url, expiresAt } = await store.url('presign/a.png', 3600);
    const query = new URL(url).searchParams;
    assert.equal(query.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
    assert.equal(query.get('X-Amz-Expires'), '60');
    assert.match(query.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
    assert.ok(Math.abs(expiresAt.getTime() - (started + 60_000)) < 5_000);
    assert.deepEqual((await fetchBytes(url)).body, new Uint8Array([5]));
  });

  test('with a public base URL, url() is that base plus the key', async () => {
    const publicBaseUrl = `${backend.urlBase}`; // s3rver serves anonymous reads, like a public bucket
    const store = storeWith({ publicBaseUrl });
    await store.put('public/a.png', new Uint8Array([6, 7]), 'image/png');
    const { url } = await store.url('public/a.png', 600);
    assert.equal(url, `${backend.urlBase}public/a.png`);
    assert.deepEqual((await fetchBytes(url)).body, new Uint8Array([6, 7]));
  });

  test('deletePrefix pages through more than one listing of 1000 keys', async () => {
    const keys = Array.from({ length: 1001 }, (_, index) => `many/${String(index).padStart(4, '0')}.png`);
    for (let index = 0; index < keys.length; index += 25) {
      await Promise.all(
        keys.slice(index, index + 25).map((key) => backend.store.put(key, new Uint8Array([1]), 'image/png')),
      );
    }
    assert.equal(await backend.store.deletePrefix('many/'), 1001);
    assert.equal(await backend.store.get('many/1000.png'), null);
    assert.equal(await backend.store.get('many/0000.png'), null);
  });

  test('an unreachable endpoint fails loudly rather than reading as missing', async () => {
    const store = createObjectStore(s3Options('http://127.0.0.1:1'));
    await assert.rejects(store.get('any/key.png'), /ECONNREFUSED/);
  });

  test('an endpoint that accepts but never answers fails with a timeout instead of hanging', async () => {
    // Reads every request and never replies, as a wedged proxy or store would.
    const silent = http.createServer(() => {});
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const store = createObjectStore(s3Options(endpoint, { requestTimeoutMs: 200 }));
      await assert.rejects(
        store.put('hung/a.png', new Uint8Array([1]), 'image/png'),
        (error: Error) => error.name === 'TimeoutError',
      );
      await assert.rejects(store.get('hung/a.png'), (error: Error) => error.name === 'TimeoutError');
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
