// Webhooks: logged generation events become jobs on the `webhooks` queue (service/generation-events.ts); their
// processor renders the event as GET /generations/:id showed it then, adds `event`, signs and POSTs it. BullMQ
// retries with exponential backoff; a receiver that says "never" (4xx) is not retried.
import { type Job, UnrecoverableError } from 'bullmq';
import type { Config } from '../config.js';
import type { WebhookJobData } from '../contracts/jobs.js';
import { isTerminal } from '../contracts/status.js';
import { ANONYMOUS, ownerWebhookSecret } from '../service/api-keys.js';
import {
  type GenerateJob,
  buildGenerationView,
  currentState,
  readGenerationMarks,
} from '../service/generation-view.js';
import type { ServiceKeys } from '../queue/keys.js';
import type { Queues } from '../queue/queues.js';
import { type GenerationEventBody, GenerationEventLog, renderEvent } from '../service/generation-events.js';
import { recordWebhookFailure } from '../service/webhook-events.js';
import type { ObjectStore } from '../storage/index.js';
import { WebhookDeliveryError, deliverWebhook } from '../webhooks/index.js';
import type { WorkerMetrics } from './metrics.js';

interface WebhookProcessorDeps {
  config: Config;
  queues: Queues;
  store: ObjectStore;
  keys: ServiceKeys;
  metrics: WorkerMetrics;
}

export function createWebhookProcessor({ config, queues, store, keys, metrics }: WebhookProcessorDeps) {
  const log = new GenerationEventLog(queues, keys, config.retentionSeconds);

  /** The body from the event log; a job queued before the log (no event_id) renders the generation as it is now. */
  async function body(
    job: Job<WebhookJobData, void, 'webhook'>,
    generation: GenerateJob,
  ): Promise<GenerationEventBody> {
    const { generation_id: id, event, event_id: eventId } = job.data;
    const [current, marks] = await Promise.all([
      currentState(queues.get('generate'), generation),
      readGenerationMarks(queues.redis, keys, id),
    ]);
    if (eventId !== undefined) {
      const logged = await log.find(id, eventId);
      if (!logged) throw new UnrecoverableError(`event ${eventId} is no longer in the log of generation ${id}`);
      return renderEvent(config, store, current.job, logged, marks);
    }
    const view = await buildGenerationView(config, store, current.job, current.state, marks);
    if (event === 'completed' && !isTerminal(view.status)) throw new Error(`generation ${id} is not finished yet`);
    return { ...view, event };
  }

  return async (job: Job<WebhookJobData, void, 'webhook'>): Promise<void> => {
    const { generation_id: id, event, url } = job.data;
    const generation = (await queues.get('generate').getJob(id)) as GenerateJob | undefined;
    if (!generation) throw new UnrecoverableError(`generation ${id} no longer exists`);
    // Each key's receiver verifies with that key's secret, so no client can forge another's events.
    const secret = await ownerWebhookSecret(
      queues.redis,
      keys,
      generation.data.owner ?? ANONYMOUS,
      config.webhookSecret,
    );
    if (!secret) throw new UnrecoverableError('no webhook secret: WEBHOOK_SECRET is not configured');
    const payload = await body(job, generation);
    try {
      await deliverWebhook({
        url,
        id: job.id as string,
        body: JSON.stringify(payload),
        secret,
        timeoutMs: config.webhookTimeoutMs,
        // Clients choose these URLs: only public receivers, bar OUTBOUND_ALLOW.
        blockPrivateAddresses: true,
        allow: config.outboundAllow,
      });
      metrics.webhookDeliveries.inc({ outcome: 'delivered' });
    } catch (error) {
      const retryable = !(error instanceof WebhookDeliveryError) || error.retryable;
      metrics.webhookDeliveries.inc({ outcome: retryable ? 'retry' : 'rejected' });
      // attemptsMade counts the attempts before this one.
      const attempts = job.attemptsMade + 1;
      if (!retryable || attempts >= (job.opts.attempts ?? 1)) {
        await recordWebhookFailure(
          queues,
          keys,
          id,
          { event, attempts, last_error: (error as Error).message },
          config.retentionSeconds,
        );
      }
      if (!retryable) throw new UnrecoverableError((error as Error).message);
      throw error;
    }
  };
}
