// Request bodies are UTF-8 (JSON's own rule, RFC 8259). A body that declares another charset
// would be read as UTF-8 and mean something else: it is refused with 415 before parsing.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { ServiceError } from '../../errors.js';

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)"?/i;

/** The declared charset when it is not UTF-8; undefined when none is declared or it is UTF-8. */
export function foreignCharset(contentType: string | undefined): string | undefined {
  const declared = contentType === undefined ? undefined : CHARSET.exec(contentType)?.[1];
  if (declared === undefined) return undefined;
  return /^utf-?8$/i.test(declared) ? undefined : declared;
}

export const charsetPlugin = fp(async (app: FastifyInstance) => {
  app.addHook('preParsing', async (request) => {
    if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'DELETE') return;
    const charset = foreignCharset(request.headers['content-type']);
    if (charset !== undefined)
      throw new ServiceError(
        'unsupported_media_type',
        `request bodies must be UTF-8; this one declares charset=${JSON.stringify(charset.slice(0, 40))}`,
      );
  });
});
