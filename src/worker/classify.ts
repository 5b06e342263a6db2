// The classify queue's handlers: classify goes through the micro-batcher, embed runs alone.
import type { Job } from 'bullmq';
import type {
  ClassifyJobData,
  ClassifyJobResult,
  ClipImagesRef,
  EmbedJobData,
  EmbedJobResult,
} from '../contracts/jobs.js';
import type { Engine } from '../models/types.js';
import type { ClipImages } from '../service/clip-images.js';
import type { ClassifyBatcher } from './batcher.js';
import { failureOf, jobFailure } from './failures.js';

/** The job's images, read from beside it; gone means the request gave up, and so does the job. */
async function loadImages(store: ClipImages, ref: ClipImagesRef): Promise<Uint8Array[]> {
  const images = await store.load(ref);
  if (!images) throw jobFailure('canceled', 'the images of this job are gone: its request ended');
  return images;
}

/** Errors about the request itself are final (a 400 for the client); others may be retried. */
function clipFailure(error: unknown): Error {
  return failureOf(error, 'internal_error');
}

export function createClassifyHandler(batcher: ClassifyBatcher, defaultClipModel: string, store: ClipImages) {
  return async (job: Job<ClassifyJobData, ClassifyJobResult, 'classify'>): Promise<ClassifyJobResult> => {
    const { images, labels, templates, top_k: topK } = job.data;
    const model = job.data.model ?? defaultClipModel;
    const bytes = await loadImages(store, images);
    const [settled] = await batcher.submit([{ images: bytes, labels, templates, topK, model }]);
    if (settled.status === 'rejected') throw clipFailure(settled.reason);
    const outcome = settled.value;
    if (!outcome.ok) {
      throw jobFailure(outcome.error.code, outcome.error.message);
    }
    return { model, results: outcome.results.map((labelScores) => ({ labels: labelScores })) };
  };
}

export function createEmbedHandler(engine: Engine, defaultClipModel: string, store: ClipImages) {
  return async (job: Job<EmbedJobData, EmbedJobResult, 'embed'>): Promise<EmbedJobResult> => {
    const { images, texts } = job.data;
    const model = job.data.model ?? defaultClipModel;
    const bytes = images ? await loadImages(store, images) : undefined;
    try {
      if (bytes) {
        const vectors = await engine.embedImages(bytes, model);
        return { model, embeddings: vectors.map((vector) => Array.from(vector)) };
      }
      const [vectors, counts] = await Promise.all([
        engine.embedTexts(texts ?? [], model),
        engine.countTextTokens(texts ?? [], model),
      ]);
      const tokens = counts.reduce((sum, count) => sum + count, 0);
      return { model, embeddings: vectors.map((vector) => Array.from(vector)), tokens };
    } catch (error) {
      throw clipFailure(error);
    }
  };
}
