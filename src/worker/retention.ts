// Expires finished generations and their images after the retention period. Ids sort by
// creation time, so the expired ones are a range at the start of the index.
import { generationPrefix } from '../contracts/jobs.js';
import type { Logger } from '../logger.js';
import { ANONYMOUS } from '../service/api-keys.js';
import { idPrefixAt } from '../service/ids.js';
import type { ServiceKeys } from '../queue/keys.js';
import type { Queues } from '../queue/queues.js';
import type { ObjectStore } from '../storage/index.js';

const SWEEP_BATCH = 100;

export async function sweepExpired(
  queues: Queues,
  store: ObjectStore,
  keys: ServiceKeys,
  retentionSeconds: number,
  log: Logger,
): Promise<number> {
  const cutoff = idPrefixAt(Date.now() - retentionSeconds * 1000);
  let removed = 0;
  // Pages after the last id seen: generations left alone (still running) do not hide the rest.
  let from = '-';
  for (;;) {
    const ids = await queues.redis.zrange(keys.generationIndex, from, `(${cutoff}`, 'BYLEX', 'LIMIT', 0, SWEEP_BATCH);
    for (const id of ids) if (await sweepOne(queues, store, keys, id)) removed += 1;
    if (ids.length < SWEEP_BATCH) break;
    from = `(${ids[ids.length - 1]}`;
  }
  if (removed > 0) log.info({ removed }, 'expired generations removed');
  return removed;
}

/** Removes one expired generation unless it is still waiting or running; true when removed. */
async function sweepOne(queues: Queues, store: ObjectStore, keys: ServiceKeys, id: string): Promise<boolean> {
  const job = await queues.get('generate').getJob(id);
  const state = job ? await job.getState() : 'unknown';
  // A generation still waiting or running after the retention period is left alone.
  if (job && state !== 'completed' && state !== 'failed') return false;
  await store.deletePrefix(generationPrefix(id));
  // eslint-disable-next-line no-restricted-syntax -- another sweeper may have removed the job first; it only has to be gone
  await job?.remove().catch(() => {});
  // Without the job its owner is unknown: that key's list drops the id when it meets it.
  const owner = (job?.data as { owner?: string } | undefined)?.owner ?? ANONYMOUS;
  await queues.redis
    .multi()
    .zrem(keys.generationIndex, id)
    .zrem(keys.ownerGenerations(owner), id)
    .del(keys.cancel(id), keys.committed(id), keys.webhookFailure(id), keys.events(id), keys.eventIds(id))
    .exec();
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
