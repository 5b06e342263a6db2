// Which pack files have had their sha256 computed, by file version, so that an unchanged file
// is hashed once rather than at every start (a 606 MB CLIP pack spent most of its start-up
// hashing, twice: once per inference thread). One small JSON record per pack folder, kept out
// of the pack itself so that read-only and git-tracked pack folders work alike.
import { createHash } from 'node:crypto';
import { createReadStream, type Stats } from 'node:fs';
import { chmod, mkdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

/** How pack files are verified; every field has a default. */
export interface VerifyOptions {
  /**
   * Folder of the records; `null` hashes every file at every load. Default: the user's cache
   * folder (`~/.cache/dalle-serve/verified-files`), or a private folder under the OS temp folder
   * when that cannot be written (a read-only home, as in many containers).
   */
  cacheDir?: string | null;
  /** A file's sha256 in hex (a parameter so that tests count the files really hashed). */
  hash?: (path: string) => Promise<string>;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What identifies one version of a file: a rewrite changes mtime and ctime, a replacement the inode. */
interface FileVersion {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

interface Entry extends FileVersion {
  sha256: string;
}

const versionOf = (s: Stats): FileVersion => ({
  size: s.size,
  mtimeMs: s.mtimeMs,
  ctimeMs: s.ctimeMs,
  ino: s.ino,
  dev: s.dev,
});

const sameVersion = (a: FileVersion, b: FileVersion) =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev;

/**
 * File timestamps advance in coarse ticks, so a write landing just after the hash can keep the
 * same mtime. A file changed this recently before its hash began is not recorded (git's "racily
 * clean" rule): it is hashed again at the next load.
 */
const SETTLED_MS = 2000;

// Only a folder this process's user owns and others cannot write is trusted with records:
// whoever can write them can make a changed file pass.
async function privateDir(dir: string): Promise<string | undefined> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const s = await stat(dir);
    const owned = process.getuid === undefined || s.uid === process.getuid();
    if (!s.isDirectory() || !owned || (s.mode & 0o022) !== 0) return undefined;
    const probe = join(dir, `.probe-${process.pid}`);
    await writeFile(probe, '');
    await rename(probe, join(dir, '.probe'));
    return dir;
  } catch {
    return undefined;
  }
}

let defaultDir: Promise<string | undefined> | undefined;

/** The default records folder of this process, or undefined when none can be written. */
export function defaultCacheDir(): Promise<string | undefined> {
  defaultDir ??= (async () => {
    const user = process.getuid?.() ?? 'user';
    return (
      (await privateDir(join(homedir(), '.cache', 'dalle-serve', 'verified-files'))) ??
      (await privateDir(join(tmpdir(), `dalle-serve-${user}`, 'verified-files')))
    );
  })();
  return defaultDir;
}

/** The records of one pack folder: looked up before hashing, saved once after. */
export class ChecksumRecords {
  private changed = false;

  private constructor(
    private readonly file: string | undefined,
    private readonly entries: Record<string, Entry>,
    readonly hash: (path: string) => Promise<string>,
  ) {}

  static async open(packDir: string, options: VerifyOptions = {}): Promise<ChecksumRecords> {
    const hash = options.hash ?? sha256File;
    const dir = options.cacheDir === undefined ? await defaultCacheDir() : await privateDirOrNull(options.cacheDir);
    if (!dir) return new ChecksumRecords(undefined, {}, hash);
    const key = createHash('sha256')
      .update(await realpath(packDir).catch(() => packDir))
      .digest('hex')
      .slice(0, 32);
    const file = join(dir, `${key}.json`);
    // A missing or unreadable record only costs a hash.
    const entries = await readFile(file, 'utf8')
      .then((text) => JSON.parse(text) as Record<string, Entry>)
      .catch(() => ({}));
    return new ChecksumRecords(file, entries, hash);
  }

  /** The sha256 of `path` as it is now (named `name` in the pack): recorded, or computed. */
  async sha256(name: string, path: string, before: Stats): Promise<string> {
    const version = versionOf(before);
    const known = this.entries[name];
    if (known && sameVersion(known, version)) return known.sha256;
    const started = Date.now();
    const sha256 = await this.hash(path);
    const after = await stat(path).catch(() => undefined);
    // A file written during the hash, or shortly before it, is not vouched for.
    if (this.file && after && sameVersion(versionOf(after), version) && version.mtimeMs <= started - SETTLED_MS) {
      this.entries[name] = { ...version, sha256 };
      this.changed = true;
    } else if (known) {
      delete this.entries[name];
      this.changed = true;
    }
    return sha256;
  }

  /** Writes the records (atomically: two processes starting together never read half a file). */
  async save(): Promise<void> {
    if (!this.file || !this.changed) return;
    const temp = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    try {
      await writeFile(temp, JSON.stringify(this.entries), { mode: 0o600 });
      await chmod(temp, 0o600);
      await rename(temp, this.file);
      this.changed = false;
    } catch {
      // Records that cannot be written cost a hash at the next start, nothing else.
    }
  }
}

async function privateDirOrNull(dir: string | null): Promise<string | undefined> {
  return dir === null ? undefined : privateDir(dir);
}
