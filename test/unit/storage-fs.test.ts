import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InvalidStorageArgumentError, createFsStore, verifyFileSignature } from '../../src/storage/index.js';
import type { ObjectStore } from '../../src/storage/index.js';

const SECRET = 'fs-store-test-secret-0123456789';

async function listTree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

describe('folder store', () => {
  let root: string;
  let dir: string;
  let store: ObjectStore;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fs-store-'));
    dir = join(root, 'objects');
    store = createFsStore({ kind: 'fs', dir, publicBaseUrl: 'http://example.test/api/', signingSecret: SECRET });
  });
  after(async () => rm(root, { recursive: true, force: true }));

  test('a hostile key never reaches outside the folder', async () => {
    await writeFile(join(root, 'outside.png'), 'original');
    await mkdir(join(root, 'sibling'));
    await writeFile(join(root, 'sibling', 'x.png'), 'original');
    const hostile = [
      '../outside.png',
      '../sibling/x.png',
      'a/../../outside.png',
      `${root}/outside.png`,
      '..\\outside.png',
      'a/..',
      '..',
      './../outside.png',
    ];
    for (const key of hostile) {
      await assert.rejects(store.put(key, new Uint8Array([1]), 'image/png'), InvalidStorageArgumentError, key);
      await assert.rejects(store.get(key), InvalidStorageArgumentError, key);
      await assert.rejects(store.delete(key), InvalidStorageArgumentError, key);
      await assert.rejects(store.deletePrefix(key), InvalidStorageArgumentError, key);
    }
    await assert.rejects(store.deletePrefix('../'), InvalidStorageArgumentError);
    assert.equal(await readFile(join(root, 'outside.png'), 'utf8'), 'original');
    assert.deepEqual(await listTree(root), ['outside.png', 'sibling/x.png']);
  });

  test('the content type lives in a hidden sidecar and survives a new store instance', async () => {
    await store.put('sidecar/1.png', new Uint8Array([1, 2]), 'image/png');
    assert.deepEqual(await readdir(join(dir, 'sidecar')), ['.1.png.type', '1.png'].sort());
    assert.equal(await readFile(join(dir, 'sidecar', '.1.png.type'), 'utf8'), 'image/png');
    const reopened = createFsStore({ kind: 'fs', dir, publicBaseUrl: 'http://example.test', signingSecret: SECRET });
    assert.deepEqual(await reopened.get('sidecar/1.png'), { body: new Uint8Array([1, 2]), contentType: 'image/png' });
    await reopened.delete('sidecar/1.png');
    assert.deepEqual(await readdir(join(dir, 'sidecar')), []);
  });

  test('an object written without its sidecar reads as application/octet-stream', async () => {
    await mkdir(join(dir, 'bare'), { recursive: true });
    await writeFile(join(dir, 'bare', 'file.bin'), 'abc');
    assert.equal((await store.get('bare/file.bin'))?.contentType, 'application/octet-stream');
  });

  test('readers see the old object or the new one, never a partial write', async () => {
    const size = 2 * 1024 * 1024;
    const first = new Uint8Array(size).fill(0xaa);
    const second = new Uint8Array(size).fill(0xbb);
    await store.put('atomic/big.bin', first, 'application/octet-stream');
    let writing = true;
    const writer = (async () => {
      for (let round = 0; round < 20; round += 1) {
        await store.put('atomic/big.bin', round % 2 === 0 ? second : first, 'application/octet-stream');
      }
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const object = await store.get('atomic/big.bin');
      assert.ok(object, 'the object never disappears while it is rewritten');
      assert.equal(object.body.length, size);
      assert.ok(
        object.body.every((byte) => byte === object.body[0]),
        'a read mixed two writes',
      );
      reads += 1;
    }
    await writer;
    assert.ok(reads > 0);
    assert.deepEqual(await readdir(join(dir, 'atomic')), ['.big.bin.type', 'big.bin'], 'no temp files left behind');
  });

  test('"a" and "a/b" cannot both be keys in a folder, and the error says so', async () => {
    await store.put('clash/a', new Uint8Array([1]), 'text/plain');
    await assert.rejects(store.put('clash/a/b', new Uint8Array([1]), 'text/plain'), /cannot hold both/);
    await store.put('clash2/a/b', new Uint8Array([1]), 'text/plain');
    await assert.rejects(store.put('clash2/a', new Uint8Array([1]), 'text/plain'), /cannot hold both/);
    assert.equal(await store.get('clash2/a'), null);
    await store.delete('clash2/a');
    assert.ok(await store.get('clash2/a/b'), 'deleting a folder-shaped key removes nothing');
  });

  test('deletePrefix removes emptied folders and the sidecars', async () => {
    await store.put('tree/job/1.png', new Uint8Array([1]), 'image/png');
    await store.put('tree/job/nested/2.png', new Uint8Array([1]), 'image/png');
    assert.equal(await store.deletePrefix('tree/job/'), 2);
    assert.deepEqual(await readdir(join(dir, 'tree')), []);
  });

  test('deletePrefix by name takes the hidden files of writes cut short too, and nothing else', async () => {
    await store.put('names/a1-1.png', new Uint8Array([1]), 'image/png');
    await store.put('names/a2-1.png', new Uint8Array([1]), 'image/png');
    // What a process killed mid-put leaves: the object's temp file, or its sidecar's.
    await writeFile(join(dir, 'names', '.a1-2.png.0123456789ab.tmp'), 'cut short');
    await writeFile(join(dir, 'names', '..a1-3.png.type.0123456789ab.tmp'), 'cut short');
    assert.equal(await store.deletePrefix('names/a1-'), 1);
    assert.deepEqual((await readdir(join(dir, 'names'))).sort(), ['.a2-1.png.type', 'a2-1.png']);
  });

  test('url() is the signed /files/ route under the public base URL', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { url, expiresAt } = await store.url('generations/g1/1.png', 900);
    const match =
      /^http:\/\/example\.test\/api\/files\/generations\/g1\/1\.png\?expires=(\d+)&signature=([0-9a-f]{64})$/.exec(url);
    assert.ok(match, url);
    const [, expires, signature] = match;
    assert.ok(Number(expires) >= before + 900 && Number(expires) <= before + 902);
    assert.equal(expiresAt.getTime(), Number(expires) * 1000);
    assert.equal(verifyFileSignature(SECRET, 'generations/g1/1.png', expires, signature), true);
    assert.equal(verifyFileSignature(SECRET, 'generations/g1/2.png', expires, signature), false);
  });
});

describe('folder store options', () => {
  const valid = {
    kind: 'fs',
    dir: '/tmp/unused',
    publicBaseUrl: 'http://localhost:3000',
    signingSecret: SECRET,
  } as const;

  test('a short signing secret is refused', () => {
    assert.throws(() => createFsStore({ ...valid, signingSecret: 'short' }), /at least 16 characters/);
  });

  test('a public base URL must be absolute http(s)', () => {
    for (const publicBaseUrl of ['localhost:3000', '/relative', 'ftp://host', 'http://host/?q=1', '']) {
      assert.throws(
        () => createFsStore({ ...valid, publicBaseUrl }),
        /publicBaseUrl must be an absolute http\(s\) URL/,
      );
    }
  });

  test('the folder must be named', () => {
    assert.throws(() => createFsStore({ ...valid, dir: '' }), /needs a folder/);
  });
});
