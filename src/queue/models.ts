// The model packs the workers serve, published to Redis so that the API can list and check
// model names without loading any model itself.
import type { Redis } from 'ioredis';
import type { ModelInfo } from '../contracts/schemas.js';
import type { ServiceKeys } from './keys.js';

export async function publishModels(redis: Redis, keys: ServiceKeys, models: ModelInfo[], ttlSeconds: number): Promise<void> {
  await redis.set(keys.models, JSON.stringify(models), 'EX', ttlSeconds);
}

/** The packs of the live workers; empty when none has reported. */
export async function readModels(redis: Redis, keys: ServiceKeys): Promise<ModelInfo[]> {
  const text = await redis.get(keys.models);
  return text ? (JSON.parse(text) as ModelInfo[]) : [];
}
