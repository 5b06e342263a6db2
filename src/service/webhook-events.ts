// The producer side of webhooks: a generation event becomes a job on the `webhooks` queue.
import type { GenerationInput, WebhookEvent } from '../contracts/jobs.js';
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

export class WebhookNotifier {
  constructor(private readonly queues: Queues) {}

  /**
   * Queues one event when the generation asked for it. Job ids are deterministic, so a
   * retried generation attempt does not send `start` or `completed` twice.
   */
  async notify(generationId: string, input: GenerationInput, event: WebhookEvent, sequence?: number): Promise<void> {
    if (!input.webhook || !input.webhook_events_filter.includes(event)) return;
    const jobId = sequence === undefined ? `${generationId}-${event}` : `${generationId}-${event}-${sequence}`;
    await this.queues
      .get('webhooks')
      .add('webhook', { generation_id: generationId, event, url: input.webhook }, { jobId });
  }
}
