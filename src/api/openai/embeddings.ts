// POST /v1/embeddings: CLIP text embeddings (L2-normalised) through the same classify queue as
// POST /clip/embed, in OpenAI's shape.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { clipCaller } from '../caller.js';
import type { Services } from '../services.js';
import { resolveModelAlias } from './models.js';
import { openAIErrorResponses } from './responses.js';
import { EmbeddingsBody, EmbeddingsResponse, ref } from './schemas.js';

const tags = ['openai'];

/** OpenAI's base64 encoding: the float32 values' little-endian bytes. */
export function base64Floats(values: number[]): string {
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString('base64');
}

export async function openAIEmbeddingRoutes(instance: FastifyInstance, { clip, config }: Services): Promise<void> {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();

  app.post('/embeddings', {
    config: { countsOwnRequest: true },
    schema: {
      tags,
      operationId: 'openaiCreateEmbeddings',
      summary: 'Create text embeddings (OpenAI)',
      description:
        'CLIP text embeddings, L2-normalised, one per input in order. `usage` counts the CLIP tokens the inputs took (start and end tokens included, after truncation to the context).',
      body: EmbeddingsBody,
      response: {
        200: ref(EmbeddingsResponse),
        ...openAIErrorResponses(
          'validation_failed',
          'malformed_body',
          'unknown_model',
          'payload_too_large',
          'unsupported_media_type',
          'job_failed',
          'queue_full',
          'timeout',
        ),
      },
    },
    handler: async (request, reply) => {
      const { input, encoding_format: encoding = 'float' } = request.body;
      const texts = (typeof input === 'string' ? [input] : input).map((text) => text.normalize('NFC'));
      const model = resolveModelAlias(config, request.body.model);
      const result = await clip.embed(
        { data: { texts, ...(model !== undefined && { model }) } },
        clipCaller(request, reply),
      );
      return {
        object: 'list' as const,
        model: request.body.model ?? result.model,
        data: result.embeddings.map((embedding, index) => ({
          object: 'embedding' as const,
          index,
          embedding: encoding === 'base64' ? base64Floats(embedding) : embedding,
        })),
        usage: { prompt_tokens: result.tokens ?? 0, total_tokens: result.tokens ?? 0 },
      };
    },
  });
}
