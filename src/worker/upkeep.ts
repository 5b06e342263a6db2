// What a crash can leave owed, done by every worker in the background: webhooks listed in the
// outbox but not queued, images listed for deletion but not deleted, and generations whose job
// is gone or failed by BullMQ without the lifecycle hearing (a job that stalled too often while
// the worker that noticed it died, or a request that died between its record and its job).
import type { Queue } from 'bullmq';
import { isTerminal } from '../contracts/status.js';
import type { Logger } from '../logger.js';
import type { Lifecycle } from '../service/lifecycle.js';
import type { StorageGarbage } from '../service/storage-garbage.js';
import type { WebhookOutbox } from '../service/webhooks/outbox.js';

/** Owed work younger than this is still being done by whoever owes it. */
const OWED_GRACE_MS = 2000;
/** A generation open this long without its job is repaired; a request adds its job well within it. */
const OPEN_GRACE_MS = 60_000;
const OPEN_PAGE = 100;

export interface UpkeepDeps {
  lifecycle: Lifecycle;
  outbox: WebhookOutbox;
  garbage: StorageGarbage;
  queue: Queue;
  log: Logger;
}

export interface UpkeepOptions {
  /** How often owed webhooks and deletions are retried. */
  owedIntervalMs: number;
  /** How often the open generations are checked against their jobs. */
  openIntervalMs: number;
}

/** Checks the open generations a page at a time, the next page on each call. */
export function openGenerationChecker({ lifecycle, queue, log }: Pick<UpkeepDeps, 'lifecycle' | 'queue' | 'log'>) {
  let offset = 0;
  return async (now = Date.now()): Promise<number> => {
    const ids = await lifecycle.openBefore(now - OPEN_GRACE_MS, offset, OPEN_PAGE);
    offset = ids.length < OPEN_PAGE ? 0 : offset + OPEN_PAGE;
    let repaired = 0;
    for (const id of ids) if (await repairOpen(lifecycle, queue, id, log)) repaired += 1;
    return repaired;
  };
}

async function repairOpen(lifecycle: Lifecycle, queue: Queue, id: string, log: Logger): Promise<boolean> {
  const record = await lifecycle.read(id);
  if (!record || isTerminal(record.status)) {
    await lifecycle.forgetOpen(id);
    return false;
  }
  const state = await queue.getJobState(id);
  if (state === 'unknown') {
    if (!record.enqueued && record.attempt === 0) {
      // Its request died between the record and the job: the client never had a 202 for it.
      const idempotencyKey = (await lifecycle.idempotencyKeyOf(id)) ?? undefined;
      const discarded = await lifecycle.discard(id, record.owner, idempotencyKey);
      if (discarded) log.warn({ generationId: id }, 'generation whose job never reached the queue discarded');
      return discarded;
    }
    const outcome = await lifecycle.fail(
      id,
      'any',
      { code: 'worker_lost', message: 'its job is no longer on the queue' },
      true,
    );
    log.warn({ generationId: id, outcome }, 'generation whose job is gone ended');
    return true;
  }
  if (state !== 'failed' && state !== 'completed') return false;
  const outcome = await lifecycle.fail(
    id,
    'any',
    { code: 'worker_lost', message: `its job ${state} without an outcome: the worker running it stopped` },
    true,
  );
  log.warn({ generationId: id, outcome, state }, 'generation whose job ended without it ended');
  return true;
}

export function startUpkeep(deps: UpkeepDeps, options: UpkeepOptions): () => void {
  const { outbox, garbage, log } = deps;
  const checkOpen = openGenerationChecker(deps);
  let running = false;
  const owed = setInterval(() => {
    if (running) return;
    running = true;
    const before = Date.now() - OWED_GRACE_MS;
    Promise.all([outbox.sweep(before), garbage.sweep(before)])
      .catch((error: unknown) => log.warn({ err: error }, 'upkeep of owed webhooks and deletions failed'))
      .finally(() => (running = false));
  }, options.owedIntervalMs);
  const open = setInterval(
    () => void checkOpen().catch((error: unknown) => log.warn({ err: error }, 'upkeep of open generations failed')),
    options.openIntervalMs,
  );
  owed.unref();
  open.unref();
  return () => {
    clearInterval(owed);
    clearInterval(open);
  };
}
