// The model packs the workers serve, published to Redis so that the API can list and check
// model names without loading any model itself.
import type { Redis } from 'ioredis';
import type { ModelInfo } from '../contracts/schemas.js';
import { ServiceError } from '../errors.js';
import type { ServiceKeys } from '../queue/keys.js';

export async function publishModels(
  redis: Redis,
  keys: ServiceKeys,
  models: ModelInfo[],
  ttlSeconds: number,
): Promise<void> {
  await redis.set(keys.models, JSON.stringify(models), 'EX', ttlSeconds);
}

/** The packs of the live workers; empty when none has reported. */
export async function readModels(redis: Redis, keys: ServiceKeys): Promise<ModelInfo[]> {
  const text = await redis.get(keys.models);
  return text ? (JSON.parse(text) as ModelInfo[]) : [];
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
    throw new ServiceError('unknown_model', `model ${JSON.stringify(model)} is not served; see GET /models`, {
      errors: [{ field: 'model', message: `must be one of ${models.map((info) => info.name).join(', ')}` }],
    });
  }
  return found;
}
