// The API's queue figures against real BullMQ states: the work an autoscaler counts
// (deploy/kubernetes scales workers on dalle_queue_outstanding_jobs) takes in every job that
// needs a worker, prioritized and delayed ones included, and nothing that has finished.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { queueKeyPrefix } from '../../src/queue/queues.js';
import { type Harness, REDIS_URL, startHarness } from './api-harness.js';

/** The value of one sample in a Prometheus exposition text, or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('queue metrics', () => {
  let h: Harness;
  let queue: Queue;
  let worker: Worker;
  before(async () => {
    // No worker of the service: the test moves the jobs between states itself.
    h = await startHarness({ worker: false });
    const options = {
      connection: { url: REDIS_URL },
      prefix: queueKeyPrefix(h.config.queuePrefix, 'generate'),
    };
    queue = new Queue('generate', options);
    worker = new Worker('generate', null, { ...options, autorun: false });
  });
  after(async () => {
    await worker.close();
    await queue.close();
    await h.close();
  });

  test('outstanding work is waiting + prioritized + delayed + active, finished jobs left out', async () => {
    await queue.add('generate', { n: 'runs' });
    const active = await worker.getNextJob('token-a');
    assert.ok(active, 'a job to hold active');
    await queue.add('generate', { n: 'finishes' });
    const finished = await worker.getNextJob('token-b');
    assert.ok(finished, 'a job to complete');
    await finished.moveToCompleted('done', 'token-b', false);
    await queue.add('generate', { n: 'waits' });
    await queue.add('generate', { n: 'prioritized' }, { priority: 5 });
    await queue.add('generate', { n: 'retry in backoff' }, { delay: 60_000 });

    const text = await (await fetch(`${h.baseUrl}/metrics`)).text();
    const state = (name: string) => sample(text, `dalle_queue_jobs{queue="generate",state="${name}"}`);
    assert.deepEqual(
      ['waiting', 'prioritized', 'delayed', 'active', 'completed'].map(state),
      [1, 1, 1, 1, 1],
      'each job sits in the state the test put it in',
    );
    assert.equal(sample(text, 'dalle_queue_outstanding_jobs{queue="generate"}'), 4);
    assert.equal(sample(text, 'dalle_queue_outstanding_jobs{queue="classify"}'), 0);
  });
});
