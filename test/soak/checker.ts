// The checker: after the run has drained, reads the history, the receiver's deliveries and the
// stored state, and lists every broken promise by invariant.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { History } from './clients.js';
import { KEYS, type SoakSystem } from './system.js';

export const INVARIANTS = [
  'accepted generations end terminal',
  'succeeded ones store exactly n images, others none',
  'no stored file without a generation',
  'a completed webhook is delivered or recorded failed',
  'one terminal event per generation',
  'an event id names one event',
  'keys never see each other',
  'an idempotent retry gets the same id',
  'no 5xx but 503 while Redis is down',
  'a 202 cancel ends canceled',
] as const;
export type Invariant = (typeof INVARIANTS)[number];
export type Violations = Record<Invariant, string[]>;

export interface FinalView {
  status: number;
  body: { status?: string; images?: { url: string }[]; webhook?: { event?: string } | null };
}

/** GET /generations/:id as its owner sees it, once everything has drained. */
export async function finalViews(system: SoakSystem, history: History): Promise<Map<string, FinalView>> {
  const views = new Map<string, FinalView>();
  for (const generation of history.generations.values()) {
    const response = await fetch(`${system.apis[0]}/generations/${generation.id}`, {
      headers: { authorization: `Bearer ${KEYS[generation.owner]}` },
    });
    views.set(generation.id, { status: response.status, body: (await response.json()) as FinalView['body'] });
  }
  return views;
}

/** The objects under each generation's prefix; a hidden file is an object's content-type sidecar. */
async function storedFiles(dir: string): Promise<{ objects: Map<string, string[]>; strays: string[] }> {
  const objects = new Map<string, string[]>();
  const strays: string[] = [];
  const root = join(dir, 'generations');
  const ids = await readdir(root).catch(() => [] as string[]);
  for (const id of ids) {
    const files = await readdir(join(root, id)).catch(() => [] as string[]);
    const visible = files.filter((name) => !name.startsWith('.'));
    for (const hidden of files.filter((name) => name.startsWith('.'))) {
      if (!visible.some((name) => hidden === `.${name}.type`)) strays.push(`${id}/${hidden}`);
    }
    if (visible.length > 0) objects.set(id, visible);
  }
  return { objects, strays };
}

/** Redis was down from `from` to `to` (ms since epoch). */
export interface Outage {
  from: number;
  to: number;
}

/** Requests that overlap an outage, or start within this long after it, may see 503. */
const OUTAGE_GRACE_MS = 10_000;

export async function check(
  system: SoakSystem,
  history: History,
  views: Map<string, FinalView>,
  outages: Outage[],
): Promise<Violations> {
  const violations = Object.fromEntries(INVARIANTS.map((name) => [name, [] as string[]])) as Violations;
  const { objects: files, strays } = await storedFiles(system.storageDir);

  for (const generation of history.generations.values()) {
    const view = views.get(generation.id);
    const stored = files.get(generation.id) ?? [];
    if (generation.deleted) {
      if (view?.status !== 404) violations[INVARIANTS[0]].push(`${generation.id} deleted but answers ${view?.status}`);
      if (stored.length > 0)
        violations[INVARIANTS[1]].push(`${generation.id} deleted but keeps ${stored.length} files`);
      continue;
    }
    const status = view?.body.status;
    if (!['succeeded', 'failed', 'canceled'].includes(status ?? '')) {
      violations[INVARIANTS[0]].push(`${generation.id} is ${status ?? view?.status}`);
      continue;
    }
    const expected = status === 'succeeded' ? generation.n : 0;
    const images = view?.body.images?.length ?? 0;
    if (images !== expected || stored.length !== expected) {
      violations[INVARIANTS[1]].push(`${generation.id} ${status}: ${images} images listed, ${stored.length} stored`);
    }
    if (generation.canceled && status !== 'canceled') {
      violations[INVARIANTS[9]].push(`${generation.id} got a 202 cancel and ended ${status}`);
    }
    if (generation.webhook) await checkWebhooks(system, generation.id, view, violations);
  }

  for (const [id, stored] of files) {
    // A POST cut short by a Redis outage may have made a generation the client never heard of
    // (an indeterminate answer): its files are orphans only if the service has no such generation.
    if (!history.generations.has(id) && !(await system.generationExists(id))) {
      violations[INVARIANTS[2]].push(`${id}: ${stored.join(', ')}`);
    }
  }

  violations[INVARIANTS[2]].push(...strays.map((path) => `${path}: a file beside no object`));

  const byWebhookId = new Map<string, string>();
  for (const delivery of system.receiver.deliveries) {
    const content = `${delivery.generation} ${eventContent(delivery.body)}`;
    const seen = byWebhookId.get(delivery.webhookId);
    if (seen !== undefined && seen !== content) {
      violations[INVARIANTS[5]].push(`${delivery.webhookId}: "${seen}" and "${content}"`);
    }
    byWebhookId.set(delivery.webhookId, content);
  }

  violations[INVARIANTS[6]].push(...history.leaks);
  for (const pair of history.idempotentPairs) {
    if (new Set(pair.ids).size !== 1) violations[INVARIANTS[7]].push(`${pair.key}: ${pair.ids.join(' ≠ ')}`);
  }
  for (const answer of history.answers) {
    if (answer.status !== 0 && answer.status < 500) continue;
    const duringOutage = outages.some(
      (outage) => answer.endedAt >= outage.from && answer.startedAt <= outage.to + OUTAGE_GRACE_MS,
    );
    if (answer.status === 503 && duringOutage) continue;
    const ended = outages.filter((outage) => outage.to <= answer.startedAt).map((outage) => outage.to);
    const since =
      ended.length > 0
        ? ` (${((answer.startedAt - Math.max(...ended)) / 1000).toFixed(1)} s after a Redis fault ended)`
        : '';
    violations[INVARIANTS[8]].push(
      `${answer.kind} → ${answer.status} ${answer.code ?? ''} at ${answer.startedAt}, after ${answer.endedAt - answer.startedAt} ms${since}`,
    );
  }
  return violations;
}

/** An event's body without its signed URLs and their expiry, which are signed anew at each delivery. */
function eventContent(body: object): string {
  return JSON.stringify(body, (key, value: unknown) =>
    ['url', 'urls', 'expires_at'].includes(key) ? undefined : value,
  );
}

async function checkWebhooks(
  system: SoakSystem,
  id: string,
  view: FinalView | undefined,
  violations: Violations,
): Promise<void> {
  const mine = system.receiver.deliveries.filter((delivery) => delivery.body.id === id);
  const terminal = new Set(mine.filter((d) => d.body.event === 'completed').map((d) => d.body.status));
  if (terminal.size === 0 && view?.body.webhook?.event !== 'completed') {
    const trace = await system.webhookTrace(id).catch((error: unknown) => String(error));
    violations[INVARIANTS[3]].push(`${id}: no completed event delivered nor recorded failed (${trace})`);
  }
  if (terminal.size > 1) violations[INVARIANTS[4]].push(`${id}: completed as ${[...terminal].join(' and ')}`);
  const final = view?.body.status;
  if (terminal.size === 1 && final && !terminal.has(final)) {
    violations[INVARIANTS[4]].push(`${id}: completed event says ${[...terminal][0]}, the generation ${final}`);
  }
}
