// The OpenAI-compatible API under /v1 (Images, Models, Embeddings) over our own jobs. Its own
// scope, so that its errors leave in OpenAI's shape while the native routes keep problem+json.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../services.js';
import { openAIEmbeddingRoutes } from './embeddings.js';
import { installOpenAIErrors } from './errors.js';
import { openAIImageRoutes } from './images.js';
import { openAIModelRoutes } from './models.js';
import { OPENAI_SCHEMAS } from './schemas.js';

/** Registers the named /v1 schemas on the root app, where the OpenAPI document finds them. */
export function addOpenAISchemas(app: FastifyInstance): void {
  for (const schema of OPENAI_SCHEMAS) app.addSchema(schema);
}

export async function openAIRoutes(
  app: FastifyInstance,
  { prefix: _prefix, ...services }: Services & { prefix?: string },
): Promise<void> {
  // The options carry the scope's prefix; passed on, it would apply twice.
  installOpenAIErrors(app);
  await app.register(openAIImageRoutes, services);
  await app.register(openAIModelRoutes, services);
  await app.register(openAIEmbeddingRoutes, services);
}
