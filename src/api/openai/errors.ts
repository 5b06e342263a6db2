// Errors under /v1 in OpenAI's shape, `{ error: { message, type, param, code } }`, derived from
// the one catalogue (src/errors.ts): the status comes from the catalogue, the `type` from the
// status (as OpenAI's own API names them), `code` is our stable code, `param` the field at fault.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, type ErrorCode, ServiceError } from '../../errors.js';
import { asServiceError } from '../plugins/errors.js';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/** OpenAI's error types, by HTTP status; what the SDKs show next to their error classes. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export function toOpenAIError(error: ServiceError): OpenAIErrorBody {
  return {
    error: {
      message: error.message,
      type: errorType(ERRORS[error.code].status),
      param: error.extra.errors?.[0]?.field ?? null,
      code: error.code,
    },
  };
}

export function sendOpenAIError(reply: FastifyReply, error: ServiceError): FastifyReply {
  if (error.extra.retryAfterSeconds !== undefined) reply.header('Retry-After', String(error.extra.retryAfterSeconds));
  // The SDKs retry 408, 409, 429 and 5xx by default: after a timed-out wait (the generation
  // goes on, named in the message) or a cancel, a retry would start a second generation.
  if (error.code === 'timeout' || error.code === 'generation_finished') reply.header('x-should-retry', 'false');
  return reply.code(error.status).type('application/json').send(toOpenAIError(error));
}

/** The error and not-found handlers of the /v1 scope. */
export function installOpenAIErrors(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply) => {
    const known = asServiceError(error);
    if (known) {
      if (known.status >= 500) request.log.warn({ err: error, code: known.code }, 'request failed');
      return sendOpenAIError(reply, known);
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendOpenAIError(reply, new ServiceError('internal_error', `internal error; quote request id ${request.id}`));
  });
  app.setNotFoundHandler((request, reply) =>
    sendOpenAIError(
      reply,
      new ServiceError('not_found', `no route ${request.method} ${request.url.split('?')[0].slice(0, 200)}`),
    ),
  );
}
