// Turns classify and embed requests (JSON or multipart) into job payloads.
import { Ajv } from 'ajv';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { ClassifyRequestData, EmbedRequestData } from '../contracts/jobs.js';
import { ClassifyBody, type EmbedBody } from '../contracts/schemas.js';
import { ServiceError, fieldError } from '../errors.js';
import type { PendingClipJob } from '../service/clip-jobs.js';
import { resolveImages } from './images.js';
import { validationFailed } from './plugins/validation.js';

/** NFC, so that the same words typed as composed or decomposed characters are one text. */
function normalized(texts: string[], field: string, unique: boolean): string[] {
  const out = texts.map((text) => text.normalize('NFC'));
  if (unique && new Set(out).size !== out.length)
    throw fieldError(field, 'must be unique (after Unicode NFC normalisation)');
  return out;
}

/** A CLIP request checked, its images not read yet: ClipJobs reads them once it has a place. */
type ClipRequest<D> = PendingClipJob<D>;

export function classifyRequestFromJson(body: ClassifyBody, config: Config): ClipRequest<ClassifyRequestData> {
  if ((body.image === undefined) === (body.images === undefined))
    throw fieldError('image', 'or images is required, and not both');
  if (body.top_k !== undefined && body.top_k > body.labels.length)
    throw fieldError('top_k', `must be at most the number of labels (${body.labels.length})`);
  const inputs = body.image ? [body.image] : (body.images ?? []);
  const field = body.image ? 'image' : 'images';
  return {
    data: {
      labels: normalized(body.labels, 'labels', true),
      ...(body.templates && { templates: normalized(body.templates, 'templates', false) }),
      ...(body.top_k !== undefined && { top_k: body.top_k }),
      ...(body.model !== undefined && { model: body.model }),
    },
    images: () => resolveImages(inputs, field, config),
  };
}

export function embedRequestFromJson(body: EmbedBody, config: Config): ClipRequest<EmbedRequestData> {
  if ((body.images === undefined) === (body.texts === undefined))
    throw fieldError('images', 'or texts is required, and not both');
  const model = body.model === undefined ? {} : { model: body.model };
  if (body.texts) return { data: { texts: normalized(body.texts, 'texts', false), ...model } };
  const inputs = body.images ?? [];
  return { data: model, images: () => resolveImages(inputs, 'images', config) };
}

// The multipart form is checked against the JSON body's schema once its parts are read.
const validateClassifyBody = new Ajv({ strict: false, coerceTypes: false, verbose: true }).compile(ClassifyBody);
const LIST_FIELDS = new Set(['labels', 'templates']);
const SCALAR_FIELDS = new Set(['top_k', 'model']);

/**
 * A form field's values: a JSON array, or for labels the comma-separated list the CLI and the
 * playground send too (no label holds a comma). Templates are one per field: theirs may.
 */
function listValues(field: string, value: string): string[] {
  if (value.trimStart().startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(value);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      // not JSON: a text that happens to start with "["
    }
  }
  if (field !== 'labels') return [value];
  return value
    .split(',')
    .map((label) => label.trim())
    .filter((label) => label !== '');
}

export async function classifyRequestFromMultipart(
  request: FastifyRequest,
  config: Config,
): Promise<ClipRequest<ClassifyRequestData>> {
  const images: { base64: string }[] = [];
  const lists: Record<string, string[]> = {};
  const scalars: Record<string, string> = {};
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'image' && part.fieldname !== 'images')
          throw fieldError(part.fieldname, 'is not a known file field (use image)');
        const bytes = await part.toBuffer();
        if (bytes.byteLength === 0) throw new ServiceError('invalid_image', `image ${images.length} is empty`);
        images.push({ base64: bytes.toString('base64') });
      } else if (LIST_FIELDS.has(part.fieldname)) {
        lists[part.fieldname] = [...(lists[part.fieldname] ?? []), ...listValues(part.fieldname, String(part.value))];
      } else if (SCALAR_FIELDS.has(part.fieldname)) {
        scalars[part.fieldname] = String(part.value);
      } else {
        throw fieldError(part.fieldname, 'is not a known field');
      }
    }
  } catch (error) {
    // Our own refusals and the multipart plugin's (they carry a status) pass; a stream that
    // breaks off or never was multipart is the body's fault, not the server's.
    if (error instanceof ServiceError || typeof (error as { statusCode?: unknown }).statusCode === 'number')
      throw error;
    throw new ServiceError('malformed_body', `the multipart body cannot be parsed: ${(error as Error).message}`);
  }
  if (images.length === 0) throw fieldError('image', 'is required: upload at least one file');
  if (scalars.top_k !== undefined && !/^[0-9]{1,6}$/.test(scalars.top_k))
    throw fieldError('top_k', 'must be an integer');
  const body = {
    images,
    labels: lists.labels ?? [],
    ...(lists.templates && { templates: lists.templates }),
    ...(scalars.top_k !== undefined && { top_k: Number(scalars.top_k) }),
    ...(scalars.model !== undefined && { model: scalars.model }),
  };
  if (!validateClassifyBody(body)) throw validationFailed(validateClassifyBody.errors ?? [], 'body');
  return classifyRequestFromJson(body as ClassifyBody, config);
}
