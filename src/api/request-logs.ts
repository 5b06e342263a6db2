// How the API logs its requests: Fastify's own lines ("incoming request", "request
// completed"), but at debug for the routes machines poll (liveness, readiness, Prometheus), so
// that a health check every few seconds does not bury the requests people make. A probe that
// errs is still logged at error.
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Polled by machines (health checks, metrics scrapes): its request lines are logged at debug. */
    probe?: boolean;
  }
}

function isProbe(request: FastifyRequest): boolean {
  return request.routeOptions.config.probe === true;
}

export class RequestLogs extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if (!isProbe(request)) return super.incomingRequest(request, reply);
    if (!this.isLogDisabled(request)) request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error || !isProbe(request)) return super.requestCompleted(error, request, reply);
    if (!this.isLogDisabled(request)) {
      reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
    }
  }
}
