// Redis keys of our own, next to BullMQ's under the same prefix (so a Redis Cluster hash
// tag in the prefix keeps them together).
export function serviceKeys(prefix: string) {
  const base = `${prefix}:svc`;
  return {
    /** Sorted set (all scores 0) of generation ids; ids sort by creation time. */
    generationIndex: `${base}:generations`,
    /** String: when a cancel was requested (ms since epoch). */
    cancel: (id: string) => `${base}:cancel:${id}`,
    /** Pub/sub channel carrying the ids of generations to cancel. */
    cancelChannel: `${base}:cancel`,
    /** String: JSON of a webhook event given up on (the dead letter GET /generations/:id shows). */
    webhookFailure: (id: string) => `${base}:webhook-failed:${id}`,
    idempotency: (keyHash: string) => `${base}:idem:${keyHash}`,
    /** String: JSON list of the model packs the workers serve. */
    models: `${base}:models`,
  };
}
export type ServiceKeys = ReturnType<typeof serviceKeys>;
