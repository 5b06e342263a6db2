// The soak's clients: two keys making generations (with webhooks, cancels, deletes and
// idempotent retries), classify and embed requests, and reads of each other's ids. Every
// answer goes into the history the checker reads at the end.
import { KEYS, type KeyName, type SoakSystem } from './system.js';

export type Random = () => number;

/** mulberry32: a small seeded generator, so a seed replays the same choices. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Answer {
  kind: string;
  key: KeyName;
  /** 0 when no HTTP answer came (connection refused, reset, timed out). */
  status: number;
  code?: string;
  startedAt: number;
  endedAt: number;
}

export interface GenerationRecord {
  id: string;
  owner: KeyName;
  n: number;
  webhook: boolean;
  /** A cancel answered 202. */
  canceled: boolean;
  /** A delete answered 204. */
  deleted: boolean;
}

export interface History {
  answers: Answer[];
  generations: Map<string, GenerationRecord>;
  /** Ids the two POSTs of one Idempotency-Key were answered with. */
  idempotentPairs: { key: string; ids: string[] }[];
  /** A key's read of another key's generation that did not answer 404, or a list that showed one. */
  leaks: string[];
}

export function newHistory(): History {
  return { answers: [], generations: new Map(), idempotentPairs: [], leaks: [] };
}

const OTHER: Record<KeyName, KeyName> = { alice: 'bob', bob: 'alice' };
const PROMPTS = ['a red circle', 'a blue square above a green triangle', 'a small yellow star', 'two purple circles'];

interface Body {
  id?: string;
  code?: string;
  status?: string;
  data?: { id: string }[];
}

export class SoakClient {
  constructor(
    private readonly system: SoakSystem,
    private readonly history: History,
    private readonly key: KeyName,
    private readonly random: Random,
    private readonly image: string,
  ) {}

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)];
  }

  private async call(kind: string, path: string, init: RequestInit = {}): Promise<{ status: number; body: Body }> {
    const startedAt = Date.now();
    let status = 0;
    let body: Body = {};
    try {
      const response = await fetch(`${this.pick(this.system.apis)}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${KEYS[this.key]}`, ...(init.headers as Record<string, string>) },
        signal: AbortSignal.timeout(90_000),
      });
      status = response.status;
      const text = await response.text();
      body = text ? (JSON.parse(text) as Body) : {};
    } catch {
      // No answer: recorded as status 0, which the checker counts against the service.
    }
    this.history.answers.push({ kind, key: this.key, status, code: body.code, startedAt, endedAt: Date.now() });
    return { status, body };
  }

  private post(kind: string, path: string, payload: unknown, headers: Record<string, string> = {}) {
    return this.call(kind, path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(payload),
    });
  }

  private own(): GenerationRecord[] {
    return [...this.history.generations.values()].filter((g) => g.owner === this.key && !g.deleted);
  }

  async create(): Promise<void> {
    const n = 1 + Math.floor(this.random() * 3);
    const webhook = this.random() < 0.8;
    const tag = `${this.key}-${Math.floor(this.random() * 1e9)}`;
    const payload = {
      prompt: this.pick(PROMPTS),
      candidates: n + Math.floor(this.random() * 12),
      n,
      seed: Math.floor(this.random() * 1e6),
      ...(webhook && { webhook: this.system.receiver.url(tag) }),
    };
    const idempotent = this.random() < 0.3;
    const headers: Record<string, string> = idempotent ? { 'idempotency-key': tag } : {};
    const first = await this.post('generate', '/generations', payload, headers);
    const ids = [first.body.id];
    if (idempotent) ids.push((await this.post('generate-retry', '/generations', payload, headers)).body.id);
    const accepted = ids.filter((id): id is string => typeof id === 'string');
    if (idempotent && accepted.length === 2) this.history.idempotentPairs.push({ key: tag, ids: accepted });
    for (const id of new Set(accepted)) {
      this.history.generations.set(id, { id, owner: this.key, n, webhook, canceled: false, deleted: false });
    }
  }

  async cancel(): Promise<void> {
    // The newest few: most older ones have finished, and a cancel of those only tests the 409.
    const target = this.own()
      .filter((g) => !g.canceled)
      .slice(-4);
    if (target.length === 0) return;
    const generation = this.pick(target);
    const { status } = await this.post('cancel', `/generations/${generation.id}/cancel`, {});
    if (status === 202) generation.canceled = true;
  }

  async remove(): Promise<void> {
    const target = this.own();
    if (target.length === 0) return;
    const generation = this.pick(target);
    // A 503 (or no answer) leaves the delete in doubt: it may have happened. A careful client
    // asks again until it hears 204, or 404 for what its earlier try deleted.
    let inDoubt = false;
    for (let tries = 0; tries < 10; tries += 1) {
      const { status } = await this.call('delete', `/generations/${generation.id}`, { method: 'DELETE' });
      if (status === 204 || (status === 404 && inDoubt)) generation.deleted = true;
      if (status !== 503 && status !== 0) return;
      inDoubt = true;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  async classify(): Promise<void> {
    await this.post('classify', '/clip/classify', {
      image: { base64: this.image },
      labels: ['red circle', 'blue square', 'green triangle'],
    });
  }

  async embed(): Promise<void> {
    await this.post('embed', '/clip/embed', { texts: [this.pick(PROMPTS)] });
  }

  /** Reads one of the other key's generations and this key's list: neither may show the other's. */
  async snoop(): Promise<void> {
    const others = [...this.history.generations.values()].filter((g) => g.owner === OTHER[this.key]);
    if (others.length > 0) {
      const target = this.pick(others);
      const { status } = await this.call('read-other', `/generations/${target.id}`);
      if (status !== 404 && status !== 503 && status !== 0) {
        this.history.leaks.push(`${this.key} read ${target.owner}'s ${target.id}: ${status}`);
      }
    }
    const list = await this.call('list', '/generations');
    for (const entry of list.body.data ?? []) {
      const owner = this.history.generations.get(entry.id)?.owner;
      if (owner && owner !== this.key) this.history.leaks.push(`${this.key}'s list shows ${owner}'s ${entry.id}`);
    }
  }

  /** One client's loop until `until` (a time), one action at a time with short pauses. */
  async run(until: number): Promise<void> {
    const actions: [number, () => Promise<void>][] = [
      [0.4, () => this.create()],
      [0.15, () => this.cancel()],
      [0.1, () => this.remove()],
      [0.1, () => this.classify()],
      [0.1, () => this.embed()],
      [0.15, () => this.snoop()],
    ];
    while (Date.now() < until) {
      let roll = this.random();
      const action = actions.find(([weight]) => (roll -= weight) < 0)?.[1] ?? actions[0][1];
      await action();
      await new Promise((resolve) => setTimeout(resolve, 50 + this.random() * 250));
    }
  }
}
