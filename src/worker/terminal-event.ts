// The terminal `completed` event is written inside the job's processor, before BullMQ marks the
// job finished: a worker killed at any point before that runs the job again, and the event and
// its webhook are written then. A listener on BullMQ's 'completed' would be skipped by a crash.
import { UnrecoverableError, WaitingError } from 'bullmq';
import type { GenerateJobResult } from '../contracts/jobs.js';
import type { GenerationProgress } from '../contracts/status.js';
import type { GenerationEvents } from '../service/generation-events.js';
import type { GenerateJob } from '../service/generation-view.js';

type GenerateHandler = (job: GenerateJob, token?: string) => Promise<GenerateJobResult>;

/** A failure that ends the generation: bad input, a cancel, or the last attempt. */
function isFinal(error: unknown, job: GenerateJob): boolean {
  if (error instanceof WaitingError) return false;
  return error instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/** The last progress the job reported, which GET /generations/:id keeps showing once it is finished. */
function lastProgress(job: GenerateJob): GenerationProgress | undefined {
  const progress = job.progress;
  return progress && typeof progress === 'object' && 'stage' in progress ? (progress as GenerationProgress) : undefined;
}

export function withTerminalEvent(handler: GenerateHandler, events: GenerationEvents): GenerateHandler {
  return async (job, token) => {
    const id = job.id as string;
    // An earlier attempt ended and logged it, then died before BullMQ heard: end the same way,
    // queueing the webhook again in case that attempt died before it had (its id keeps it single).
    const logged = await events.log.terminal(id);
    if (logged?.outcome) {
      await events.finished(job, logged.outcome, logged.progress);
      if (logged.outcome.state === 'completed') return logged.outcome.result;
      throw new UnrecoverableError(logged.outcome.reason);
    }
    let result: GenerateJobResult;
    try {
      result = await handler(job, token);
    } catch (error) {
      if (isFinal(error, job)) {
        const outcome = { state: 'failed' as const, reason: (error as Error).message };
        await events.finished(job, outcome, lastProgress(job));
      } else {
        await events.settle(id);
      }
      throw error;
    }
    await events.finished(job, { state: 'completed', result }, lastProgress(job));
    return result;
  };
}
