// POST /v1/images/generations over our generation jobs: the OpenAI request becomes an ordinary
// generation (same keys, quotas, queue depth; listed by GET /generations), the request waits for
// it, and its images come back best first, as URLs or base64.
import type { CreateGenerationBody, Generation, ModelInfo } from '../../contracts/schemas.js';
import { ServiceError, fieldError } from '../../errors.js';
import { serviceKeys } from '../../service/redis-keys.js';
import type { Principal } from '../../service/api-keys.js';
import { generationUrls } from '../../service/generation-view.js';
import { servedModel } from '../../service/model-registry.js';
import type { PartialImage } from '../../service/partial-images.js';
import type { Services } from '../services.js';
import { resolveModelAlias } from './models.js';
import { checkCompletionRequest, prepareCompletion } from '../completion.js';
import { type ImageEditFields, QUALITY_SHARE } from './schemas.js';

export interface StartedGeneration {
  id: string;
  createdAt: number;
  size: string;
  quality: string;
  candidates: number;
  /** Image tokens one candidate samples (the grid's cells); 0 while no worker reports the model. */
  imageTokens: number;
}

/** OpenAI's `usage`: the prompt's tokens in, every sampled candidate's image tokens out. */
export interface ImageUsage {
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  input_tokens_details: { text_tokens: number; image_tokens: number };
}

function nativeSize(info: ModelInfo): string | undefined {
  const size = info.generation?.image_size;
  return size ? `${size[1]}x${size[0]}` : undefined;
}

/** `auto` or the pack's own size: packs draw at one size and we do not resample. */
function checkedSize(info: ModelInfo | undefined, size?: string) {
  const native = info && nativeSize(info);
  if (size === undefined || size === 'auto' || size === native) return native ?? 'auto';
  throw fieldError(
    'size',
    native
      ? `must be auto or ${native}, the size ${info?.name} draws at`
      : 'must be auto while no worker reports the model',
  );
}

/**
 * The OpenAI request as a native one: quality picks the candidates, a share of the serving
 * workers' default (docs/openai.md), unless `candidates` does.
 */
export function nativeRequest(
  body: ImageEditFields,
  model: string | undefined,
  defaultCandidates: number,
): CreateGenerationBody {
  const n = body.n ?? 1;
  const share = QUALITY_SHARE[body.quality ?? 'auto'];
  const candidates = body.candidates ?? Math.max(n, Math.ceil(defaultCandidates * share));
  return {
    prompt: body.prompt,
    candidates,
    n,
    ...(model !== undefined && { model }),
    ...(body.seed !== undefined && { seed: body.seed }),
    ...(body.top_k !== undefined && { top_k: body.top_k }),
    ...(body.temperature !== undefined && { temperature: body.temperature }),
    ...(body.top_p !== undefined && { top_p: body.top_p }),
    output_format: body.output_format ?? 'png',
  };
}

/**
 * An edit's image, base64, and its mask: absent, the image's own transparency marks what to
 * regenerate. A variation keeps the image's top half instead and is ranked against the image.
 */
export interface ImageEdit {
  image: string;
  mask?: string;
  variation?: boolean;
}

/** The share of the grid's rows a variation keeps, from the top: the rest is redrawn. */
export const VARIATION_KEPT_SHARE = 1 / 2;

export async function startImageGeneration(
  services: Services,
  body: ImageEditFields,
  principal: Principal,
  edit?: ImageEdit,
): Promise<StartedGeneration> {
  const model = resolveModelAlias(services.config, body.model);
  await services.queues.connected();
  const info = await servedModel(services.queues.redis, serviceKeys(services.config.queuePrefix), model, 'generations');
  const size = checkedSize(info, body.size);
  const defaultCandidates = info?.generation?.default_candidates ?? services.config.defaultCandidates;
  const plain = nativeRequest(body, model, defaultCandidates);
  const native = !edit
    ? plain
    : edit.variation
      ? { ...plain, image: { base64: edit.image }, rank_by: 'image' as const }
      : { ...plain, image: { base64: edit.image }, mask: { base64: edit.mask ?? edit.image } };
  const maskField = edit?.mask === undefined ? 'image' : 'mask';
  const { accepted } = await services.generations.create(native, principal, undefined, async (served) => {
    const rows = served?.generation?.image_grid[0] ?? 2;
    const completed = edit?.variation
      ? { ...native, keep_rows: Math.max(1, Math.floor(rows * VARIATION_KEPT_SHARE)) }
      : native;
    const generation = checkCompletionRequest(completed, served);
    return generation ? prepareCompletion(completed, generation, services.config, maskField) : undefined;
  });
  const grid = info?.generation?.image_grid ?? [];
  return {
    id: accepted.id,
    createdAt: Math.floor(Date.parse(accepted.created_at) / 1000),
    size,
    quality: body.quality ?? 'auto',
    candidates: native.candidates ?? defaultCandidates,
    imageTokens: grid.length === 2 ? grid[0] * grid[1] : 0,
  };
}

export interface WaitOptions {
  /** Called with each new best-so-far image while the generation runs, and once more before the end. */
  onPartial?: (image: PartialImage) => void | Promise<void>;
  /** Stops waiting (the client went away); the generation goes on. */
  signal?: AbortSignal;
}

/**
 * Waits until the generation finishes or OPENAI_WAIT_TIMEOUT_MS passes. It follows the
 * generation's event log through the process's event hub (one blocking read serves every
 * waiter and open stream), so each event wakes it: a progress event to look for a new best
 * image, the terminal event to answer.
 */
export async function waitForGeneration(
  services: Services,
  id: string,
  owner: string,
  { onPartial, signal }: WaitOptions = {},
): Promise<Generation> {
  const timeoutMs = services.config.openaiWaitTimeoutMs;
  let lastPartial = -1;
  const checkPartial = async () => {
    if (!onPartial) return;
    const partial = await services.partialImages.newerThan(id, lastPartial);
    if (partial) {
      lastPartial = partial.index;
      await onPartial(partial);
    }
  };
  // Another key's generation is a 404 before anything is followed.
  await services.generations.record(id, owner);
  let finished = false;
  let timedOut = false;
  let wake = () => {};
  const unsubscribe = services.eventHub.subscribe(id, '0-0', (event) => {
    if (event.event === 'completed') finished = true;
    wake();
  });
  // The timer says when time is up, not a deadline read on the clock: the process held up a
  // moment after setting the timer puts such a deadline past the timer, which then fires before
  // it, and nothing would wake the wait again.
  const timer = setTimeout(() => {
    timedOut = true;
    wake();
  }, timeoutMs);
  const onAbort = () => wake();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const woken = new Promise<void>((resolve) => (wake = resolve));
      await checkPartial();
      if (finished) {
        const generation = await services.generations.get(id, owner);
        // Read after the terminal event: a best image recorded before the end is never skipped.
        await checkPartial();
        return generation;
      }
      if (signal?.aborted) throw new ServiceError('timeout', `the client left; generation ${id} goes on`);
      if (timedOut) {
        throw new ServiceError(
          'timeout',
          `generation ${id} did not finish within ${timeoutMs} ms; it goes on: poll ${generationUrls(services.config.publicBaseUrl, id).get}`,
        );
      }
      await woken;
    }
  } finally {
    unsubscribe();
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/** A finished generation's outcome: its images, or the error it ended with. */
export function assertSucceeded(generation: Generation): void {
  if (generation.status === 'succeeded') return;
  if (generation.status === 'canceled') {
    throw new ServiceError('generation_finished', `generation ${generation.id} was canceled`);
  }
  const reason = generation.error ? `${generation.error.code}: ${generation.error.message}` : 'unknown reason';
  throw new ServiceError('job_failed', `generation ${generation.id} failed: ${reason}`);
}

export interface FinishedImage {
  url: string;
  /** Encoded bytes, read from the object store. */
  bytes: () => Promise<Buffer>;
  revisedPrompt: string;
}

/** The generation's images best first, with the prompt the model really read, and the tokens it took. */
export async function finishedImages(
  services: Services,
  generation: Generation,
  started: StartedGeneration,
  owner: string,
): Promise<{ images: FinishedImage[]; usage: ImageUsage }> {
  const result = (await services.generations.record(generation.id, owner)).result;
  if (!result) throw new ServiceError('not_found', `generation ${generation.id} is gone`);
  const revisedPrompt = result.prompt_used ?? generation.input.prompt;
  const keys = new Map(result.images.map((image) => [image.rank, image.key]));
  const outputTokens = generation.input.candidates * started.imageTokens;
  const usage = {
    input_tokens: result.prompt_tokens,
    output_tokens: outputTokens,
    total_tokens: result.prompt_tokens + outputTokens,
    input_tokens_details: { text_tokens: result.prompt_tokens, image_tokens: 0 },
  };
  const images = [...generation.images]
    .sort((a, b) => a.rank - b.rank)
    .map((image) => ({
      url: image.url,
      revisedPrompt,
      bytes: async () => {
        const object = await services.store.get(keys.get(image.rank) ?? '');
        if (!object) throw new ServiceError('not_found', `an image of generation ${generation.id} is gone`);
        return Buffer.from(object.body.buffer, object.body.byteOffset, object.body.byteLength);
      },
    }));
  return { images, usage };
}
