// CLIP routes: each request joins a job (with those that arrive together) and waits for its own answer.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import {
  ClassifyBody,
  ClassifyMultipartBody,
  ClassifyResponse,
  EmbedBody,
  EmbedResponse,
  ref,
} from '../../contracts/schemas.js';
import { clipCaller } from '../caller.js';
import { classifyRequestFromJson, classifyRequestFromMultipart, embedRequestFromJson } from '../clip-requests.js';
import type { Services } from '../services.js';
import { problemResponses } from './responses.js';

const tags = ['clip'];
const clipErrors = [
  'validation_failed',
  'malformed_body',
  'invalid_image',
  'unsupported_image_format',
  'image_fetch_failed',
  'url_not_allowed',
  'unknown_model',
  'payload_too_large',
  'images_too_large',
  'unsupported_media_type',
  'job_failed',
  'queue_full',
  'timeout',
] as const;

export async function clipRoutes(instance: FastifyInstance, { clip, config }: Services): Promise<void> {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/clip/classify', {
    config: { countsOwnRequest: true },
    schema: {
      tags,
      operationId: 'classifyImages',
      summary: 'Zero-shot image classification',
      description:
        'Scores are probabilities over all the labels, sorted; without `top_k` every label is returned and they sum to 1. Send JSON, or a multipart form with one `image` part per file and one `labels` field per label.',
      body: {
        content: {
          'application/json': { schema: ClassifyBody },
          'multipart/form-data': { schema: ClassifyMultipartBody },
        },
      },
      response: { 200: ref(ClassifyResponse), ...problemResponses(...clipErrors) },
    },
    handler: async (request, reply) => {
      const clipRequest = request.isMultipart()
        ? await classifyRequestFromMultipart(request, config)
        : classifyRequestFromJson(request.body as ClassifyBody, config);
      return clip.classify(clipRequest, clipCaller(request, reply));
    },
  });

  app.post('/clip/embed', {
    config: { countsOwnRequest: true },
    schema: {
      tags,
      operationId: 'embed',
      summary: 'L2-normalised CLIP embeddings of images or texts',
      body: EmbedBody,
      response: { 200: ref(EmbedResponse), ...problemResponses(...clipErrors) },
    },
    handler: async (request, reply) => {
      const result = await clip.embed(embedRequestFromJson(request.body, config), clipCaller(request, reply));
      return { model: result.model, dim: result.embeddings[0]?.length ?? 0, embeddings: result.embeddings };
    },
  });
}
