// The classify queue's handlers. A job carries the requests one API process gathered (see
// service/clip-batches.ts) and answers each on its own: one request's bad image fails only
// that request. Classify requests go through the micro-batcher with other jobs' requests;
// an embed job's texts (and its images) go to the engine together. A job whose every request
// failed for a reason worth another attempt fails as a whole, and BullMQ tries it again.
import type { Job } from 'bullmq';
import {
  type ClassifyJobData,
  type ClassifyJobResult,
  type ClassifyRequestData,
  type ClassifyResult,
  type ClipAnswer,
  type ClipJobData,
  type ClipJobResult,
  type EmbedJobData,
  type EmbedJobResult,
  type EmbedRequestData,
  type EmbedResult,
  type SingleClassifyJobData,
  type SingleEmbedJobData,
  formatFailure,
  isBatchJob,
  parseFailure,
} from '../contracts/jobs.js';
import { ERRORS } from '../errors.js';
import type { Engine } from '../models/types.js';
import type { ClipImages } from '../service/clip-images.js';
import type { ClassifyBatcher } from './batcher.js';
import { failureOf, jobFailure } from './failures.js';

export interface ClipHandlerDeps {
  defaultClipModel: string;
  images: ClipImages;
  /** Frees the queue places of requests whose job this worker took. */
  releasePlaces: (ids: string[]) => Promise<void>;
}

const GONE = formatFailure('canceled', 'the images of this request are gone: it ended');

/** A request's failure as its answer: `code: message`, the code from the catalogue. */
function failureText(error: unknown): string {
  return failureOf(error, 'internal_error').message;
}

/**
 * The answers, or the job's failure when no request succeeded and one failed for a reason
 * worth another attempt (the engine stopped, say): BullMQ tries the whole job again.
 */
function finish<R>(answers: ClipAnswer<R>[]): ClipJobResult<R> {
  const failures = answers.flatMap((answer) => ('failure' in answer ? [parseFailure(answer.failure)] : []));
  const retried = failures.find((failure) => ERRORS[failure.code].retry);
  if (retried && failures.length === answers.length) throw jobFailure(retried.code, retried.message);
  return { answers };
}

/**
 * Runs a job's requests: frees their places and reads their images (both at once), then
 * `run` answers those whose images are there.
 */
async function runRequests<Q extends { id: string; images?: ClassifyRequestData['images'] }, R>(
  deps: ClipHandlerDeps,
  data: ClipJobData<Q>,
  run: (requests: { request: Q; images: Uint8Array[] }[]) => Promise<ClipAnswer<R>[]>,
): Promise<ClipJobResult<R>> {
  const { requests } = data;
  const [, images] = await Promise.all([
    deps.releasePlaces(requests.map((request) => request.id)),
    deps.images.load(requests.map((request) => request.images)),
  ]);
  const answers = new Map<string, ClipAnswer<R>>();
  const runnable: { request: Q; images: Uint8Array[] }[] = [];
  requests.forEach((request, i) => {
    const bytes = images[i];
    if (bytes) runnable.push({ request, images: bytes });
    else answers.set(request.id, { id: request.id, failure: GONE });
  });
  for (const answer of runnable.length > 0 ? await run(runnable) : []) answers.set(answer.id, answer);
  return finish(requests.map((request) => answers.get(request.id) ?? { id: request.id, failure: GONE }));
}

/** A job queued by an older version, run as a job of one request and answered in its own shape. */
async function runSingle<R>(
  job: Job,
  data: { reply_to?: string },
  run: (data: ClipJobData<{ id: string }>) => Promise<ClipJobResult<R>>,
): Promise<R> {
  const { reply_to: _replyTo, ...request } = data;
  const id = job.id ?? 'single';
  const [answer] = (await run({ requests: [{ ...request, id }] })).answers;
  if ('result' in answer) return answer.result;
  const failure = parseFailure(answer.failure);
  throw jobFailure(failure.code, failure.message);
}

export function createClassifyHandler(batcher: ClassifyBatcher, deps: ClipHandlerDeps) {
  const classify = (data: ClassifyJobData) =>
    runRequests<ClassifyRequestData, ClassifyResult>(deps, data, async (runnable) => {
      const models = runnable.map(({ request }) => request.model ?? deps.defaultClipModel);
      const settled = await batcher.submit(
        runnable.map(({ request, images }, i) => ({
          images,
          labels: request.labels,
          templates: request.templates,
          topK: request.top_k,
          model: models[i],
        })),
      );
      return settled.map((outcome, i): ClipAnswer<ClassifyResult> => {
        const { id } = runnable[i].request;
        if (outcome.status === 'rejected') return { id, failure: failureText(outcome.reason) };
        if (!outcome.value.ok)
          return { id, failure: formatFailure(outcome.value.error.code, outcome.value.error.message) };
        return { id, result: { model: models[i], results: outcome.value.results.map((labels) => ({ labels })) } };
      });
    });
  return async (
    job: Job<ClassifyJobData | SingleClassifyJobData, ClassifyJobResult | ClassifyResult, 'classify'>,
  ): Promise<ClassifyJobResult | ClassifyResult> => {
    const data = job.data;
    if (isBatchJob<ClassifyRequestData>(data)) return classify(data);
    // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- an older job's fields are a request's but its id, which runSingle adds
    return runSingle(job, data, (single) => classify(single as ClassifyJobData));
  };
}

/** Runs `items` in one engine call, or one by one when that call fails: a bad item fails alone. */
async function together<T, R>(items: T[], run: (items: T[]) => Promise<R[]>): Promise<PromiseSettledResult<R>[]> {
  try {
    return (await run(items)).map((value) => ({ status: 'fulfilled', value }));
  } catch (reason) {
    if (items.length === 1) return [{ status: 'rejected', reason }];
    const settled: PromiseSettledResult<R>[] = [];
    for (const item of items) settled.push(...(await together([item], run)));
    return settled;
  }
}

/** Splits `values` into runs of the given lengths. */
function split<T>(values: T[], lengths: number[]): T[][] {
  let start = 0;
  return lengths.map((length) => values.slice(start, (start += length)));
}

export function createEmbedHandler(engine: Engine, deps: ClipHandlerDeps) {
  const embedOne = async (
    group: { request: EmbedRequestData; images: Uint8Array[] }[],
    model: string,
  ): Promise<EmbedResult[]> => {
    if (group[0].request.texts === undefined) {
      const vectors = await engine.embedImages(
        group.flatMap(({ images }) => images),
        model,
      );
      return split(
        vectors,
        group.map(({ images }) => images.length),
      ).map((part) => ({ model, embeddings: part.map((vector) => Array.from(vector)) }));
    }
    const texts = group.flatMap(({ request }) => request.texts ?? []);
    const [vectors, counts] = await Promise.all([
      engine.embedTexts(texts, model),
      engine.countTextTokens(texts, model),
    ]);
    const lengths = group.map(({ request }) => request.texts?.length ?? 0);
    const tokens = split(counts, lengths);
    return split(vectors, lengths).map((part, i) => ({
      model,
      embeddings: part.map((vector) => Array.from(vector)),
      tokens: tokens[i].reduce((sum, count) => sum + count, 0),
    }));
  };
  const embed = (data: EmbedJobData) =>
    runRequests<EmbedRequestData, EmbedResult>(deps, data, async (runnable) => {
      // Texts and images apart, each model apart: one engine call per kind and model.
      const groups = new Map<string, typeof runnable>();
      for (const item of runnable) {
        const model = item.request.model ?? deps.defaultClipModel;
        const key = JSON.stringify([item.request.texts === undefined, model]);
        groups.set(key, [...(groups.get(key) ?? []), item]);
      }
      const answers: ClipAnswer<EmbedResult>[] = [];
      for (const group of groups.values()) {
        const model = group[0].request.model ?? deps.defaultClipModel;
        const settled = await together(group, (items) => embedOne(items, model));
        settled.forEach((outcome, i) => {
          const { id } = group[i].request;
          answers.push(
            outcome.status === 'fulfilled'
              ? { id, result: outcome.value }
              : { id, failure: failureText(outcome.reason) },
          );
        });
      }
      return answers;
    });
  return async (
    job: Job<EmbedJobData | SingleEmbedJobData, EmbedJobResult | EmbedResult, 'embed'>,
  ): Promise<EmbedJobResult | EmbedResult> => {
    const data = job.data;
    if (isBatchJob<EmbedRequestData>(data)) return embed(data);
    // eslint-disable-next-line @typescript-eslint/consistent-type-assertions -- an older job's fields are a request's but its id, which runSingle adds
    return runSingle(job, data, (single) => embed(single as EmbedJobData));
  };
}
