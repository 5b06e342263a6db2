// The OpenAPI 3.1 document, built from the route schemas themselves, and its docs page.
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { WEBHOOKS } from './webhooks-document.js';
import fp from 'fastify-plugin';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
  description: string;
};

/** The file route's wildcard, under the name the document gives it (the URLs stay as they are). */
function namedFileKey({ schema, url }: { schema: FastifySchema; url: string }) {
  if (url !== '/files/*') return { schema, url };
  const params = (schema as { params?: { properties?: Record<string, unknown> } }).params;
  const keyParam = params?.properties?.['*'];
  return {
    url: '/files/{key}',
    schema: {
      ...schema,
      params: { type: 'object', properties: { key: keyParam }, required: ['key'] },
    },
  };
}

export const swaggerPlugin = fp(async (app: FastifyInstance, { publicBaseUrl }: { publicBaseUrl: string }) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'dalle-serve', version: pkg.version, description: pkg.description },
      servers: [{ url: publicBaseUrl, description: 'PUBLIC_BASE_URL of this server' }],
      webhooks: WEBHOOKS,
      tags: [
        { name: 'generations', description: 'Text-to-image generation jobs' },
        { name: 'clip', description: 'Zero-shot classification and embeddings' },
        { name: 'system', description: 'Models, health, metrics, usage' },
        { name: 'openai', description: 'The OpenAI Images, Models and Embeddings API (docs/openai.md)' },
      ],
      // Every route needs a key once one is configured; public ones say `security: []`.
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer <key>`' },
          apiKeyHeader: {
            type: 'apiKey',
            in: 'header',
            name: 'X-API-Key',
            description: 'The same API key in a header of its own',
          },
        },
      },
      security: [{ bearerAuth: [] }, { apiKeyHeader: [] }],
    },
    transform: namedFileKey,
    // Shared schemas keep their $id as their component name.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
});
