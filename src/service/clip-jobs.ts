// The producer side of CLIP jobs: a request enqueues one job and waits for its result.
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import type { ClassifyJobData, ClassifyJobResult, EmbedJobData, EmbedJobResult } from '../contracts/jobs.js';
import { parseFailure } from '../contracts/jobs.js';
import { ERRORS, ServiceError, isErrorCode } from '../errors.js';
import { withQueuePlace } from '../queue/depth.js';
import { type ServiceKeys, serviceKeys } from '../queue/keys.js';
import { servedModel } from './model-registry.js';
import type { Queues } from '../queue/queues.js';

type ClipJob =
  | { name: 'classify'; data: ClassifyJobData; result: ClassifyJobResult }
  | { name: 'embed'; data: EmbedJobData; result: EmbedJobResult };

export class ClipJobs {
  private readonly keys: ServiceKeys;

  constructor(
    private readonly config: Config,
    private readonly queues: Queues,
  ) {
    this.keys = serviceKeys(config.queuePrefix);
  }

  classify(data: ClassifyJobData): Promise<ClassifyJobResult> {
    return this.run<Extract<ClipJob, { name: 'classify' }>>('classify', data);
  }

  embed(data: EmbedJobData): Promise<EmbedJobResult> {
    return this.run<Extract<ClipJob, { name: 'embed' }>>('embed', data);
  }

  private async run<J extends ClipJob>(name: J['name'], data: J['data']): Promise<J['result']> {
    await this.queues.connected();
    const queue = this.queues.get('classify');
    await servedModel(this.queues.redis, this.keys, data.model, 'clip');
    const place = {
      queue,
      maxQueued: this.config.classifyMaxQueued,
      retryAfterSeconds: this.config.queueFullRetryAfterSeconds,
    };
    const jobId = randomUUID();
    const { events, job } = await withQueuePlace(this.queues.redis, place, jobId, async () => {
      // Subscribe before adding, so that a fast worker's completion is not missed.
      const events = await this.queues.classifyEvents();
      return { events, job: await queue.add(name, data, { jobId }) };
    });
    try {
      return (await job.waitUntilFinished(events, this.config.classifyTimeoutMs)) as J['result'];
    } catch (error) {
      throw this.toServiceError(error, job.id as string);
    }
  }

  private toServiceError(error: unknown, jobId: string): ServiceError {
    const message = error instanceof Error ? error.message : String(error);
    if (/timed out/i.test(message)) {
      return new ServiceError('timeout', `the ${this.config.classifyTimeoutMs} ms wait for job ${jobId} ran out`);
    }
    const failure = parseFailure(message);
    // The client's own faults keep their code; the rest is the service's, reported as job_failed.
    if (isErrorCode(failure.code) && ERRORS[failure.code].status < 500) {
      return new ServiceError(failure.code, failure.message);
    }
    return new ServiceError('job_failed', `job ${jobId} failed: ${failure.code}: ${failure.message}`);
  }
}
