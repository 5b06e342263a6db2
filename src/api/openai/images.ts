// POST /v1/images/generations (OpenAI Images API): one route, answered as JSON or, with
// `stream: true`, as server-sent events.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';
import { assertSucceeded, finishedImages, startImageGeneration, waitForGeneration } from './image-generation.js';
import { clientGone } from '../caller.js';
import { streamImageGeneration } from './image-stream.js';
import { openAIErrorResponses } from './responses.js';
import { ImageGenerationBody, ImageStreamEvent, ImagesResponse, ref } from './schemas.js';

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
      const generation = await waitForGeneration(services, started.id, request.principal.id, {
        signal: clientGone(reply),
      });
      assertSucceeded(generation);
      const b64 = request.body.response_format === 'b64_json';
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
    },
  });
}
