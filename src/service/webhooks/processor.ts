// Webhooks: each logged generation event a generation asked for becomes a job on the `webhooks`
// queue (outbox.ts); this processor renders the event as GET
// /generations/:id showed it then, adds `event`, signs and POSTs it. BullMQ retries with
// exponential backoff; a receiver that says "never" (4xx) is not retried.
import { type Job, UnrecoverableError } from 'bullmq';
import type { Counter } from 'prom-client';
import type { Config } from '../../config.js';
import type { WebhookJobData } from '../../contracts/jobs.js';
import { ownerWebhookSecret } from '../api-keys.js';
import type { ServiceKeys } from '../redis-keys.js';
import type { Queues } from '../../queue/queues.js';
import { GenerationEventLog, renderEvent } from '../generation-events.js';
import type { Lifecycle } from '../lifecycle.js';
import type { ObjectStore } from '../../storage/index.js';
import { deliverWebhook } from '../../webhooks/deliver.js';
import { WebhookDeliveryError } from '../../webhooks/errors.js';

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

interface WebhookProcessorDeps {
  config: Config;
  queues: Queues;
  store: ObjectStore;
  keys: ServiceKeys;
  /** Counts each delivery attempt by outcome: delivered, retry, rejected. */
  deliveries: Counter<'outcome'>;
  lifecycle: Lifecycle;
}

export function createWebhookProcessor({ config, queues, store, keys, deliveries, lifecycle }: WebhookProcessorDeps) {
  const log = new GenerationEventLog(queues, keys);

  return async (job: Job<WebhookJobData, void, 'webhook'>): Promise<void> => {
    const { generation_id: id, event, url, event_id: eventId } = job.data;
    const record = await lifecycle.read(id);
    if (!record) throw new UnrecoverableError(`generation ${id} no longer exists`);
    // Each key's receiver verifies with that key's secret, so no client can forge another's events.
    const secret = await ownerWebhookSecret(queues.redis, keys, record.owner, config.webhookSecret);
    if (!secret) throw new UnrecoverableError('no webhook secret: WEBHOOK_SECRET is not configured');
    const logged = await log.find(id, eventId);
    if (!logged) throw new UnrecoverableError(`event ${eventId} is no longer in the log of generation ${id}`);
    const payload = await renderEvent(config, store, record, logged);
    try {
      await deliverWebhook({
        url,
        id: eventId,
        body: JSON.stringify(payload),
        secret,
        timeoutMs: config.webhookTimeoutMs,
        // Clients choose these URLs: only public receivers, bar OUTBOUND_ALLOW.
        blockPrivateAddresses: true,
        allow: config.outboundAllow,
      });
      deliveries.inc({ outcome: 'delivered' });
    } catch (error) {
      const retryable = !(error instanceof WebhookDeliveryError) || error.retryable;
      deliveries.inc({ outcome: retryable ? 'retry' : 'rejected' });
      // attemptsMade counts the attempts before this one.
      const attempts = job.attemptsMade + 1;
      if (!retryable || attempts >= (job.opts.attempts ?? 1)) {
        await lifecycle.recordWebhookFailure(id, { event, attempts, last_error: messageOf(error) });
      }
      if (!retryable) throw new UnrecoverableError(messageOf(error));
      throw error;
    }
  };
}
