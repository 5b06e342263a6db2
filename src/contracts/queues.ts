// The queues, by name. The API produces into them; workers consume them.
export const QUEUE_NAMES = ['generate', 'classify', 'webhooks'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export function isQueueName(value: string): value is QueueName {
  return (QUEUE_NAMES as readonly string[]).includes(value);
}
