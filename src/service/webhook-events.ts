// Webhooks given up on: the dead letter GET /generations/:id shows. (Events become webhook jobs in generation-events.ts.)
import type { WebhookFailure } from '../contracts/schemas.js';
import type { ServiceKeys } from '../queue/keys.js';
import type { Queues } from '../queue/queues.js';

/** Keeps the last webhook event given up on, for GET /generations/:id, as long as the generation. */
export async function recordWebhookFailure(
  queues: Queues,
  keys: ServiceKeys,
  id: string,
  failure: Omit<WebhookFailure, 'status'>,
  ttlSeconds: number,
): Promise<void> {
  await queues.redis.set(keys.webhookFailure(id), JSON.stringify({ status: 'failed', ...failure }), 'EX', ttlSeconds);
}
