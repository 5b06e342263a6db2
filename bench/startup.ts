// Engine start-up on one pack (both inference threads, every session created), with every
// file hashed at every start against the records of files already verified (checksum-cache.ts).
import { cp, mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createEngine, type DeviceName, loadPack, silentLog } from '../src/models/index.js';
import { bestMs } from './timing.js';

export interface StartupFigures {
  /** Best start-up in ms hashing every file (as before the records). */
  hashingMs: number;
  /** Best start-up in ms with the files' versions already recorded. */
  recordedMs: number;
  /** The pack's verification alone (one thread's share), both ways. */
  verifyHashingMs: number;
  verifyRecordedMs: number;
}

export async function startupMs(packDir: string, device: DeviceName, cpuThreads?: number): Promise<StartupFigures> {
  const root = await mkdtemp(join(tmpdir(), 'bench-startup-'));
  try {
    const models = join(root, 'models');
    const dir = join(models, basename(packDir));
    await cp(packDir, dir, { recursive: true });
    // A fresh copy is too new to be recorded (a writer might still be at it): date it as a pack on disk.
    const past = new Date(Date.now() - 3600_000);
    for (const name of await readdir(dir)) await utimes(join(dir, name), past, past);
    const start = async (checksumCacheDir: string | null) => {
      const engine = await createEngine({ modelsDir: models, device, cpuThreads, logger: silentLog, checksumCacheDir });
      await engine.close();
    };
    const cacheDir = join(root, 'records');
    await start(cacheDir); // records the files, and warms the page cache for both
    return {
      hashingMs: await bestMs(() => start(null)),
      recordedMs: await bestMs(() => start(cacheDir)),
      verifyHashingMs: await bestMs(() => loadPack(dir, { cacheDir: null })),
      verifyRecordedMs: await bestMs(() => loadPack(dir, { cacheDir })),
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
