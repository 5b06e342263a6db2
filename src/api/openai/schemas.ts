// Request and response schemas of the OpenAI-compatible API (/v1): OpenAI's field names and
// shapes, with our own generation settings as extra fields. Bodies are strict: a field OpenAI
// defines that we do not serve (background, moderation…) is a 400 naming it.
import { type Static, Type } from '@fastify/type-provider-typebox';
import { ERROR_CODES } from '../../errors.js';
import { OUTPUT_FORMATS } from '../../contracts/jobs.js';
import { MAX_CANDIDATES, ref } from '../../contracts/schemas.js';

export { ref };

function StringEnum<T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

const strict = { additionalProperties: false } as const;
const PROSE = '^(?=[\\s\\S]*\\S)[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F\\p{Cs}]*$';
const ModelName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' });

/**
 * OpenAI's quality levels, each a share of the candidates a generation samples by default
 * (DEFAULT_CANDIDATES of the serving workers, 512 on a GPU: low 64, medium 256, high 512; 32 on
 * a CPU: low 4, medium 16, high 32). docs/openai.md.
 */
export const QUALITY_SHARE = { low: 1 / 8, medium: 1 / 2, standard: 1 / 2, high: 1, hd: 1, auto: 1 } as const;
export type Quality = keyof typeof QUALITY_SHARE;
const QUALITIES = Object.keys(QUALITY_SHARE) as Quality[];

export const ImageGenerationBody = Type.Object(
  {
    prompt: Type.String({ minLength: 1, maxLength: 1000, pattern: PROSE, description: 'What to draw.' }),
    model: Type.Optional({
      ...ModelName,
      description: 'A pack name, or an OpenAI model name listed in OPENAI_MODEL_ALIASES; default DEFAULT_MODEL.',
    }),
    n: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_CANDIDATES, default: 1, description: 'Images returned.' }),
    ),
    size: Type.Optional(
      Type.String({
        pattern: '^(auto|[0-9]{1,5}x[0-9]{1,5})$',
        description: "`auto` or the model's native size (`WxH`); anything else is refused.",
      }),
    ),
    quality: Type.Optional(
      StringEnum(QUALITIES, {
        description:
          "Candidates sampled, as a share of the model's default_candidates (GET /models; 512 on a GPU, 32 on a CPU): low 1/8, medium and standard 1/2, high, hd and auto all of it.",
      }),
    ),
    style: Type.Optional(
      StringEnum(['vivid', 'natural'] as const, {
        description: 'Accepted and ignored: the packs have no style control.',
      }),
    ),
    response_format: Type.Optional(StringEnum(['url', 'b64_json'] as const, { default: 'url' })),
    output_format: Type.Optional(StringEnum(OUTPUT_FORMATS, { default: 'png' })),
    user: Type.Optional(Type.String({ maxLength: 256, description: 'Accepted and ignored.' })),
    stream: Type.Optional(Type.Boolean({ description: 'Server-sent events instead of one JSON answer.' })),
    partial_images: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 3, default: 0, description: 'Best-so-far images streamed before the end.' }),
    ),
    // Our own settings (extensions).
    candidates: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_CANDIDATES,
        description: 'Extension: candidates sampled; overrides quality.',
      }),
    ),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: 'Extension: the job seed.' })),
    top_k: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Extension: top-k sampling.' })),
    temperature: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 10, description: 'Extension: sampling temperature.' }),
    ),
    top_p: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Extension: nucleus sampling.' })),
  },
  strict,
);
export type ImageGenerationBody = Static<typeof ImageGenerationBody>;

/**
 * POST /v1/images/edits' text fields once read from its form: OpenAI's, as in generations (no
 * streaming, no style), and the same extensions.
 */
export const ImageEditFields = Type.Omit(ImageGenerationBody, ['stream', 'partial_images', 'style'], strict);
export type ImageEditFields = Static<typeof ImageEditFields>;

/** POST /v1/images/variations' text fields: an edit's, without a prompt (a variation reads no text). */
export const ImageVariationFields = Type.Omit(ImageEditFields, ['prompt'], strict);
export type ImageVariationFields = Static<typeof ImageVariationFields>;

/** The text fields the image forms (edits, variations) share, after their own. */
const MULTIPART_IMAGE_OPTIONS = {
  model: Type.Optional(Type.String()),
  n: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  size: Type.Optional(Type.String()),
  quality: Type.Optional(Type.String()),
  response_format: Type.Optional(StringEnum(['url', 'b64_json'] as const)),
  output_format: Type.Optional(StringEnum(OUTPUT_FORMATS)),
  user: Type.Optional(Type.String()),
  candidates: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'Extension, as in generations.' })),
  seed: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'Extension, as in generations.' })),
  top_k: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'Extension, as in generations.' })),
  temperature: Type.Optional(Type.String({ description: 'Extension, as in generations.' })),
  top_p: Type.Optional(Type.String({ description: 'Extension, as in generations.' })),
};

/** Documents the form of POST /v1/images/variations. */
export const ImageVariationMultipartBody = Type.Object({
  image: Type.String({ contentMediaType: 'application/octet-stream', description: 'The image to vary.' }),
  ...MULTIPART_IMAGE_OPTIONS,
});

/** Documents the form of POST /v1/images/edits; its parts are read and checked against ImageEditFields. */
export const ImageEditMultipartBody = Type.Object({
  image: Type.String({
    contentMediaType: 'application/octet-stream',
    description: 'The image to edit (one file, as `image` or `image[]`).',
  }),
  mask: Type.Optional(
    Type.String({
      contentMediaType: 'application/octet-stream',
      description:
        "Same size as the image; its fully transparent pixels (alpha 0) mark what to regenerate. Without it, the image's own transparent pixels do.",
    }),
  ),
  prompt: Type.String({ description: 'What the edited image shows.' }),
  ...MULTIPART_IMAGE_OPTIONS,
});

export const ImageUsage = Type.Object(
  {
    input_tokens: Type.Integer({ description: "The prompt's tokens." }),
    output_tokens: Type.Integer({ description: 'Image tokens sampled: every candidate, not only those returned.' }),
    total_tokens: Type.Integer(),
    input_tokens_details: Type.Object({ text_tokens: Type.Integer(), image_tokens: Type.Integer() }),
  },
  { $id: 'OpenAIImageUsage' },
);

export const ImagesResponse = Type.Object(
  {
    created: Type.Integer({ description: 'Unix seconds.' }),
    data: Type.Array(
      Type.Object({
        url: Type.Optional(Type.String({ description: 'Signed URL, valid IMAGE_URL_TTL_SECONDS.' })),
        b64_json: Type.Optional(Type.String()),
        revised_prompt: Type.String({ description: 'The prompt as the model read it (cut when too long).' }),
      }),
      { description: 'Best CLIP score first.' },
    ),
    output_format: StringEnum(OUTPUT_FORMATS),
    size: Type.String(),
    quality: Type.String(),
    usage: ref(ImageUsage),
  },
  { $id: 'OpenAIImagesResponse', title: 'OpenAI images response' },
);

export const ImageStreamEvent = Type.Object(
  {
    type: StringEnum(['image_generation.partial_image', 'image_generation.completed'] as const),
    b64_json: Type.String(),
    created_at: Type.Integer(),
    size: Type.String(),
    quality: Type.String(),
    background: Type.String(),
    output_format: StringEnum(OUTPUT_FORMATS),
    partial_image_index: Type.Optional(Type.Integer()),
    usage: Type.Optional(ref(ImageUsage)),
  },
  {
    $id: 'OpenAIImageStreamEvent',
    description:
      'One server-sent event: `image_generation.partial_image` (the best candidate so far, PNG) or `image_generation.completed` (one per image, best first).',
  },
);

export const OpenAIModel = Type.Object(
  {
    id: Type.String(),
    object: StringEnum(['model'] as const),
    created: Type.Integer({ description: 'Always 0: packs carry no creation time.' }),
    owned_by: Type.String(),
  },
  { $id: 'OpenAIModel' },
);

export const OpenAIModelList = Type.Object({
  object: StringEnum(['list'] as const),
  data: Type.Array(ref(OpenAIModel)),
});

export const ModelParams = Type.Object({ model: Type.String({ description: 'A pack name or an alias' }) });

export const EmbeddingsBody = Type.Object(
  {
    input: Type.Union(
      [
        Type.String({ minLength: 1, maxLength: 1000, pattern: PROSE }),
        Type.Array(Type.String({ minLength: 1, maxLength: 1000, pattern: PROSE }), { minItems: 1, maxItems: 256 }),
      ],
      { description: 'A text or up to 256 texts; token arrays are refused.' },
    ),
    model: Type.Optional({
      ...ModelName,
      description: 'A pack name or alias; default DEFAULT_CLIP_MODEL.',
    }),
    encoding_format: Type.Optional(
      StringEnum(['float', 'base64'] as const, {
        default: 'float',
        description: 'base64: the little-endian float32 bytes.',
      }),
    ),
    user: Type.Optional(Type.String({ maxLength: 256, description: 'Accepted and ignored.' })),
  },
  strict,
);
export type EmbeddingsBody = Static<typeof EmbeddingsBody>;

export const EmbeddingsResponse = Type.Object(
  {
    object: StringEnum(['list'] as const),
    model: Type.String(),
    data: Type.Array(
      Type.Object({
        object: StringEnum(['embedding'] as const),
        index: Type.Integer(),
        embedding: Type.Union([Type.Array(Type.Number()), Type.String()]),
      }),
    ),
    usage: Type.Object({
      prompt_tokens: Type.Integer(),
      total_tokens: Type.Integer(),
    }),
  },
  { $id: 'OpenAIEmbeddingsResponse' },
);

export const OpenAIError = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String({
        description: 'invalid_request_error, authentication_error, rate_limit_error, server_error…',
      }),
      param: Type.Union([Type.String(), Type.Null()]),
      code: StringEnum(ERROR_CODES),
    }),
  },
  { $id: 'OpenAIError', title: 'An error in OpenAI’s shape' },
);

/** Named schemas of /v1, registered once on the app. */
export const OPENAI_SCHEMAS = [
  ImageUsage,
  ImagesResponse,
  ImageStreamEvent,
  OpenAIModel,
  EmbeddingsResponse,
  OpenAIError,
];
