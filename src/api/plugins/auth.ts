// Who is asking: an API key from `Authorization: Bearer <key>` or `X-API-Key`, checked against
// API_KEYS and the key store, then counted against the key's per-minute limit (by the route
// itself where it says so: classify and embed count it with their queue admission). Only
// AUTH_MODE=open (the local quick start) lets requests in without a key, as `anonymous`.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError } from '../../errors.js';
import type { KeyStore, Principal } from '../../service/api-keys.js';
import type { RateLimiter, RequestBudget } from '../../service/limits.js';
import type { Queues } from '../../queue/queues.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The key the request acts for; set on every route that is not public. */
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** Served without a key (health, metrics, the API document, signed file URLs). */
    public?: boolean;
    /**
     * The handler counts the request against the key's per-minute limit itself, in the script
     * that books its place in the queue (classify, embed): one round trip for both.
     */
    countsOwnRequest?: boolean;
  }
}

export interface AuthOptions {
  keyStore: KeyStore;
  limiter: RateLimiter;
  queues: Queues;
}

const CHALLENGE = 'Bearer realm="dalle-serve"';

/** The RateLimit-* headers of a request counted against a limit; none for a key without one. */
export function sendBudget(reply: FastifyReply, { limit, remaining, resetSeconds }: RequestBudget): void {
  if (limit === undefined) return;
  reply.header('RateLimit-Limit', String(limit));
  reply.header('RateLimit-Remaining', String(Math.max(0, remaining ?? 0)));
  reply.header('RateLimit-Reset', String(resetSeconds));
}

function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match ? match[1] : '';
  }
  const header = request.headers['x-api-key'];
  return typeof header === 'string' ? header.trim() : undefined;
}

/** The key's principal, or a 401 with its challenge. */
async function authenticated(request: FastifyRequest, reply: FastifyReply, keyStore: KeyStore): Promise<Principal> {
  const key = presentedKey(request);
  const principal = key ? await keyStore.authenticate(key) : null;
  if (principal) return principal;
  reply.header('WWW-Authenticate', key === undefined ? CHALLENGE : `${CHALLENGE}, error="invalid_token"`);
  throw new ServiceError(
    'unauthorized',
    key === undefined
      ? 'send an API key as "Authorization: Bearer <key>"'
      : 'the API key is not valid or has been revoked',
  );
}

export const authPlugin = fp(async (app: FastifyInstance, { keyStore, limiter, queues }: AuthOptions) => {
  // Fastify's typing wants the declared type as the initial value (a library-forced cast): the
  // auth hook sets the principal before any handler that reads it runs.
  app.decorateRequest('principal', null as unknown as Principal);

  app.addHook('onReady', async () => {
    if (keyStore.isOpen) {
      app.log.warn('AUTH_MODE=open: the API serves anyone who can reach it, without a key');
      return;
    }
    // Not awaited: start-up must not wait on Redis; the warning follows when it answers.
    queues
      .connected()
      .then(() => keyStore.hasKeys())
      .then((any) => {
        if (!any)
          app.log.warn(
            'no API key is configured (API_KEYS) or stored (npm run keys): every request gets 401 until one is created',
          );
      })
      // eslint-disable-next-line no-restricted-syntax -- with Redis down the mode is unknown; /readyz reports Redis
      .catch(() => {});
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config?.public || request.url.startsWith('/docs')) return;
    await queues.connected();
    request.principal = keyStore.isOpen ? keyStore.anonymous() : await authenticated(request, reply, keyStore);
    if (!request.routeOptions.config?.countsOwnRequest) sendBudget(reply, await limiter.hitRequest(request.principal));
  });
});
