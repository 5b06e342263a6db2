// The service's HTTP API as the client sees it: openapi-fetch over the types generated from the
// OpenAPI document, the key sent as `Authorization: Bearer`, and every failure a ClientError that
// carries the service's error code (its problem details' `code`).
import { readFile } from 'node:fs/promises';
import createClient, { type Client } from 'openapi-fetch';
import type { components, operations, paths } from './openapi-types.js';

export type Api = Client<paths>;
export type Generation = components['schemas']['Generation'];
export type GenerationAccepted = components['schemas']['GenerationAccepted'];
export type ModelInfo = components['schemas']['ModelInfo'];
export type ClassifyResponse = components['schemas']['ClassifyResponse'];
export type CreateGenerationBody = operations['createGeneration']['requestBody']['content']['application/json'];
export type CreateGenerationForm = operations['createGeneration']['requestBody']['content']['multipart/form-data'];

export interface Connection {
  /** The service's base URL, without a trailing slash. */
  url: string;
  key?: string;
}

/** A failure to print as `error <code>: <message>`: the service's code, or one of the client's own. */
export class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

/** A file the command sends (an image, a mask); unreadable_file when it cannot be read. */
export async function readLocalFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new ClientError('unreadable_file', error instanceof Error ? error.message : String(error));
  }
}

export function authHeaders({ key }: Connection): Record<string, string> {
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** fetch, with an address that cannot be reached named as such. */
export async function reach(request: Request | string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(request, init);
  } catch (error) {
    if (init?.signal?.aborted) throw error;
    const { origin } = new URL(typeof request === 'string' ? request : request.url);
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    throw new ClientError('connection_failed', `cannot reach ${origin} (${cause})`);
  }
}

export function connect(connection: Connection): Api {
  return createClient<paths>({
    baseUrl: connection.url,
    headers: authHeaders(connection),
    fetch: (request) => reach(request),
  });
}

/** The data of a successful answer; a ClientError with the service's code otherwise. */
export async function answer<T>(pending: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await pending;
  if (error !== undefined || data === undefined) throw problem(response, error);
  return data;
}

/** The ClientError of an error answer read by fetch. */
export async function failure(response: Response): Promise<ClientError> {
  const text = await response.text().catch(() => '');
  try {
    return problem(response, JSON.parse(text));
  } catch {
    return problem(response, text);
  }
}

/** The ClientError an error answer stands for: its problem details, or its status. */
export function problem(response: Response, body: unknown): ClientError {
  if (typeof body === 'object' && body !== null && 'code' in body && typeof body.code === 'string') {
    const detail = 'detail' in body && typeof body.detail === 'string' ? body.detail : response.statusText;
    return new ClientError(body.code, detail);
  }
  const text = typeof body === 'string' && body.trim() ? body.trim().slice(0, 200) : response.statusText;
  return new ClientError(`http_${response.status}`, `${response.url} answered ${response.status}: ${text}`);
}
