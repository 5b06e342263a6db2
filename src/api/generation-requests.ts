// POST /generations as a multipart form (an image to complete, uploaded): its parts read into
// the JSON body's shape and checked against the same schema, so both paths accept the same.
import { Ajv } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { CreateGenerationBody } from '../contracts/schemas.js';
import { ServiceError, fieldError } from '../errors.js';
import { validationFailed } from './plugins/validation.js';

const validateBody = new Ajv({ strict: false, coerceTypes: false, verbose: true }).compile(CreateGenerationBody);
const FILE_FIELDS = new Set(['image', 'mask']);
const INTEGER_FIELDS = new Set(['candidates', 'n', 'top_k', 'seed', 'keep_rows']);
const NUMBER_FIELDS = new Set(['temperature', 'top_p']);
const TEXT_FIELDS = new Set(['prompt', 'model', 'output_format', 'webhook']);

/** A form field's text as the JSON body's value: numbers written as numbers, events comma-separated. */
function valueOf(field: string, text: string): unknown {
  if (INTEGER_FIELDS.has(field)) {
    if (!/^[0-9]{1,10}$/.test(text)) throw fieldError(field, 'must be an integer');
    return Number(text);
  }
  if (NUMBER_FIELDS.has(field)) {
    if (!/^[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?$/i.test(text)) throw fieldError(field, 'must be a number');
    return Number(text);
  }
  if (field === 'webhook_events_filter') return text.split(',').map((event) => event.trim());
  return text;
}

export async function generationBodyFromMultipart(request: FastifyRequest): Promise<CreateGenerationBody> {
  const body: Record<string, unknown> = {};
  try {
    for await (const part of request.parts()) {
      if (part.fieldname in body) throw fieldError(part.fieldname, 'is given more than once');
      if (part.type === 'file') {
        if (!FILE_FIELDS.has(part.fieldname))
          throw fieldError(part.fieldname, 'is not a known file field (image, mask)');
        const bytes = await part.toBuffer();
        if (bytes.byteLength === 0)
          throw new ServiceError('invalid_image', `${part.fieldname} is empty`, {
            errors: [{ field: part.fieldname, message: 'is empty' }],
          });
        body[part.fieldname] = { base64: bytes.toString('base64') };
      } else if (
        TEXT_FIELDS.has(part.fieldname) ||
        INTEGER_FIELDS.has(part.fieldname) ||
        NUMBER_FIELDS.has(part.fieldname) ||
        part.fieldname === 'webhook_events_filter'
      ) {
        body[part.fieldname] = valueOf(part.fieldname, String(part.value));
      } else {
        throw fieldError(part.fieldname, 'is not a known field');
      }
    }
  } catch (error) {
    // As classify's form: our refusals and the multipart plugin's (with a status) pass as they are.
    if (error instanceof ServiceError || typeof (error as { statusCode?: unknown }).statusCode === 'number')
      throw error;
    throw new ServiceError('malformed_body', `the multipart body cannot be parsed: ${(error as Error).message}`);
  }
  if (!validateBody(body)) throw validationFailed(validateBody.errors ?? [], 'body');
  return body as CreateGenerationBody;
}
