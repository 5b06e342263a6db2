// POST /v1/images/edits' form as OpenAI's SDKs send it: `image` (or `image[]`, one file here),
// an optional `mask`, and the text fields of a generation, checked like /v1/images/generations'.
import { Ajv } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { ServiceError, fieldError } from '../../errors.js';
import { type FormFields, formBody } from '../generation-requests.js';
import { validationFailed } from '../plugins/validation.js';
import type { ImageEdit } from './image-generation.js';
import { ImageEditFields, ImageVariationFields } from './schemas.js';

const EDIT_FORM: FormFields = {
  files: { image: 'image', 'image[]': 'image', mask: 'mask' },
  integers: new Set(['n', 'candidates', 'seed', 'top_k']),
  numbers: new Set(['temperature', 'top_p']),
  lists: new Set(),
  texts: new Set(['prompt', 'model', 'size', 'quality', 'response_format', 'output_format', 'user']),
};
const ajv = new Ajv({ strict: false, coerceTypes: false, verbose: true });
const validateFields = ajv.compile(ImageEditFields);
const validateVariation = ajv.compile(ImageVariationFields);
const VARIATION_FORM: FormFields = {
  ...EDIT_FORM,
  files: { image: 'image' },
  texts: new Set([...EDIT_FORM.texts].filter((f) => f !== 'prompt')),
};

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

/** POST /v1/images/variations' form: one image and the fields of an edit but its prompt. */
export async function imageVariationFromMultipart(
  request: FastifyRequest,
): Promise<{ fields: ImageEditFields; edit: ImageEdit }> {
  if (!request.isMultipart())
    throw new ServiceError(
      'unsupported_media_type',
      'send the image as a multipart/form-data form, as the OpenAI SDKs do',
    );
  const { image, ...fields } = await formBody(request, VARIATION_FORM);
  if (image === undefined) throw fieldError('image', 'is required: upload the image to vary');
  if (!validateVariation(fields)) throw validationFailed(validateVariation.errors ?? [], 'body');
  // No text: the generator reads padding only, and CLIP ranks against the image.
  const variation = { ...(fields as ImageVariationFields), prompt: '' };
  return { fields: variation, edit: { image: (image as { base64: string }).base64, variation: true } };
}
