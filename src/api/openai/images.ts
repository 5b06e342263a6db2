// POST /v1/images/generations (OpenAI Images API), answered as JSON or, with `stream: true`, as
// server-sent events; POST /v1/images/edits, a completion of the uploaded image.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services.js';
import { imageEditFromMultipart, imageVariationFromMultipart } from './image-edits.js';
import {
  type StartedGeneration,
  assertSucceeded,
  finishedImages,
  startImageGeneration,
  waitForGeneration,
} from './image-generation.js';
import { clientGone } from '../caller.js';
import { streamImageGeneration } from './image-stream.js';
import { openAIErrorResponses } from './responses.js';
import {
  type ImageEditFields,
  ImageEditMultipartBody,
  ImageVariationMultipartBody,
  ImageGenerationBody,
  ImageStreamEvent,
  ImagesResponse,
  ref,
} from './schemas.js';

const tags = ['openai'];

export async function openAIImageRoutes(instance: FastifyInstance, services: Services): Promise<void> {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/images/generations', {
    schema: {
      tags,
      operationId: 'openaiCreateImage',
      summary: 'Create images (OpenAI)',
      description:
        'Starts an ordinary generation (listed by `GET /generations`) and waits for it, at most `OPENAI_WAIT_TIMEOUT_MS`; past that, a 504 `timeout` names the generation, which goes on. `X-Generation-Id` names it in every answer. Fields and extensions: docs/openai.md.',
      body: ImageGenerationBody,
      response: {
        200: {
          description: 'The images, best first; with `stream: true`, server-sent events instead',
          content: {
            'application/json': { schema: ref(ImagesResponse) },
            'text/event-stream': { schema: ref(ImageStreamEvent) },
          },
        },
        ...openAIErrorResponses(
          'validation_failed',
          'malformed_body',
          'unknown_model',
          'not_found',
          'generation_finished',
          'payload_too_large',
          'unsupported_media_type',
          'quota_exceeded',
          'job_failed',
          'queue_full',
          'timeout',
        ),
      },
    },
    handler: async (request, reply) => {
      const started = await startImageGeneration(services, request.body, request.principal);
      reply.header('X-Generation-Id', started.id);
      if (request.body.stream) return streamImageGeneration(services, request, request.body, reply, started);
      return answerImages(services, request, reply, request.body, started);
    },
  });

  app.post('/images/edits', {
    schema: {
      tags,
      operationId: 'openaiEditImage',
      summary: 'Edit an image (OpenAI)',
      description:
        "A completion of the image (POST /generations with `image` and `mask`): the cells the mask's transparent pixels touch (without a mask, the image's own transparent pixels) are redrawn to follow the rest and the prompt, and CLIP keeps the best. The image is resized to the model's size. Waits as `/v1/images/generations` does. Fields: docs/openai.md.",
      body: { content: { 'multipart/form-data': { schema: ImageEditMultipartBody } } },
      response: {
        200: { description: 'The edited images, best first', ...ref(ImagesResponse) },
        ...openAIErrorResponses(
          'validation_failed',
          'malformed_body',
          'unknown_model',
          'completion_unsupported',
          'invalid_image',
          'invalid_mask',
          'unsupported_image_format',
          'images_too_large',
          'not_found',
          'generation_finished',
          'payload_too_large',
          'unsupported_media_type',
          'quota_exceeded',
          'job_failed',
          'queue_full',
          'timeout',
        ),
      },
    },
    handler: (request, reply) => answerCompletion(services, request, reply, imageEditFromMultipart),
  });

  app.post('/images/variations', {
    schema: {
      tags,
      operationId: 'openaiCreateImageVariation',
      summary: 'Create image variations (OpenAI)',
      description:
        "A completion of the image without text: the top half of the model's grid is kept, the bottom half redrawn, and CLIP ranks the candidates by their similarity to the image itself instead of a prompt. The image is resized to the model's size. Waits as `/v1/images/generations` does. Fields: docs/openai.md.",
      body: { content: { 'multipart/form-data': { schema: ImageVariationMultipartBody } } },
      response: {
        200: { description: 'The variations, best first', ...ref(ImagesResponse) },
        ...openAIErrorResponses(
          'validation_failed',
          'malformed_body',
          'unknown_model',
          'completion_unsupported',
          'invalid_image',
          'unsupported_image_format',
          'images_too_large',
          'not_found',
          'generation_finished',
          'payload_too_large',
          'unsupported_media_type',
          'quota_exceeded',
          'job_failed',
          'queue_full',
          'timeout',
        ),
      },
    },
    handler: (request, reply) => answerCompletion(services, request, reply, imageVariationFromMultipart),
  });
}

/** An edit or a variation: its form read by `read`, then generated and answered as any. */
async function answerCompletion(
  services: Services,
  request: FastifyRequest,
  reply: FastifyReply,
  read: (request: FastifyRequest) => ReturnType<typeof imageEditFromMultipart | typeof imageVariationFromMultipart>,
) {
  const { fields, edit } = await read(request);
  const started = await startImageGeneration(services, fields, request.principal, edit);
  reply.header('X-Generation-Id', started.id);
  return answerImages(services, request, reply, fields, started);
}

/** Waits for the generation and answers its images, best first, as OpenAI's ImagesResponse. */
async function answerImages(
  services: Services,
  request: FastifyRequest,
  reply: FastifyReply,
  body: ImageEditFields,
  started: StartedGeneration,
) {
  const generation = await waitForGeneration(services, started.id, request.principal.id, {
    signal: clientGone(reply),
  });
  assertSucceeded(generation);
  const b64 = body.response_format === 'b64_json';
  const { images, usage } = await finishedImages(services, generation, started, request.principal.id);
  return reply.type('application/json').send({
    created: started.createdAt,
    data: await Promise.all(
      images.map(async (image) =>
        b64
          ? { b64_json: (await image.bytes()).toString('base64'), revised_prompt: image.revisedPrompt }
          : { url: image.url, revised_prompt: image.revisedPrompt },
      ),
    ),
    output_format: generation.input.output_format,
    size: started.size,
    quality: started.quality,
    usage,
  });
}
