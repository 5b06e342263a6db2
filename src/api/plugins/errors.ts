// Every error leaves as application/problem+json with a code from the catalogue. A 500
// hides its details from the client and logs them with the request id.
import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError, toProblem } from '../../errors.js';
import { validationFailed } from './validation.js';

const BY_STATUS: Record<number, ServiceError['code']> = {
  400: 'malformed_body',
  406: 'unsupported_media_type',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

/**
 * Redis down, or between masters: a connection refused or closed, a Cluster with a slot that no
 * master serves yet (CLUSTERDOWN, TRYAGAIN, redirections that never settle), a demoted or
 * reloading server (READONLY, LOADING, MASTERDOWN). Each passes once a failover completes.
 */
function isRedisUnavailable(error: Error): boolean {
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|ECONNREFUSED|Stream isn't writeable|enableOfflineQueue|CLUSTERDOWN|TRYAGAIN|Too many Cluster redirections|Failed to refresh slots cache|None of startup nodes is available|READONLY|LOADING|MASTERDOWN/i.test(
      error.message,
    )
  );
}

export function asServiceError(error: FastifyError | Error): ServiceError | null {
  if (error instanceof ServiceError) return error;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    return validationFailed(fastifyError.validation as ErrorObject[], fastifyError.validationContext ?? 'body');
  }
  const code = fastifyError.statusCode ? BY_STATUS[fastifyError.statusCode] : undefined;
  if (code) return new ServiceError(code, error.message);
  if (isRedisUnavailable(error))
    return new ServiceError('service_unavailable', 'the job queue is unreachable', { retryAfterSeconds: 5 });
  return null;
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: ServiceError): FastifyReply {
  if (error.extra.retryAfterSeconds !== undefined) reply.header('Retry-After', String(error.extra.retryAfterSeconds));
  return reply
    .code(error.status)
    .type('application/problem+json')
    .send(JSON.stringify(toProblem(error, request.url.split('?')[0])));
}

export const errorsPlugin = fp(async (app: FastifyInstance) => {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const known = asServiceError(error);
    if (known) {
      if (known.status >= 500) request.log.warn({ err: error, code: known.code }, 'request failed');
      return sendProblem(reply, request, known);
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(
      reply,
      request,
      new ServiceError('internal_error', `internal error; quote request id ${request.id}`),
    );
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      request,
      new ServiceError('not_found', `no route ${request.method} ${request.url.split('?')[0].slice(0, 200)}`),
    ),
  );
});
