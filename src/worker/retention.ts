// Expires finished generations and their images after the retention period. Ids sort by
// creation time, so the expired ones are a range at the start of the index.
import type { Logger } from '../logger.js';
import { idPrefixAt } from '../service/ids.js';
import type { ServiceKeys } from '../service/redis-keys.js';
import type { Queues } from '../queue/queues.js';
import type { Lifecycle } from '../service/lifecycle.js';

const SWEEP_BATCH = 100;

export interface RetentionDeps {
  queues: Queues;
  keys: ServiceKeys;
  lifecycle: Lifecycle;
  retentionSeconds: number;
  log: Logger;
}

export async function sweepExpired(deps: RetentionDeps): Promise<number> {
  const { queues, keys, retentionSeconds, log } = deps;
  const cutoff = idPrefixAt(Date.now() - retentionSeconds * 1000);
  let removed = 0;
  // Pages after the last id seen: generations left alone (still running) do not hide the rest.
  let from = '-';
  for (;;) {
    const ids = await queues.redis.zrange(keys.generationIndex, from, `(${cutoff}`, 'BYLEX', 'LIMIT', 0, SWEEP_BATCH);
    for (const id of ids) if (await sweepOne(deps, id)) removed += 1;
    if (ids.length < SWEEP_BATCH) break;
    from = `(${ids[ids.length - 1]}`;
  }
  if (removed > 0) log.info({ removed }, 'expired generations removed');
  return removed;
}

/** Removes one expired generation unless it is still queued or running; true when removed. */
async function sweepOne({ queues, keys, lifecycle }: RetentionDeps, id: string): Promise<boolean> {
  const record = await lifecycle.read(id);
  if (record) {
    const removed = await lifecycle.remove(id, record.owner);
    // A generation still queued or running after the retention period is left alone.
    return removed.outcome !== 'unfinished';
  }
  // No record (removed by hand, or never made): its listing, images and job still go.
  await queues.redis.zrem(keys.generationIndex, id);
  await lifecycle.deleteImages(id);
  await lifecycle.removeJob(id);
  return true;
}

export function startRetentionSweeper(run: () => Promise<unknown>, intervalMs: number, log: Logger): () => void {
  const timer = setInterval(
    () => void run().catch((error) => log.warn({ err: error }, 'retention sweep failed')),
    intervalMs,
  );
  timer.unref();
  return () => clearInterval(timer);
}
