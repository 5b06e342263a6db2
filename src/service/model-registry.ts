// The model packs the workers serve, published to Redis so that the API can list and check
// model names without loading any model itself. Each distinct list of packs is its own entry
// with its own TTL, so workers serving different packs are all listed (merged by name) and a
// dead worker's packs drop out when its entry expires.
//
// An API reads the registry once and keeps it (RegistryView): a worker whose publishing adds
// an entry (or drops expired ones) says so on `<prefix>:{svc}:models:changed`, and the copy is
// read again when its earliest entry expires, or after MAX_KEPT_MS at the latest (a worker of
// a version that does not announce). While the subscription is down nothing is kept: every
// call reads Redis, as before there was a copy.
import { createHash } from 'node:crypto';
import { type RedisClient, duplicateClient } from '../queue/redis.js';
import type { ModelInfo } from '../contracts/schemas.js';
import { ServiceError } from '../errors.js';
import { RedisScript } from '../queue/script.js';
import type { ServiceKeys } from './redis-keys.js';

/** The longest a copy of the registry is kept without news. */
const MAX_KEPT_MS = 10_000;

// KEYS: the entry, the index. ARGV: the entry's JSON, its TTL (s), its expiry (ms), its name,
// now (ms), the change channel. A new entry, or expired ones removed, are announced.
const PUBLISH = new RedisScript(`
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local added = redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
local removed = redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if added + removed > 0 then redis.call('PUBLISH', ARGV[6], ARGV[4]) end
return added + removed`);

export async function publishModels(
  redis: RedisClient,
  keys: ServiceKeys,
  models: ModelInfo[],
  ttlSeconds: number,
): Promise<void> {
  const text = JSON.stringify(models);
  // Workers serving the same packs share an entry: it says the same either way.
  const entry = createHash('sha256').update(text).digest('hex').slice(0, 32);
  const now = Date.now();
  await PUBLISH.run(
    redis,
    [keys.modelsEntry(entry), keys.modelsEntries],
    [text, ttlSeconds, now + ttlSeconds * 1000, entry, now, keys.modelsChanged],
  );
}

/** Tells every API that the registry changed behind its back (an operator, a test). */
export async function announceModelsChanged(redis: RedisClient, keys: ServiceKeys): Promise<void> {
  await redis.publish(keys.modelsChanged, '');
}

/** An entry from a worker older than these fields (a rolling upgrade) reads as a pack that states none. */
function withNewerFields(info: ModelInfo): ModelInfo {
  return { ...info, vocabulary: info.vocabulary ?? null, examples: info.examples ?? [], license: info.license ?? null };
}

/** The live entries merged by name, and when the first of them expires. */
async function readRegistry(redis: RedisClient, keys: ServiceKeys): Promise<{ models: ModelInfo[]; expires: number }> {
  const now = Date.now();
  const scored = await redis.zrangebyscore(keys.modelsEntries, now, '+inf', 'WITHSCORES');
  const entries = scored.filter((_, i) => i % 2 === 0);
  const expires = Math.min(now + MAX_KEPT_MS, ...scored.filter((_, i) => i % 2 === 1).map(Number));
  if (entries.length === 0) return { models: [], expires };
  const texts = await redis.mget(entries.map((entry) => keys.modelsEntry(entry)));
  const byName = new Map<string, ModelInfo>();
  for (const text of texts) {
    // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- written by workers of this version or an older one, whose missing fields withNewerFields fills
    for (const info of text ? (JSON.parse(text) as ModelInfo[]) : [])
      if (!byName.has(info.name)) byName.set(info.name, withNewerFields(info));
  }
  return { models: [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)), expires };
}

/** One process's copy of the registry, read through one command connection. */
class RegistryView {
  private kept: { models: ModelInfo[]; expires: number; version: number } | undefined;
  private reading: { promise: Promise<ModelInfo[]>; version: number } | undefined;
  /** Counts the changes heard of: a read that started before one is not kept. */
  private version = 0;
  /** Subscribed: a change would be heard of. */
  private live = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: ServiceKeys,
  ) {
    const subscriber = duplicateClient(redis, { connectionName: 'dalle-serve:models', maxRetriesPerRequest: null });
    subscriber.on('error', () => {}); // while it is down, every read goes to Redis
    subscriber.on('message', () => this.changed());
    // At every (re)connection: what was published meanwhile was missed.
    subscriber.on('ready', () => {
      subscriber.subscribe(keys.modelsChanged).then(
        () => {
          this.live = true;
          this.changed();
        },
        () => {},
      );
    });
    subscriber.on('close', () => {
      this.live = false;
      this.changed();
    });
    redis.once('end', () => subscriber.disconnect());
  }

  read(): Promise<ModelInfo[]> {
    const kept = this.kept;
    if (this.live && kept && kept.version === this.version && Date.now() < kept.expires)
      return Promise.resolve(kept.models);
    if (this.reading?.version === this.version) return this.reading.promise;
    const version = this.version;
    const promise = readRegistry(this.redis, this.keys).then(({ models, expires }) => {
      if (this.live && version === this.version) this.kept = { models, expires, version };
      return models;
    });
    this.reading = { promise, version };
    const done = () => {
      if (this.reading?.promise === promise) this.reading = undefined;
    };
    promise.then(done, done);
    return promise;
  }

  private changed(): void {
    this.version += 1;
    this.kept = undefined;
  }
}

const views = new WeakMap<RedisClient, Map<string, RegistryView>>();

function viewOf(redis: RedisClient, keys: ServiceKeys): RegistryView {
  let byPrefix = views.get(redis);
  if (!byPrefix) views.set(redis, (byPrefix = new Map()));
  let view = byPrefix.get(keys.modelsEntries);
  if (!view) byPrefix.set(keys.modelsEntries, (view = new RegistryView(redis, keys)));
  return view;
}

/**
 * The packs of the live workers, each name once (the first entry's); empty when none has
 * reported. From this process's copy, kept per command connection (see RegistryView).
 */
export function readModels(redis: RedisClient, keys: ServiceKeys): Promise<ModelInfo[]> {
  return viewOf(redis, keys).read();
}

/**
 * The pack a request will run on, as the workers report it: the named one, or the default for
 * its purpose. Refuses names no live worker serves; with no worker reporting yet, the worker decides.
 */
export async function servedModel(
  redis: RedisClient,
  keys: ServiceKeys,
  model: string | undefined,
  purpose: 'generations' | 'clip',
): Promise<ModelInfo | undefined> {
  const models = await readModels(redis, keys);
  // `default_for?`: during a rolling upgrade an older worker's entry may lack it.
  if (model === undefined) return models.find((info) => info.default_for?.includes(purpose));
  const found = models.find((info) => info.name === model);
  if (models.length > 0 && !found) {
    throw new ServiceError(
      'unknown_model',
      `model ${JSON.stringify(model)} is not served; the served ones are listed by GET /models (GET /v1/models in the OpenAI API)`,
      {
        errors: [{ field: 'model', message: `must be one of ${models.map((info) => info.name).join(', ')}` }],
      },
    );
  }
  return found;
}
