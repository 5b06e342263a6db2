// Serves the local-folder store's objects to holders of a signed, unexpired URL.
import type { FastifyInstance } from 'fastify';
import { type TypeBoxTypeProvider, Type } from '@fastify/type-provider-typebox';
import { ServiceError } from '../../errors.js';
import { resolveSigningSecret, verifyFileSignature } from '../../storage/index.js';
import type { Services } from '../services.js';
import { publicProblemResponses } from './responses.js';

export async function fileRoutes(app: FastifyInstance, { store, storage }: Services): Promise<void> {
  if (storage.kind !== 'fs') return;
  app.withTypeProvider<TypeBoxTypeProvider>().get('/files/*', {
    // The signature is the credential: these URLs are handed to browsers and receivers.
    config: { public: true },
    schema: {
      security: [],
      tags: ['generations'],
      operationId: 'getFile',
      summary: 'Image bytes behind a signed URL',
      description: 'The URLs in generation responses point here; they stop working at `expires_at`.',
      params: Type.Object({ '*': Type.String({ description: 'Object key' }) }),
      // The signature is checked by hand so that every bad URL is the same 404.
      querystring: Type.Object({ expires: Type.Optional(Type.String()), signature: Type.Optional(Type.String()) }),
      response: {
        200: {
          description: 'The image bytes',
          content: { 'image/*': { schema: Type.Unsafe<Buffer>({ type: 'string', format: 'binary' }) } },
        },
        ...publicProblemResponses('not_found'),
      },
    },
    handler: async (request, reply) => {
      const key = request.params['*'];
      const { expires, signature } = request.query;
      const notFound = new ServiceError('not_found', 'no such file, or its URL has expired');
      if (expires === undefined || signature === undefined) throw notFound;
      const secret = await resolveSigningSecret(storage.signingSecret);
      if (!verifyFileSignature(secret, key, expires, signature)) throw notFound;
      const object = await store.get(key);
      if (!object) throw notFound;
      const maxAge = Math.max(0, Number(expires) - Math.floor(Date.now() / 1000));
      return reply
        .header('Content-Type', object.contentType)
        .header('Cache-Control', `private, max-age=${maxAge}, immutable`)
        .header('X-Content-Type-Options', 'nosniff')
        .send(Buffer.from(object.body.buffer, object.body.byteOffset, object.body.byteLength));
    },
  });
}
