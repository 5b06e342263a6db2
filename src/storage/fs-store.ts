import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { FsStorageOptions, ObjectStore, ObjectUrl, StoredObject } from './object-store.js';
import { assertSigningSecret, fileUrlQuery, resolveSigningSecret } from './signed-url.js';
import {
  InvalidStorageArgumentError,
  assertValidBody,
  assertValidContentType,
  assertValidKey,
  assertValidLifetime,
  assertValidPrefix,
} from './validation.js';
import { parseBaseUrl } from './base-url.js';

const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

// Keys never have a segment that starts with ".", so these names cannot collide with an object.
function sidecarPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.type`);
}

/** Writes to a temp file beside the target, then renames: readers never see a partial file. */
async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function unlinkIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    // A folder (a key's parent) or a missing path is "no object here".
    if (['ENOENT', 'ENOTDIR', 'EISDIR', 'EPERM'].includes(errorCode(error) ?? '')) return false;
    throw error;
  }
}

/** Removes a folder and everything in it; returns how many objects it held. */
async function removeFolder(folder: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(folder, { recursive: true, withFileTypes: true });
  } catch (error) {
    if (['ENOENT', 'ENOTDIR'].includes(errorCode(error) ?? '')) return 0;
    throw error;
  }
  await rm(folder, { recursive: true, force: true });
  return entries.filter((entry) => entry.isFile() && !entry.name.startsWith('.')).length;
}

/**
 * Objects as files under `dir`, each key a relative path. The content type lives in a
 * hidden sidecar file (`.<name>.type`) beside the object, so any type round-trips.
 */
export function createFsStore(options: FsStorageOptions): ObjectStore {
  if (typeof options.signingSecret !== 'function') assertSigningSecret(options.signingSecret);
  if (typeof options.dir !== 'string' || options.dir === '') {
    throw new Error('fs storage needs a folder: set dir');
  }
  const baseUrl = parseBaseUrl('fs storage publicBaseUrl', options.publicBaseUrl);
  const root = options.dir;
  const pathOf = (key: string): string => join(root, ...key.split('/'));

  async function put(key: string, body: Uint8Array, contentType: string): Promise<void> {
    assertValidKey(key);
    assertValidBody(body);
    assertValidContentType(contentType);
    const path = pathOf(key);
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeAtomically(sidecarPath(path), contentType);
      await writeAtomically(path, body);
    } catch (error) {
      // Only a usable root makes this a clash between keys; an unusable root is reported as is.
      const rootIsFolder = await stat(root).then(
        (info) => info.isDirectory(),
        () => false,
      );
      if (rootIsFolder && ['EEXIST', 'ENOTDIR', 'EISDIR'].includes(errorCode(error) ?? '')) {
        throw new InvalidStorageArgumentError(
          `cannot store ${JSON.stringify(key)}: a folder store cannot hold both "a" and "a/b" as keys`,
        );
      }
      throw error;
    }
  }

  async function get(key: string): Promise<StoredObject | null> {
    assertValidKey(key);
    const path = pathOf(key);
    let body: Buffer;
    try {
      body = await readFile(path);
    } catch (error) {
      if (['ENOENT', 'ENOTDIR', 'EISDIR'].includes(errorCode(error) ?? '')) return null;
      throw error;
    }
    const contentType = await readFile(sidecarPath(path), 'utf8').catch(() => DEFAULT_CONTENT_TYPE);
    return { body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), contentType };
  }

  async function remove(key: string): Promise<void> {
    assertValidKey(key);
    const path = pathOf(key);
    await unlinkIfPresent(path);
    await unlinkIfPresent(sidecarPath(path));
  }

  async function deletePrefix(prefix: string): Promise<number> {
    assertValidPrefix(prefix);
    // "a/b/" is exactly the folder a/b, which goes whole, folder included.
    if (prefix.endsWith('/')) return removeFolder(pathOf(prefix.slice(0, -1)));
    const cut = prefix.lastIndexOf('/');
    const folder = cut === -1 ? root : pathOf(prefix.slice(0, cut));
    const namePrefix = prefix.slice(cut + 1);
    let entries;
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (error) {
      if (['ENOENT', 'ENOTDIR'].includes(errorCode(error) ?? '')) return 0;
      throw error;
    }
    let deleted = 0;
    for (const entry of entries) {
      if (entry.name.startsWith('.')) {
        // A hidden file belongs to the object it is named after (a content-type sidecar, or the
        // temp file of a write cut short, of an object or of its sidecar): it goes with the
        // prefix even when its object never came to be.
        if (entry.name.replace(/^\.+/, '').startsWith(namePrefix) && entry.isFile())
          await unlinkIfPresent(join(folder, entry.name));
        continue;
      }
      if (!entry.name.startsWith(namePrefix)) continue;
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        deleted += await removeFolder(path);
      } else if (await unlinkIfPresent(path)) {
        await unlinkIfPresent(sidecarPath(path));
        deleted += 1;
      }
    }
    return deleted;
  }

  async function url(key: string, expiresInSeconds: number): Promise<ObjectUrl> {
    assertValidKey(key);
    assertValidLifetime(expiresInSeconds);
    const expires = Math.floor(Date.now() / 1000) + expiresInSeconds;
    const secret = await resolveSigningSecret(options.signingSecret);
    return {
      url: `${baseUrl}/files/${key}?${fileUrlQuery(secret, key, expires)}`,
      expiresAt: new Date(expires * 1000),
    };
  }

  return { put, get, delete: remove, deletePrefix, url };
}
