// The handler table, typed by the job union (src/contracts/jobs.ts): one handler per job name,
// each given its own job type, and one processor per queue that picks the handler by name.
// A job name without a handler does not compile.
import { type Job, UnrecoverableError } from 'bullmq';
import type { JobName, JobOf, QueueData, QueueJobName, QueueResult } from '../contracts/jobs.js';
import type { QueueName } from '../contracts/queues.js';

export type JobFor<N extends JobName> = Job<JobOf<N>['data'], JobOf<N>['result'], N>;
export type Handlers = { [N in JobName]: (job: JobFor<N>, token?: string) => Promise<JobOf<N>['result']> };
export type QueueJob<Q extends QueueName> = Job<QueueData<Q>, QueueResult<Q>, QueueJobName<Q>>;
export type Processor<Q extends QueueName> = (job: QueueJob<Q>, token?: string) => Promise<QueueResult<Q>>;
export type Processors = { [Q in QueueName]: Processor<Q> };

export function isNamed<N extends JobName>(job: Job, name: N): job is JobFor<N> {
  return job.name === name;
}

function noHandler(job: Job, queue: QueueName): never {
  throw new UnrecoverableError(`internal_error: no handler for job ${job.name} on ${queue}`);
}

export function processorsFor(handlers: Handlers): Processors {
  return {
    generate: async (job, token) =>
      isNamed(job, 'generate') ? handlers.generate(job, token) : noHandler(job, 'generate'),
    classify: async (job, token) => {
      if (isNamed(job, 'classify')) return handlers.classify(job, token);
      if (isNamed(job, 'embed')) return handlers.embed(job, token);
      return noHandler(job, 'classify');
    },
    webhooks: async (job, token) =>
      isNamed(job, 'webhook') ? handlers.webhook(job, token) : noHandler(job, 'webhooks'),
  };
}
