// POST /v1/images/edits' form as OpenAI's SDKs send it: `image` (or `image[]`, one file here),
// an optional `mask`, and the text fields of a generation, checked like /v1/images/generations'.
import { Ajv } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { ServiceError, fieldError } from '../../errors.js';
import { type FormFields, formBody } from '../generation-requests.js';
import { validationFailed } from '../plugins/validation.js';
import type { ImageEdit } from './image-generation.js';
import { ImageEditFields } from './schemas.js';

const EDIT_FORM: FormFields = {
  files: { image: 'image', 'image[]': 'image', mask: 'mask' },
  integers: new Set(['n', 'candidates', 'seed', 'top_k']),
  numbers: new Set(['temperature', 'top_p']),
  lists: new Set(),
  texts: new Set(['prompt', 'model', 'size', 'quality', 'response_format', 'output_format', 'user']),
};
const validateFields = new Ajv({ strict: false, coerceTypes: false, verbose: true }).compile(ImageEditFields);

export async function imageEditFromMultipart(
  request: FastifyRequest,
): Promise<{ fields: ImageEditFields; edit: ImageEdit }> {
  if (!request.isMultipart())
    throw new ServiceError(
      'unsupported_media_type',
      'send the edit as a multipart/form-data form, as the OpenAI SDKs do',
    );
  const { image, mask, ...fields } = await formBody(request, EDIT_FORM);
  if (image === undefined) throw fieldError('image', 'is required: upload the image to edit');
  if (!validateFields(fields)) throw validationFailed(validateFields.errors ?? [], 'body');
  const base64 = (file: unknown) => (file as { base64: string }).base64;
  return {
    fields: fields as ImageEditFields,
    edit: { image: base64(image), ...(mask !== undefined && { mask: base64(mask) }) },
  };
}
