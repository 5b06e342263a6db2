// The model packs the workers serve, published to Redis so that the API can list and check
// model names without loading any model itself. Each distinct list of packs is its own entry
// with its own TTL, so workers serving different packs are all listed (merged by name) and a
// dead worker's packs drop out when its entry expires.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ModelInfo } from '../contracts/schemas.js';
import { ServiceError } from '../errors.js';
import type { ServiceKeys } from './redis-keys.js';

export async function publishModels(
  redis: Redis,
  keys: ServiceKeys,
  models: ModelInfo[],
  ttlSeconds: number,
): Promise<void> {
  const text = JSON.stringify(models);
  // Workers serving the same packs share an entry: it says the same either way.
  const entry = createHash('sha256').update(text).digest('hex').slice(0, 32);
  await redis
    .multi()
    .set(keys.modelsEntry(entry), text, 'EX', ttlSeconds)
    .zadd(keys.modelsEntries, Date.now() + ttlSeconds * 1000, entry)
    .zremrangebyscore(keys.modelsEntries, '-inf', Date.now())
    .exec();
}

/** An entry from a worker older than these fields (a rolling upgrade) reads as a pack that states none. */
function withNewerFields(info: ModelInfo): ModelInfo {
  return { ...info, vocabulary: info.vocabulary ?? null, examples: info.examples ?? [], license: info.license ?? null };
}

/** The packs of the live workers, each name once (the first entry's); empty when none has reported. */
export async function readModels(redis: Redis, keys: ServiceKeys): Promise<ModelInfo[]> {
  const entries = await redis.zrangebyscore(keys.modelsEntries, Date.now(), '+inf');
  if (entries.length === 0) return [];
  const texts = await redis.mget(entries.map((entry) => keys.modelsEntry(entry)));
  const byName = new Map<string, ModelInfo>();
  for (const text of texts) {
    // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- written by workers of this version or an older one, whose missing fields withNewerFields fills
    for (const info of text ? (JSON.parse(text) as ModelInfo[]) : [])
      if (!byName.has(info.name)) byName.set(info.name, withNewerFields(info));
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The pack a request will run on, as the workers report it: the named one, or the default for
 * its purpose. Refuses names no live worker serves; with no worker reporting yet, the worker decides.
 */
export async function servedModel(
  redis: Redis,
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
