// The classify queue's handlers: classify goes through the micro-batcher, embed runs alone.
import type { Job } from 'bullmq';
import type { ClassifyJobData, ClassifyJobResult, EmbedJobData, EmbedJobResult } from '../contracts/jobs.js';
import type { Engine } from '../models/types.js';
import type { ClassifyBatcher } from './batcher.js';
import { failureOf, jobFailure } from './failures.js';

function decodeImages(images: string[]): Uint8Array[] {
  return images.map((image) => Buffer.from(image, 'base64'));
}

/** Errors about the request itself are final (a 400 for the client); others may be retried. */
function clipFailure(error: unknown): Error {
  return failureOf(error, 'internal_error');
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
      throw jobFailure(outcome.error.code, outcome.error.message);
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
