// The classify queue's handlers: classify goes through the micro-batcher, embed runs alone.
import { type Job, UnrecoverableError } from 'bullmq';
import type { ClassifyJobData, ClassifyJobResult, EmbedJobData, EmbedJobResult } from '../contracts/jobs.js';
import { formatFailure } from '../contracts/jobs.js';
import { InvalidImageError, ModelError } from '../models/index.js';
import type { Engine } from '../models/types.js';
import type { ClassifyBatcher } from './batcher.js';

function decodeImages(images: string[]): Uint8Array[] {
  return images.map((image) => Buffer.from(image, 'base64'));
}

/** Errors about the request itself are final (a 400 for the client); others may be retried. */
function clipFailure(error: unknown): Error {
  if (error instanceof InvalidImageError) return new UnrecoverableError(formatFailure('invalid_image', error.message));
  if (error instanceof ModelError && error.code === 'unknown_model')
    return new UnrecoverableError(formatFailure('unknown_model', error.message));
  if (error instanceof ModelError && error.code === 'invalid_request')
    return new UnrecoverableError(formatFailure('invalid_input', error.message));
  return error instanceof Error ? error : new Error(String(error));
}

export function createClassifyHandler(batcher: ClassifyBatcher, defaultClipModel: string) {
  return async (job: Job<ClassifyJobData, ClassifyJobResult, 'classify'>): Promise<ClassifyJobResult> => {
    const { images, labels, templates, top_k: topK } = job.data;
    const model = job.data.model ?? defaultClipModel;
    let outcome;
    try {
      outcome = await batcher.submit({ images: decodeImages(images), labels, templates, topK, model });
    } catch (error) {
      throw clipFailure(error);
    }
    if (!outcome.ok) {
      // The engine reports any per-request fault here, not only undecodable images.
      const code = outcome.error.code as string;
      const failure =
        code === 'unknown_model' ? 'unknown_model' : code === 'invalid_request' ? 'invalid_input' : 'invalid_image';
      throw new UnrecoverableError(formatFailure(failure, outcome.error.message));
    }
    return { model, results: outcome.results.map((labelScores) => ({ labels: labelScores })) };
  };
}

export function createEmbedHandler(engine: Engine, defaultClipModel: string) {
  return async (job: Job<EmbedJobData, EmbedJobResult, 'embed'>): Promise<EmbedJobResult> => {
    const { images, texts } = job.data;
    const model = job.data.model ?? defaultClipModel;
    try {
      const vectors = images
        ? await engine.embedImages(decodeImages(images), model)
        : await engine.embedTexts(texts ?? [], model);
      return { model, embeddings: vectors.map((vector) => Array.from(vector)) };
    } catch (error) {
      throw clipFailure(error);
    }
  };
}
