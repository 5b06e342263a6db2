// `stream: true`: server-sent events in OpenAI's shapes. `image_generation.partial_image` carries
// the best candidate so far (at most `partial_images` of them), then one
// `image_generation.completed` per image, best first; an error after the stream began is an
// `error` event with OpenAI's error body (the SDKs raise it as an APIError).
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ServiceError } from '../../errors.js';
import { clientGone } from '../caller.js';
import type { Services } from '../services.js';
import { toOpenAIError } from './errors.js';
import { assertSucceeded, finishedImages, type StartedGeneration, waitForGeneration } from './image-generation.js';
import type { ImageGenerationBody } from './schemas.js';

function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function streamImageGeneration(
  services: Services,
  request: FastifyRequest,
  body: ImageGenerationBody,
  reply: FastifyReply,
  started: StartedGeneration,
): FastifyReply {
  const stream = new PassThrough();
  const gone = clientGone(reply);
  const common = {
    created_at: started.createdAt,
    size: started.size,
    quality: started.quality,
    background: 'opaque',
  };
  let partialsLeft = body.partial_images ?? 0;
  let partialIndex = 0;
  const run = async () => {
    const generation = await waitForGeneration(services, started.id, request.principal.id, {
      signal: gone,
      onPartial: (partial) => {
        if (partialsLeft === 0) return;
        partialsLeft -= 1;
        stream.write(
          sseEvent('image_generation.partial_image', {
            type: 'image_generation.partial_image',
            b64_json: partial.png.toString('base64'),
            ...common,
            output_format: 'png',
            partial_image_index: partialIndex++,
          }),
        );
      },
    });
    assertSucceeded(generation);
    const { images, usage } = await finishedImages(services, generation, started, request.principal.id);
    for (const image of images) {
      stream.write(
        sseEvent('image_generation.completed', {
          type: 'image_generation.completed',
          b64_json: (await image.bytes()).toString('base64'),
          ...common,
          output_format: generation.input.output_format,
          usage,
        }),
      );
    }
  };
  run()
    .catch((error: unknown) => {
      const known =
        error instanceof ServiceError
          ? error
          : new ServiceError('internal_error', `internal error; quote request id ${request.id}`);
      if (!(error instanceof ServiceError)) request.log.error({ err: error }, 'image stream failed');
      stream.write(sseEvent('error', { type: 'error', ...toOpenAIError(known) }));
    })
    .finally(() => stream.end());
  return reply
    .header('Cache-Control', 'no-cache')
    .header('X-Generation-Id', started.id)
    .type('text/event-stream; charset=utf-8')
    .send(stream);
}
