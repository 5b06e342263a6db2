// Job payloads and results: one discriminated union, keyed by the BullMQ job name, that the
// API (producer) and the worker (consumer) both import, so the two cannot drift apart.
import { type FailureCode, isFailureCode } from '../errors.js';
import type { QueueName } from './queues.js';
import type { GenerationProgress } from './status.js';

export const OUTPUT_FORMATS = ['png', 'webp', 'jpeg'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const WEBHOOK_EVENTS = ['start', 'progress', 'completed'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/**
 * An image completion as accepted: which grid cells of the input image are kept (their codes
 * forced) and which are regenerated. Echoed in `input`, so GET, events and webhooks say it.
 */
export interface GenerationCompletion {
  /** The pack's image grid [rows, cols] and the size the image was resized to [height, width]. */
  grid: number[];
  image_size: number[];
  /** The request's `keep_rows`, or null when a mask chose the cells. */
  keep_rows: number | null;
  kept_cells: number;
  /** One string per grid row, top first: `#` a kept cell, `.` a regenerated one. */
  kept: string[];
}

/** Cell `i` (row-major) is kept: 1, else 0, from `kept`'s rows of `#` and `.`. */
export function keepCellsOf(completion: GenerationCompletion): Uint8Array {
  return Uint8Array.from(completion.kept.join(''), (cell) => (cell === '#' ? 1 : 0));
}

/** A generation request after defaults: what the job runs and what GET echoes as `input`. */
export interface GenerationInput {
  prompt: string;
  candidates: number;
  n: number;
  top_k?: number;
  temperature?: number;
  top_p?: number;
  seed: number;
  model?: string;
  output_format: OutputFormat;
  webhook?: string;
  webhook_events_filter: WebhookEvent[];
  /** Present when the generation completes an image. */
  completion?: GenerationCompletion;
  /** `image`: CLIP ranks against the input image instead of the prompt (variations). Absent: the prompt. */
  rank_by?: 'prompt' | 'image';
}

export interface GenerateJobData {
  input: GenerationInput;
  /** A completion's input image: PNG, base64, already at the pack's image size (the API resized it). */
  image?: string;
  created_at: string;
  /** The id of the API key that made it (`anonymous` in open mode; absent on older jobs, read as anonymous). */
  owner?: string;
  /**
   * Its generation's record was made before the job (always, since records exist). A job
   * without it was queued by an older version: the worker makes its record from the job.
   */
  recorded?: true;
}

/** Images in a Redis list beside their job (`key`, their bytes, with a TTL), which the worker reads. */
export interface ClipImagesRef {
  key: string;
  count: number;
}

/**
 * The images of one request in a CLIP job: small ones inline, base64 in the job's data (no key
 * to write, read and delete), larger ones beside the job (see service/clip-images.ts).
 */
export type ClipJobImages = { base64: string[] } | ClipImagesRef;

/** The outcome of a CLIP job, published to the channel its requests named (`reply_to`). */
export interface ClipReply {
  id: string;
  /** The job's return value when it completed. */
  result?: unknown;
  /** Its failed reason (`code: message`) when it failed for good. */
  failure?: string;
}

/**
 * A CLIP job: the requests of one API process that arrived together, one or more, each
 * answered on its own (one request's bad image fails only that request).
 */
export interface ClipJobData<R> {
  requests: R[];
  /** The pub/sub channel the waiting requests listen on; absent: the job is read back from BullMQ. */
  reply_to?: string;
}

/** One request's answer in its job's result: what it asked for, or its failure (`code: message`). */
export type ClipAnswer<R> = { id: string; result: R } | { id: string; failure: string };

export interface ClipJobResult<R> {
  answers: ClipAnswer<R>[];
}

export interface ClassifyRequestData {
  /** The request's own id: its place in the queue, and its answer's in the job's result. */
  id: string;
  images: ClipJobImages;
  labels: string[];
  templates?: string[];
  top_k?: number;
  model?: string;
}

export interface LabelScore {
  label: string;
  score: number;
}

export interface ClassifyResult {
  model: string;
  results: { labels: LabelScore[] }[];
}

export interface EmbedRequestData {
  id: string;
  images?: ClipJobImages;
  texts?: string[];
  model?: string;
}

export interface EmbedResult {
  model: string;
  embeddings: number[][];
  /** CLIP tokens the texts took together (texts only; OpenAI's usage). */
  tokens?: number;
}

export type ClassifyJobData = ClipJobData<ClassifyRequestData>;
export type ClassifyJobResult = ClipJobResult<ClassifyResult>;
export type EmbedJobData = ClipJobData<EmbedRequestData>;
export type EmbedJobResult = ClipJobResult<EmbedResult>;

/**
 * A classify job as versions before batched jobs queued it: one request, its images beside it,
 * answered with its result alone. Workers still run them, so a rolling upgrade loses none.
 */
export interface SingleClassifyJobData extends Omit<ClassifyRequestData, 'id' | 'images'> {
  images: ClipImagesRef;
  reply_to?: string;
}

/** An embed job as versions before batched jobs queued it (see SingleClassifyJobData). */
export interface SingleEmbedJobData extends Omit<EmbedRequestData, 'id' | 'images'> {
  images?: ClipImagesRef;
  reply_to?: string;
}

/** A job of this version, which carries its requests, rather than an older one's single request. */
export function isBatchJob<R>(data: ClipJobData<R> | object): data is ClipJobData<R> {
  return 'requests' in data && Array.isArray(data.requests);
}

export interface WebhookJobData {
  generation_id: string;
  event: WebhookEvent;
  url: string;
  /** The event's id in the generation's event log, whose entry the body is rendered from; also the job's id. */
  event_id: string;
}

/** Every job, discriminated by its BullMQ name. */
export type JobPayload =
  | {
      queue: 'generate';
      name: 'generate';
      data: GenerateJobData;
      // What a generation ends with lives in its record (src/service/lifecycle.ts), not in the job.
      result: void;
      progress: GenerationProgress;
    }
  | {
      queue: 'classify';
      name: 'classify';
      data: ClassifyJobData | SingleClassifyJobData;
      result: ClassifyJobResult | ClassifyResult;
      progress: never;
    }
  | {
      queue: 'classify';
      name: 'embed';
      data: EmbedJobData | SingleEmbedJobData;
      result: EmbedJobResult | EmbedResult;
      progress: never;
    }
  | { queue: 'webhooks'; name: 'webhook'; data: WebhookJobData; result: void; progress: never };

export type JobName = JobPayload['name'];
export type JobOf<N extends JobName> = Extract<JobPayload, { name: N }>;
export type JobsOfQueue<Q extends QueueName> = Extract<JobPayload, { queue: Q }>;
export type QueueData<Q extends QueueName> = JobsOfQueue<Q>['data'];
export type QueueResult<Q extends QueueName> = JobsOfQueue<Q>['result'];
export type QueueJobName<Q extends QueueName> = JobsOfQueue<Q>['name'];

/** Which queue carries each job name; a worker fails at start on a name with no handler. */
export const JOB_QUEUE: { [N in JobName]: JobOf<N>['queue'] } = {
  generate: 'generate',
  classify: 'classify',
  embed: 'classify',
  webhook: 'webhooks',
};

/**
 * Failure reasons are stored by BullMQ as one string; ours are `code: message`, the code from
 * the error catalogue, so that the API can report `{ code, message }`.
 */
export function formatFailure(code: FailureCode, message: string): string {
  return `${code}: ${message}`;
}

/** Codes that jobs stored by earlier versions may carry. */
const FORMER_CODES: Record<string, FailureCode> = { invalid_input: 'validation_failed' };

export function parseFailure(reason: string | undefined): { code: FailureCode; message: string } {
  const match = /^([a-z_]+): ([\s\S]*)$/.exec(reason ?? '');
  const code = match ? (FORMER_CODES[match[1]] ?? match[1]) : undefined;
  if (match && isFailureCode(code)) return { code, message: match[2] };
  // BullMQ's own reasons, e.g. a job that stalled more often than allowed.
  if (/stalled/i.test(reason ?? '')) return { code: 'worker_lost', message: reason ?? '' };
  return { code: 'internal_error', message: reason || 'the job failed' };
}

const EXTENSIONS: Record<OutputFormat, string> = { png: 'png', webp: 'webp', jpeg: 'jpg' };
export const CONTENT_TYPES: Record<OutputFormat, string> = { png: 'image/png', webp: 'image/webp', jpeg: 'image/jpeg' };

/** Where a generation's images live in the object store: all under one prefix per generation. */
export function generationPrefix(id: string): string {
  return `generations/${id}/`;
}

/** Each attempt's images under a name prefix of their own, so that no attempt deletes another's. */
export function attemptPrefix(id: string, attempt: number): string {
  return `${generationPrefix(id)}a${attempt}-`;
}

export function imageKey(id: string, attempt: number, rank: number, format: OutputFormat): string {
  return `${attemptPrefix(id, attempt)}${rank}.${EXTENSIONS[format]}`;
}
