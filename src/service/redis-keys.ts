// Redis keys of our own, next to BullMQ's under the same prefix (so a Redis Cluster hash
// tag in the prefix keeps them together).
export function serviceKeys(prefix: string) {
  const base = `${prefix}:svc`;
  return {
    /** Sorted set (all scores 0) of generation ids; ids sort by creation time. */
    generationIndex: `${base}:generations`,
    /** The same, for one key's generations only: its list never wades through other keys' ids. */
    ownerGenerations: (owner: string) => `${base}:generations:owner:${owner}`,
    /** Hash: a generation's record, the one truth of its life (see service/lifecycle.ts). */
    generation: (id: string) => `${base}:generation:${id}`,
    /** Sorted set (score: created ms) of the generations not yet terminal, which upkeep repairs when their job is lost. */
    openGenerations: `${base}:generations:open`,
    /** Sorted set (score: due ms) of webhook jobs a transition owes, until they are on the webhooks queue. */
    webhookOutbox: `${base}:webhook-outbox`,
    /** Sorted set (score: due ms) of object-store prefixes to delete, until the store has deleted them. */
    storageGarbage: `${base}:storage-garbage`,
    /** Hash: worker id → the candidates per second its engine gets through (see service/estimates.ts). */
    throughputRates: `${base}:throughput:rates`,
    /** Sorted set (score: expiry ms) of the workers whose rates are live. */
    throughputWorkers: `${base}:throughput:workers`,
    /** Pub/sub channel carrying the ids of generations to cancel. */
    cancelChannel: `${base}:cancel`,
    /** Hash (index, png): the best image of a running generation so far, for streamed partial images. */
    partialImage: (id: string) => `${base}:partial:${id}`,
    /** Stream (capped): one generation's event log (start, progress, completed), read by webhooks and SSE. */
    events: (id: string) => `${base}:events:${id}`,
    /** Hash: event id → its entry id in the log, so a repeated event is written once and a stream can resume. */
    eventIds: (id: string) => `${base}:events:${id}:ids`,
    idempotency: (keyHash: string) => `${base}:idem:${keyHash}`,
    /** String: the /files/ URL signing secret shared by every process when FILE_URL_SECRET is unset. */
    fileUrlSecret: `${base}:file-url-secret`,
    /** List: the image bytes of one CLIP request too large to travel in its job (see service/clip-images.ts). */
    clipImages: (requestId: string) => `${base}:clip-images:${requestId}`,
    /** Sorted set (score: booked ms) of the CLIP requests holding a place in the classify queue (see service/clip-admission.ts). */
    clipPlaces: `${base}:clip-places`,
    /** Pub/sub channel: the outcomes of the CLIP jobs one API process waits for (see service/clip-replies.ts). */
    clipReplies: (processId: string) => `${base}:clip-replies:${processId}`,
    /** Sorted set (score: expiry ms) of the model registry's entries, one per distinct list of packs. */
    modelsEntries: `${base}:models`,
    /** Pub/sub channel: a worker added an entry to the model registry, or dropped expired ones. */
    modelsChanged: `${base}:models:changed`,
    /** String: JSON list of the model packs one or more workers serve (expires with them). */
    modelsEntry: (entry: string) => `${base}:models:${entry}`,
    /** Set of every API key id ever created in the store (revoked ones too). */
    apiKeyIds: `${base}:apikeys`,
    /** Hash: one stored API key's record (see api-keys.ts). */
    apiKey: (id: string) => `${base}:apikey:${id}`,
    /** String: the id of the stored key with this SHA-256. */
    apiKeyByHash: (hash: string) => `${base}:apikey-hash:${hash}`,
    /** Counter: requests of one key in one minute (limits.ts slides a window over two of them). */
    requests: (owner: string, minute: number) => `${base}:usage:${owner}:requests:${minute}`,
    /** Counter: candidates one key asked for on one UTC day. */
    candidates: (owner: string, day: string) => `${base}:usage:${owner}:candidates:${day}`,
    /** Sorted set (score: created ms) of one key's generations that may still be queued or running. */
    activeGenerations: (owner: string) => `${base}:usage:${owner}:active`,
  };
}
export type ServiceKeys = ReturnType<typeof serviceKeys>;
