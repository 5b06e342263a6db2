// The playground page at `/`: plain HTML, CSS and ES modules from public/playground/, read once
// at start (a missing file stops the start), served without a key: they hold no data. The page
// calls the API like any client, with the key in a header.
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';

const ROOT = new URL('../../../public/playground/', import.meta.url);
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
};
const FILES = ['index.html', 'style.css', 'app.js', 'api.js', 'completion.js', 'events.js', 'models.js', 'problems.js'];
// Scripts and styles from here only; images may come from the object store's own host.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' data: blob: http: https:",
  "connect-src 'self' http: https:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

export async function playgroundRoutes(app: FastifyInstance): Promise<void> {
  const files = new Map<string, Buffer>();
  for (const name of FILES) files.set(name, await readFile(new URL(name, ROOT)));

  const serve = (name: string) => ({
    config: { public: true },
    schema: { hide: true },
    handler: async (_request: unknown, reply: FastifyReply) =>
      reply
        .type(TYPES[name.split('.').pop() as string])
        .header('cache-control', 'no-cache')
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .send(files.get(name)),
  });
  app.get('/', serve('index.html'));
  for (const name of FILES.filter((file) => file !== 'index.html')) app.get(`/playground/${name}`, serve(name));
}
