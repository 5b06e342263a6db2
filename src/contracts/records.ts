// The JSON values a generation's record keeps in Redis (src/service/lifecycle.ts), as schemas:
// every read is checked against them (src/service/redis-codec.ts), so a value written by another
// version, or by hand, fails loudly where it is read instead of deep inside a response.
import { type Static, Type } from '@fastify/type-provider-typebox';
import { FAILURE_CODES } from '../errors.js';
import { OUTPUT_FORMATS, WEBHOOK_EVENTS } from './jobs.js';
import { GenerationInputView, Metrics, Nullable, Progress, StringEnum, WebhookFailure } from './schemas.js';

export const StoredImage = Type.Object({
  rank: Type.Integer(),
  /** Where the image lives in the object store. */
  key: Type.String(),
  score: Type.Number(),
  seed: Type.Integer(),
  width: Type.Integer(),
  height: Type.Integer(),
  format: StringEnum(OUTPUT_FORMATS),
});
export type StoredImage = Static<typeof StoredImage>;

/** What a generation that succeeded holds besides its images' bytes. */
export const GenerationResult = Type.Object({
  model: Type.String(),
  prompt_tokens: Type.Integer(),
  truncated: Type.Boolean(),
  /** The prompt as the generator read it (cut when truncated). */
  prompt_used: Type.Optional(Type.String()),
  /** Prompt words outside the pack's vocabulary; null when it lists none. */
  unknown_words: Type.Optional(Nullable(Type.Array(Type.String()))),
  images: Type.Array(StoredImage),
  metrics: Metrics,
});
export type GenerationResult = Static<typeof GenerationResult>;

export const GenerationFailure = Type.Object({ code: StringEnum(FAILURE_CODES), message: Type.String() });
export type GenerationFailure = Static<typeof GenerationFailure>;

/** A webhook the record owes: a job for the webhooks queue, kept in the outbox until it is queued. */
export const OwedWebhook = Type.Object({
  generation_id: Type.String(),
  event: StringEnum(WEBHOOK_EVENTS),
  event_id: Type.String(),
  url: Type.String(),
});
export type OwedWebhook = Static<typeof OwedWebhook>;

export { GenerationInputView as StoredInput, Progress as StoredProgress, WebhookFailure as StoredWebhookFailure };
