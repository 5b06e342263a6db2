// Redis keys of our own, next to BullMQ's under the same prefix. On a Redis Cluster a Lua
// script or a MULTI may only touch keys of one hash slot, so each key lives under the hash tag
// of the queue it is used with (see queueKeyPrefix): a generation's keys with the generate
// queue, a CLIP request's with the classify queue, the rest under a tag of their own.
import { queueKeyPrefix } from '../queue/queues.js';

export function serviceKeys(prefix: string) {
  const generate = `${queueKeyPrefix(prefix, 'generate')}:svc`;
  const classify = `${queueKeyPrefix(prefix, 'classify')}:svc`;
  const shared = `${prefix}:{svc}`;
  return {
    /** Sorted set (all scores 0) of generation ids; ids sort by creation time. */
    generationIndex: `${generate}:generations`,
    /** The same, for one key's generations only: its list never wades through other keys' ids. */
    ownerGenerations: (owner: string) => `${generate}:generations:owner:${owner}`,
    /** Hash: a generation's record, the one truth of its life (see service/lifecycle.ts). */
    generation: (id: string) => `${generate}:generation:${id}`,
    /** Sorted set (score: created ms) of the generations not yet terminal, which upkeep repairs when their job is lost. */
    openGenerations: `${generate}:generations:open`,
    /** Sorted set (score: due ms) of webhook jobs a transition owes, until they are on the webhooks queue. */
    webhookOutbox: `${generate}:webhook-outbox`,
    /** Sorted set (score: due ms) of object-store prefixes to delete, until the store has deleted them. */
    storageGarbage: `${generate}:storage-garbage`,
    /** Hash: worker id → the candidates per second its engine gets through (see service/estimates.ts). */
    throughputRates: `${shared}:throughput:rates`,
    /** Sorted set (score: expiry ms) of the workers whose rates are live. */
    throughputWorkers: `${shared}:throughput:workers`,
    /** Pub/sub channel carrying the ids of generations to cancel. */
    cancelChannel: `${shared}:cancel`,
    /** Hash (index, png): the best image of a running generation so far, for streamed partial images. */
    partialImage: (id: string) => `${generate}:partial:${id}`,
    /** Stream (capped): one generation's event log (start, progress, completed), read by webhooks and SSE. */
    events: (id: string) => `${generate}:events:${id}`,
    /** Hash: event id → its entry id in the log, so a repeated event is written once and a stream can resume. */
    eventIds: (id: string) => `${generate}:events:${id}:ids`,
    idempotency: (keyHash: string) => `${generate}:idem:${keyHash}`,
    /** String: the /files/ URL signing secret shared by every process when FILE_URL_SECRET is unset. */
    fileUrlSecret: `${shared}:file-url-secret`,
    /** List: the image bytes of one CLIP request too large to travel in its job (see service/clip-images.ts). */
    clipImages: (requestId: string) => `${classify}:clip-images:${requestId}`,
    /** Sorted set (score: booked ms) of the CLIP requests holding a place in the classify queue (see service/clip-admission.ts). */
    clipPlaces: `${classify}:clip-places`,
    /** Pub/sub channel: the outcomes of the CLIP jobs one API process waits for (see service/clip-replies.ts). */
    clipReplies: (processId: string) => `${classify}:clip-replies:${processId}`,
    /** Sorted set (score: expiry ms) of the model registry's entries, one per distinct list of packs. */
    modelsEntries: `${shared}:models`,
    /** Pub/sub channel: a worker added an entry to the model registry, or dropped expired ones. */
    modelsChanged: `${shared}:models:changed`,
    /** String: JSON list of the model packs one or more workers serve (expires with them). */
    modelsEntry: (entry: string) => `${shared}:models:${entry}`,
    /** Set of every API key id ever created in the store (revoked ones too). */
    apiKeyIds: `${shared}:apikeys`,
    /** Hash: one stored API key's record (see api-keys.ts). */
    apiKey: (id: string) => `${shared}:apikey:${id}`,
    /** String: the id of the stored key with this SHA-256. */
    apiKeyByHash: (hash: string) => `${shared}:apikey-hash:${hash}`,
    /** Counter: requests of one key in one minute (limits.ts slides a window over two of them). */
    requests: (owner: string, minute: number) => `${classify}:usage:${owner}:requests:${minute}`,
    /** Counter: candidates one key asked for on one UTC day. */
    candidates: (owner: string, day: string) => `${generate}:usage:${owner}:candidates:${day}`,
    /** Sorted set (score: created ms) of one key's generations that may still be queued or running. */
    activeGenerations: (owner: string) => `${generate}:usage:${owner}:active`,
  };
}
export type ServiceKeys = ReturnType<typeof serviceKeys>;
