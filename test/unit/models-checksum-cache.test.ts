// A pack file's sha256 is computed once per file version: an unchanged file is looked up, a
// changed one (same size, new mtime) is hashed again and refused when it no longer matches.
// Hashes are counted through the injectable hook, not inferred from timings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, cp, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPack, ModelError, sha256File } from '../../src/models/index.js';

const demoDir = fileURLToPath(new URL('../../packs/demo-shapes/', import.meta.url));
const HOUR_AGO = new Date(Date.now() - 3600_000);

/** A copy of the demo pack whose files were last written an hour ago, a records folder, and a counting hash. */
async function withCopy(body: (dir: string, cacheDir: string, hashed: string[]) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'checksums-'));
  const dir = join(root, 'demo-shapes');
  try {
    await cp(demoDir, dir, { recursive: true });
    for (const name of await readdir(dir)) await utimes(join(dir, name), HOUR_AGO, HOUR_AGO);
    await body(dir, join(root, 'cache'), []);
  } finally {
    await chmod(dir, 0o755).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  }
}

const counting = (hashed: string[]) => (path: string) => {
  hashed.push(path.split('/').pop()!);
  return sha256File(path);
};

async function filesOf(dir: string): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { files: object };
  return Object.keys(manifest.files).sort();
}

test('an unchanged file is hashed once; a changed one of the same size is hashed again and refused', async () => {
  await withCopy(async (dir, cacheDir, hashed) => {
    const options = { cacheDir, hash: counting(hashed) };
    await loadPack(dir, options);
    assert.deepEqual(hashed.sort(), await filesOf(dir), 'the first load hashes every file');

    hashed.length = 0;
    await loadPack(dir, options);
    assert.deepEqual(hashed, [], 'a second load hashes nothing');

    const path = join(dir, 'decoder.onnx');
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 0xff; // same size, new content and mtime
    await writeFile(path, bytes);
    await assert.rejects(
      () => loadPack(dir, options),
      (error: unknown) =>
        error instanceof ModelError &&
        error.code === 'pack_checksum_mismatch' &&
        /file decoder\.onnx has sha256 [0-9a-f]{64}, the manifest says/.test(error.message),
    );
    assert.deepEqual(hashed, ['decoder.onnx'], 'only the changed file is hashed again');

    // Even with its old mtime put back, the rewrite changed the file's ctime: still refused.
    await utimes(path, HOUR_AGO, HOUR_AGO);
    hashed.length = 0;
    await assert.rejects(() => loadPack(dir, options), /file decoder\.onnx has sha256/);
    assert.deepEqual(hashed, ['decoder.onnx']);
  });
});

test('a file written moments ago is hashed again at the next load; off hashes every time', async () => {
  await withCopy(async (dir, cacheDir, hashed) => {
    await writeFile(join(dir, 'tokenizer.json'), await readFile(join(dir, 'tokenizer.json')));
    const options = { cacheDir, hash: counting(hashed) };
    await loadPack(dir, options);
    hashed.length = 0;
    await loadPack(dir, options);
    // Its timestamps may not have ticked yet for a write still to come, so it is not vouched for.
    assert.deepEqual(hashed, ['tokenizer.json']);

    hashed.length = 0;
    await loadPack(dir, { cacheDir: null, hash: counting(hashed) });
    await loadPack(dir, { cacheDir: null, hash: counting(hashed) });
    assert.equal(hashed.length, 2 * (await filesOf(dir)).length);
  });
});

test('a read-only pack folder still keeps its records (they live in the cache folder)', async () => {
  await withCopy(async (dir, cacheDir, hashed) => {
    await chmod(dir, 0o555);
    const options = { cacheDir, hash: counting(hashed) };
    await loadPack(dir, options);
    hashed.length = 0;
    await loadPack(dir, options);
    assert.deepEqual(hashed, []);
  });
});

test('records in a folder others may write are not trusted', async () => {
  await withCopy(async (dir, cacheDir, hashed) => {
    const options = { cacheDir, hash: counting(hashed) };
    await loadPack(dir, options);
    await chmod(cacheDir, 0o777);
    hashed.length = 0;
    await loadPack(dir, options);
    assert.equal(hashed.length, (await filesOf(dir)).length);
  });
});
