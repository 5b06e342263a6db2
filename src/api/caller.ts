// What a request's work needs to know of its HTTP exchange: whether the client is still there,
// and (for classify and embed, which count themselves against the key's limit) where the
// RateLimit-* headers go.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ClipCaller } from '../service/clip-jobs.js';
import { sendBudget } from './plugins/auth.js';

/** Aborts when the connection closes before the answer is complete: the client left. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const left = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) left.abort();
  });
  return left.signal;
}

/** The caller of a CLIP request: its key, its client's presence, its budget's headers. */
export function clipCaller(request: FastifyRequest, reply: FastifyReply): ClipCaller {
  return {
    principal: request.principal,
    signal: clientGone(reply),
    onBudget: (budget) => sendBudget(reply, budget),
  };
}
