// Generations sent as multipart forms (an image to complete, uploaded): POST /generations and
// POST /v1/images/edits. The parts are read into the JSON body's shape and checked against the
// same schema, so both paths accept the same.
import { Ajv } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { CreateGenerationBody } from '../contracts/schemas.js';
import { ServiceError, fieldError } from '../errors.js';
import { validationFailed } from './plugins/validation.js';

/** What a form's fields are: files (as `{ base64 }`), integers, numbers, comma lists; any other known field is text. */
export interface FormFields {
  files: Record<string, string>;
  integers: ReadonlySet<string>;
  numbers: ReadonlySet<string>;
  lists: ReadonlySet<string>;
  texts: ReadonlySet<string>;
}

/** A form field's text as the JSON body's value: numbers written as numbers, lists comma-separated. */
function valueOf(fields: FormFields, field: string, text: string): unknown {
  if (fields.integers.has(field)) {
    if (!/^[0-9]{1,10}$/.test(text)) throw fieldError(field, 'must be an integer');
    return Number(text);
  }
  if (fields.numbers.has(field)) {
    if (!/^[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?$/i.test(text)) throw fieldError(field, 'must be a number');
    return Number(text);
  }
  if (fields.lists.has(field)) return text.split(',').map((item) => item.trim());
  return text;
}

/** The form as a body: each file under the field `fields.files` maps its part name to; a field given twice is refused. */
export async function formBody(request: FastifyRequest, fields: FormFields): Promise<Record<string, unknown>> {
  const body: Record<string, unknown> = {};
  try {
    for await (const part of request.parts()) {
      const known = part.type === 'file' ? fields.files[part.fieldname] : part.fieldname;
      if (part.type === 'file' && known === undefined)
        throw fieldError(part.fieldname, `is not a known file field (${Object.keys(fields.files).join(', ')})`);
      if (known in body) throw fieldError(known, 'is given more than once');
      if (part.type === 'file') {
        const bytes = await part.toBuffer();
        if (bytes.byteLength === 0)
          throw new ServiceError('invalid_image', `${known} is empty`, {
            errors: [{ field: known, message: 'is empty' }],
          });
        body[known] = { base64: bytes.toString('base64') };
      } else if ([fields.texts, fields.integers, fields.numbers, fields.lists].some((set) => set.has(known))) {
        body[known] = valueOf(fields, known, String(part.value));
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
  return body;
}

const GENERATION_FORM: FormFields = {
  files: { image: 'image', mask: 'mask' },
  integers: new Set(['candidates', 'n', 'top_k', 'seed', 'keep_rows']),
  numbers: new Set(['temperature', 'top_p']),
  lists: new Set(['webhook_events_filter']),
  texts: new Set(['prompt', 'model', 'output_format', 'webhook', 'rank_by']),
};
const validateBody = new Ajv({ strict: false, coerceTypes: false, verbose: true }).compile(CreateGenerationBody);

export async function generationBodyFromMultipart(request: FastifyRequest): Promise<CreateGenerationBody> {
  const body = await formBody(request, GENERATION_FORM);
  if (!validateBody(body)) throw validationFailed(validateBody.errors ?? [], 'body');
  return body as CreateGenerationBody;
}
