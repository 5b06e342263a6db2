// GET /v1/models and /v1/models/{model}: the packs the workers serve, and the OpenAI names
// OPENAI_MODEL_ALIASES maps onto them, in OpenAI's list shape.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config.js';
import { ServiceError } from '../../errors.js';
import { serviceKeys } from '../../service/redis-keys.js';
import { readModels } from '../../service/model-registry.js';
import type { Services } from '../services.js';
import { openAIErrorResponses } from './responses.js';
import { ModelParams, OpenAIModelList, ref, OpenAIModel } from './schemas.js';

const tags = ['openai'];
const OWNER = 'dalle-serve';

/** A pack name as is; an OpenAI model name through OPENAI_MODEL_ALIASES. */
export function resolveModelAlias(config: Config, model: string | undefined): string | undefined {
  return model === undefined ? undefined : (config.openaiModelAliases[model] ?? model);
}

async function modelIds(services: Services): Promise<string[]> {
  await services.queues.connected();
  const packs = (await readModels(services.queues.redis, serviceKeys(services.config.queuePrefix))).map(
    (info) => info.name,
  );
  const aliases = Object.entries(services.config.openaiModelAliases)
    .filter(([, pack]) => packs.includes(pack))
    .map(([alias]) => alias);
  return [...packs, ...aliases];
}

const asModel = (id: string) => ({ id, object: 'model' as const, created: 0, owned_by: OWNER });

export async function openAIModelRoutes(instance: FastifyInstance, services: Services): Promise<void> {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/models', {
    schema: {
      tags,
      operationId: 'openaiListModels',
      summary: 'List models (OpenAI)',
      description: 'The packs the workers serve, then the aliases (OPENAI_MODEL_ALIASES) of served packs.',
      response: { 200: OpenAIModelList, ...openAIErrorResponses() },
    },
    handler: async () => ({ object: 'list' as const, data: (await modelIds(services)).map(asModel) }),
  });

  app.get('/models/:model', {
    schema: {
      tags,
      operationId: 'openaiGetModel',
      summary: 'Get a model (OpenAI)',
      params: ModelParams,
      response: { 200: ref(OpenAIModel), ...openAIErrorResponses('not_found') },
    },
    handler: async (request) => {
      const { model } = request.params;
      if (!(await modelIds(services)).includes(model))
        throw new ServiceError('not_found', `model ${JSON.stringify(model.slice(0, 128))} is not served`, {
          errors: [{ field: 'model', message: 'is not served' }],
        });
      return asModel(model);
    },
  });
}
