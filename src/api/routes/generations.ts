// Generation routes: a table of method, URL, schema and the service call behind each.
import { type TypeBoxTypeProvider, Type } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import {
  CreateGenerationBody,
  CreateGenerationMultipartBody,
  Generation,
  GenerationAccepted,
  GenerationIdParams,
  GenerationList,
  IdempotencyHeaders,
  ListGenerationsQuery,
  ref,
} from '../../contracts/schemas.js';
import { checkCompletionRequest, prepareCompletion } from '../completion.js';
import { endAllStreams, streamEvents } from '../event-stream.js';
import { generationBodyFromMultipart } from '../generation-requests.js';
import type { Services } from '../services.js';
import { problemResponses } from './responses.js';

const tags = ['generations'];

export async function generationRoutes(instance: FastifyInstance, services: Services): Promise<void> {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();
  const { generations } = services;
  const streams = {
    ...services,
    log: generations.events,
    hub: services.eventHub,
  };
  // Open streams would hold the server open: they end when it closes.
  app.addHook('preClose', async () => endAllStreams());

  app.post('/generations', {
    schema: {
      tags,
      operationId: 'createGeneration',
      summary: 'Start a generation',
      description:
        "Queues a generation and answers at once. Poll the `Location` or receive webhooks. An `Idempotency-Key` (kept 24 h) makes a retried request return the same generation. With `image` and `keep_rows` or `mask` it completes the image (DALL·E's image prompts): the kept cells come from the image, the rest is sampled to follow them and the prompt, and `completion` says which cells were kept. Send JSON, or a multipart form with `image` (and `mask`) as files and the other fields as text.",
      body: {
        content: {
          'application/json': { schema: CreateGenerationBody },
          'multipart/form-data': { schema: CreateGenerationMultipartBody },
        },
      },
      headers: IdempotencyHeaders,
      response: {
        202: { ...ref(GenerationAccepted), description: 'Queued; `Location` names the generation' },
        ...problemResponses(
          'validation_failed',
          'malformed_body',
          'unknown_model',
          'completion_unsupported',
          'invalid_image',
          'invalid_mask',
          'unsupported_image_format',
          'image_fetch_failed',
          'images_too_large',
          'webhooks_disabled',
          'url_not_allowed',
          'idempotency_key_reused',
          'payload_too_large',
          'unsupported_media_type',
          'queue_full',
          'quota_exceeded',
        ),
      },
    },
    handler: async (request, reply) => {
      const body = request.isMultipart()
        ? await generationBodyFromMultipart(request)
        : (request.body as CreateGenerationBody);
      const { accepted, replayed } = await generations.create(
        body,
        request.principal,
        request.headers['idempotency-key'],
        async (model) => {
          const generation = checkCompletionRequest(body, model);
          return generation ? prepareCompletion(body, generation, services.config) : undefined;
        },
      );
      reply.header('Location', accepted.urls.get);
      if (replayed) reply.header('Idempotent-Replayed', 'true');
      return reply.code(202).send(accepted);
    },
  });

  app.get('/generations', {
    schema: {
      tags,
      operationId: 'listGenerations',
      summary: 'List generations, newest first',
      querystring: ListGenerationsQuery,
      response: { 200: ref(GenerationList), ...problemResponses('validation_failed') },
    },
    handler: async (request) => generations.list(request.query, request.principal.id),
  });

  app.get('/generations/:id', {
    schema: {
      tags,
      operationId: 'getGeneration',
      summary: 'Get a generation',
      params: GenerationIdParams,
      response: { 200: ref(Generation), ...problemResponses('not_found') },
    },
    handler: async (request) => generations.get(request.params.id, request.principal.id),
  });

  app.get('/generations/:id/events', {
    schema: {
      tags,
      operationId: 'streamGenerationEvents',
      summary: 'Follow a generation as server-sent events',
      description:
        'Events `start`, `progress` (each stage change, then at most every `PROGRESS_EVENT_INTERVAL_MS`) and `completed` (the terminal event, whatever the outcome), each with an `id:` that stays the same if the job is retried and `data:` the body its webhook has (this generation as `GET /generations/:id` showed it then, plus `event`). A `Last-Event-ID` header resumes after that event. A comment line comes every `SSE_HEARTBEAT_MS` while idle; the stream closes after `completed`. A finished generation answers with its `completed` event at once.',
      params: GenerationIdParams,
      response: {
        200: {
          description: 'A text/event-stream of `id:`, `event:` and `data:` (JSON) lines',
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        ...problemResponses('not_found'),
      },
    },
    handler: async (request, reply) => streamEvents(streams, request.params.id, request, reply),
  });

  app.delete('/generations/:id', {
    schema: {
      tags,
      operationId: 'deleteGeneration',
      summary: 'Delete a finished generation and its images',
      params: GenerationIdParams,
      response: {
        204: Type.Null({ description: 'Deleted' }),
        ...problemResponses('not_found', 'generation_not_finished'),
      },
    },
    handler: async (request, reply) => {
      await generations.remove(request.params.id, request.principal.id);
      return reply.code(204).send(null);
    },
  });

  app.post('/generations/:id/cancel', {
    schema: {
      tags,
      operationId: 'cancelGeneration',
      summary: 'Cancel a generation',
      description:
        'A queued generation is canceled at once; a running one stops at its next chunk, whichever worker runs it.',
      params: GenerationIdParams,
      response: { 202: ref(Generation), ...problemResponses('not_found', 'generation_finished') },
    },
    handler: async (request, reply) =>
      reply.code(202).send(await generations.cancel(request.params.id, request.principal.id)),
  });
}
