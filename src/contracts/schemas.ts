// Request and response schemas: at once the validation, the TypeScript types and the
// OpenAPI document. Bodies are strict: unknown properties are refused, nothing is coerced.
import { type Static, type TSchema, type TSchemaOptions, Type } from '@fastify/type-provider-typebox';
import { ERROR_CODES, FAILURE_CODES } from '../errors.js';
import { OUTPUT_FORMATS, WEBHOOK_EVENTS } from './jobs.js';
import { GENERATION_STAGES, GENERATION_STATUSES } from './status.js';

/** A string enum as JSON Schema `enum` (clear validation messages, plain OpenAPI). */
export function StringEnum<T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export function Nullable<T extends TSchema>(schema: T, options: TSchemaOptions = {}) {
  return Type.Union([schema, Type.Null()], options);
}

const strict = { additionalProperties: false } as const;

/** A reference to a schema registered by its `$id`: a named component in the OpenAPI document. */
export function ref<T extends TSchema & { $id?: string }>(schema: T) {
  return Type.Unsafe<Static<T>>({ $ref: `${schema.$id}#` });
}
export const MAX_CANDIDATES = 4096;
export const MAX_LABELS = 256;
export const MAX_TEMPLATES = 16;

// Text from clients: no control characters (tab and line breaks allowed in prompts and
// texts) and no lone surrogates, which no tokenizer can encode faithfully. Unicode escapes
// rather than raw characters, so the pattern reads the same in the OpenAPI document.
const PROSE = '^(?=[\\s\\S]*\\S)[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F\\p{Cs}]*$';
export const MAX_IMAGES_PER_REQUEST = 64;

const ModelName = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9._-]+$',
  description: 'Model pack; default the server default.',
});
const HttpUrl = Type.String({ maxLength: 2048, pattern: '^https?://[^\\s]+$' });

export const ImageInput = Type.Object(
  {
    url: Type.Optional({ ...HttpUrl, description: 'An http(s) URL the server fetches.' }),
    base64: Type.Optional(
      Type.String({ minLength: 1, description: 'Encoded image bytes (PNG, JPEG, WebP…) in base64.' }),
    ),
  },
  { ...strict, minProperties: 1, maxProperties: 1, description: 'Exactly one of url or base64.' },
);
export type ImageInput = Static<typeof ImageInput>;

export const CreateGenerationBody = Type.Object(
  {
    prompt: Type.String({
      minLength: 1,
      maxLength: 1000,
      pattern: PROSE,
      description:
        'What to draw; 1 to 1000 characters, not only spaces, no control characters but tab and line breaks. NFC-normalised.',
    }),
    candidates: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_CANDIDATES,
        description:
          "Image candidates sampled. Default: the model's `generation.default_candidates` (GET /models): 32 on a CPU, 512 on a GPU unless DEFAULT_CANDIDATES says otherwise.",
      }),
    ),
    n: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_CANDIDATES,
        description: 'Best candidates kept after CLIP reranking; at most `candidates`. Default min(32, candidates).',
      }),
    ),
    top_k: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1_000_000, description: "Top-k sampling; default the model's." }),
    ),
    temperature: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 10 })),
    top_p: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    seed: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 4294967295,
        description: 'Unsigned 32-bit seed; random when absent, always returned.',
      }),
    ),
    model: Type.Optional(ModelName),
    output_format: Type.Optional(StringEnum(OUTPUT_FORMATS, { default: 'png' })),
    webhook: Type.Optional({ ...HttpUrl, description: 'URL that receives signed Standard Webhooks events.' }),
    webhook_events_filter: Type.Optional(
      Type.Array(StringEnum(WEBHOOK_EVENTS), { minItems: 1, uniqueItems: true, description: 'Default all events.' }),
    ),
    image: Type.Optional({
      ...ImageInput,
      description:
        "Complete this image instead of drawing from the prompt alone (DALL·E's image prompts): it is resized to the model's image size (both sides scaled, no crop; EXIF orientation applied, transparency flattened onto white), encoded to codes, and the kept cells' codes are forced while the others are sampled in raster order; CLIP ranks the completions against the prompt. Needs `keep_rows` or `mask`, and a model whose `generation.completes` is true. The same size limits and URL rules as classify's.",
    }),
    keep_rows: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 4096,
        description:
          "With `image`: keep this many top rows of the model's image grid and regenerate the rest (DALL·E's \"top part\" prompt); below the grid's rows.",
      }),
    ),
    rank_by: Type.Optional(
      StringEnum(['prompt', 'image'] as const, {
        description:
          'What CLIP ranks the candidates against: the prompt (default), or, with `image`, the input image itself (as variations do).',
      }),
    ),
    mask: Type.Optional({
      ...ImageInput,
      description:
        "With `image`, instead of `keep_rows`: an image of the same size whose fully transparent pixels (alpha 0) mark what to regenerate (OpenAI's convention). A grid cell is regenerated when any of its pixels is transparent, and kept otherwise.",
    }),
  },
  strict,
);
export type CreateGenerationBody = Static<typeof CreateGenerationBody>;

/** Documents the multipart form; its parts are read and checked against CreateGenerationBody. */
export const CreateGenerationMultipartBody = Type.Object({
  prompt: Type.String(),
  image: Type.Optional(Type.String({ contentMediaType: 'application/octet-stream', description: 'The image file.' })),
  mask: Type.Optional(Type.String({ contentMediaType: 'application/octet-stream', description: 'The mask file.' })),
  keep_rows: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  rank_by: Type.Optional(StringEnum(['prompt', 'image'] as const)),
  candidates: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  n: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  top_k: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  temperature: Type.Optional(Type.String()),
  top_p: Type.Optional(Type.String()),
  seed: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  model: Type.Optional(ModelName),
  output_format: Type.Optional(StringEnum(OUTPUT_FORMATS)),
  webhook: Type.Optional(Type.String()),
  webhook_events_filter: Type.Optional(Type.String({ description: 'Events, comma-separated.' })),
});

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' })),
});

export const GenerationIdParams = Type.Object({ id: Type.String({ description: 'Generation id' }) });

export const Progress = Type.Object({
  stage: StringEnum(GENERATION_STAGES),
  completed: Type.Integer(),
  total: Type.Integer(),
});

export const GenerationImage = Type.Object(
  {
    rank: Type.Integer({ description: '1 = best CLIP score' }),
    url: Type.String({ description: 'Absolute URL serving the image bytes until expires_at' }),
    expires_at: Type.String({ format: 'date-time' }),
    score: Type.Number(),
    seed: Type.Integer(),
    width: Type.Integer(),
    height: Type.Integer(),
    format: StringEnum(OUTPUT_FORMATS),
  },
  { $id: 'GenerationImage' },
);

export const Metrics = Type.Object({
  queue_ms: Type.Number(),
  sample_ms: Type.Number(),
  decode_ms: Type.Number(),
  rerank_ms: Type.Number(),
  store_ms: Type.Number(),
  total_ms: Type.Number(),
});

export const Completion = Type.Object(
  {
    grid: Type.Array(Type.Integer(), { description: "The model's image grid, [rows, cols]." }),
    image_size: Type.Array(Type.Integer(), {
      description: 'The size the input image was resized to, [height, width].',
    }),
    keep_rows: Nullable(Type.Integer(), { description: "The request's keep_rows; null when a mask chose the cells." }),
    kept_cells: Type.Integer({ description: 'Grid cells kept from the input image; the others are regenerated.' }),
    kept: Type.Array(Type.String(), {
      description: 'One string per grid row, top first: `#` a kept cell, `.` a regenerated one.',
    }),
  },
  {
    description:
      'An image completion: which cells of the input image are kept (their codes forced) and which regenerated. Absent for a generation from the prompt alone.',
  },
);

export const GenerationInputView = Type.Object({
  prompt: Type.String(),
  candidates: Type.Integer(),
  n: Type.Integer(),
  top_k: Type.Optional(Type.Integer()),
  temperature: Type.Optional(Type.Number()),
  top_p: Type.Optional(Type.Number()),
  seed: Type.Integer(),
  model: Type.Optional(
    Type.String({
      description:
        "The request's model; for a request that named none, the pack the workers served by default when it was accepted (absent only when none had reported yet).",
    }),
  ),
  output_format: StringEnum(OUTPUT_FORMATS),
  webhook: Type.Optional(Type.String()),
  webhook_events_filter: Type.Array(StringEnum(WEBHOOK_EVENTS)),
  completion: Type.Optional(Completion),
  rank_by: Type.Optional(StringEnum(['prompt', 'image'] as const)),
});

const GenerationUrls = Type.Object({
  get: Type.String(),
  cancel: Type.String(),
  stream: Type.String({ description: 'Server-sent events: start, progress and the terminal event (completed).' }),
});

export const WebhookFailure = Type.Object(
  {
    status: StringEnum(['failed'] as const),
    event: StringEnum(WEBHOOK_EVENTS),
    attempts: Type.Integer(),
    last_error: Type.String(),
  },
  { description: 'A webhook event given up on after its last attempt (the dead letter); null while none was.' },
);
export type WebhookFailure = Static<typeof WebhookFailure>;

export const Generation = Type.Object(
  {
    id: Type.String(),
    status: StringEnum(GENERATION_STATUSES),
    input: GenerationInputView,
    model: Nullable(Type.String(), {
      description:
        "The model pack the generation runs on, from the start: the request's, or the workers' default when it was accepted (GET /models, `default_for`). Null only when no worker had reported its packs then, until the generation succeeds (the worker applies its own default).",
    }),
    progress: Nullable(Progress),
    created_at: Type.String({ format: 'date-time' }),
    started_at: Nullable(Type.String({ format: 'date-time' })),
    completed_at: Nullable(Type.String({ format: 'date-time' })),
    error: Nullable(
      Type.Object({
        code: StringEnum(FAILURE_CODES, {
          description: 'A job failure code from the error catalogue (docs/errors.md)',
        }),
        message: Type.String(),
      }),
    ),
    images: Type.Array(ref(GenerationImage)),
    metrics: Nullable(Metrics),
    prompt_tokens: Nullable(
      Type.Integer({
        description: "Tokens in the prompt by the pack's tokenizer; null until the generation succeeded.",
      }),
    ),
    truncated: Nullable(
      Type.Boolean({
        description: "Whether the prompt was longer than the pack's text length and cut; null until it succeeded.",
      }),
    ),
    unknown_words: Nullable(Type.Array(Type.String()), {
      description:
        'Prompt words the pack was never trained on (lower-cased, each once): the pack still draws something, but not from understanding them. Null until the generation succeeded, or when the pack lists no vocabulary.',
    }),
    webhook: Nullable(WebhookFailure),
    queue_position: Nullable(
      Type.Integer({
        description:
          'Generations ahead of it in the queue while it is queued (0: it is next); null otherwise, and in lists, events and webhooks.',
      }),
    ),
    eta_seconds: Nullable(
      Type.Number({
        description:
          'Estimated seconds until it ends, while queued or processing: the work ahead of it and its own, in candidates, over the rate the workers measure. Null when finished, before any worker has measured, and in lists, events and webhooks.',
      }),
    ),
    urls: GenerationUrls,
  },
  { $id: 'Generation' },
);
export type Generation = Static<typeof Generation>;

export const GenerationAccepted = Type.Object(
  {
    id: Type.String(),
    status: StringEnum(GENERATION_STATUSES),
    created_at: Type.String({ format: 'date-time' }),
    seed: Type.Integer(),
    urls: GenerationUrls,
    completion: Type.Optional(Completion),
  },
  { $id: 'GenerationAccepted' },
);
export type GenerationAccepted = Static<typeof GenerationAccepted>;

export const ListGenerationsQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
    status: Type.Optional(StringEnum(GENERATION_STATUSES)),
  },
  strict,
);
export type ListGenerationsQuery = Static<typeof ListGenerationsQuery>;

export const GenerationList = Type.Object(
  {
    data: Type.Array(ref(Generation)),
    next_cursor: Nullable(Type.String({ description: 'Pass as `cursor` for the next page; null on the last.' })),
  },
  { $id: 'GenerationList' },
);

// A comma separates labels wherever one text field holds several (a form field, the CLI, the
// playground), so no label holds one: the same words mean the same labels on every path.
const Label = Type.String({
  minLength: 1,
  maxLength: 100,
  pattern: '^[^\\p{Cc}\\p{Cs},]*$',
  description: 'Up to 100 characters, no commas and no control characters; NFC-normalised.',
});
const Labels = Type.Array(Label, {
  minItems: 2,
  maxItems: MAX_LABELS,
  uniqueItems: true,
  description:
    'At least two: scores are probabilities over the labels, so a single label always scores 1 (POST /clip/embed compares one text with an image).',
});
// Exactly one `{}`.
const Template = Type.String({
  minLength: 2,
  maxLength: 300,
  pattern: '^(?![\\s\\S]*\\{\\}[\\s\\S]*\\{\\})[^\\p{Cc}\\p{Cs}]*\\{\\}[^\\p{Cc}\\p{Cs}]*$',
  description: 'Prompt template with exactly one `{}`, which stands for the label; no control characters.',
});

export const ClassifyBody = Type.Object(
  {
    image: Type.Optional(ImageInput),
    images: Type.Optional(Type.Array(ImageInput, { minItems: 1, maxItems: MAX_IMAGES_PER_REQUEST })),
    labels: Labels,
    templates: Type.Optional(Type.Array(Template, { minItems: 1, maxItems: MAX_TEMPLATES })),
    top_k: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_LABELS,
        description: 'Return only the best k labels; default all (they sum to 1).',
      }),
    ),
    model: Type.Optional(ModelName),
  },
  { ...strict, description: 'Exactly one of image or images.' },
);
export type ClassifyBody = Static<typeof ClassifyBody>;

/** Documents the multipart form; its parts are validated by the handler as they stream in. */
export const ClassifyMultipartBody = Type.Object({
  image: Type.Array(Type.String({ contentMediaType: 'application/octet-stream' }), {
    description: 'One part per image file.',
  }),
  labels: Type.Array(Type.String(), {
    description:
      'One field per label, several labels in one field separated by commas, or one field holding a JSON array; at least two labels in all.',
  }),
  templates: Type.Optional(Type.Array(Template)),
  top_k: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
  model: Type.Optional(ModelName),
});

export const ClassifyResponse = Type.Object(
  {
    model: Type.String(),
    results: Type.Array(
      Type.Object({ labels: Type.Array(Type.Object({ label: Type.String(), score: Type.Number() })) }),
    ),
  },
  { $id: 'ClassifyResponse' },
);

export const EmbedBody = Type.Object(
  {
    images: Type.Optional(Type.Array(ImageInput, { minItems: 1, maxItems: MAX_IMAGES_PER_REQUEST })),
    texts: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 1000, pattern: PROSE }), { minItems: 1, maxItems: 256 }),
    ),
    model: Type.Optional(ModelName),
  },
  { ...strict, description: 'Exactly one of images or texts.' },
);
export type EmbedBody = Static<typeof EmbedBody>;

export const EmbedResponse = Type.Object(
  {
    model: Type.String(),
    dim: Type.Integer(),
    embeddings: Type.Array(Type.Array(Type.Number()), { description: 'L2-normalised, one per input, in order.' }),
  },
  { $id: 'EmbedResponse' },
);

export const ModelInfo = Type.Object(
  {
    name: Type.String(),
    version: Type.String(),
    description: Nullable(Type.String()),
    default_for: Type.Array(StringEnum(['generations', 'clip'] as const), {
      description:
        'What this pack serves when a request names no model: generations (DEFAULT_MODEL), classify and embed (DEFAULT_CLIP_MODEL).',
    }),
    generation: Nullable(
      Type.Object({
        text_length: Type.Integer(),
        image_size: Type.Array(Type.Integer()),
        image_grid: Type.Array(Type.Integer()),
        codebook_size: Type.Integer(),
        completes: Type.Optional(
          Type.Boolean({
            description:
              'Whether it completes images (POST /generations with `image`): its pack has an image encoder and forced tokens (pack schema 4).',
          }),
        ),
        default_candidates: Type.Optional(
          Type.Integer({
            description:
              'Candidates a generation on this model samples when its request names none (DEFAULT_CANDIDATES of the workers serving it).',
          }),
        ),
        row_bytes: Type.Optional(
          Type.Integer({
            description:
              "Bytes one candidate row holds while its batch samples (its key/value cache, the step's values, logits, images; not the weights). On the CPU with a kv_step graph: its cache buffers, sized once from the geometry. Else the pack's measured figure (its manifest's `memory`, else an estimate from its geometry) 3.5 times over for the runtime's arena, which holds 1.5–2.8× it while the cache grows.",
          }),
        ),
        decode_image_bytes: Type.Optional(
          Nullable(Type.Integer(), {
            description:
              "Bytes the pack's decoder holds per image it decodes (its manifest's `memory`); null when the pack does not say, and its decoding is then not budgeted.",
          }),
        ),
        max_batch_rows: Type.Optional(
          Type.Integer({
            description:
              'Most rows a batch of this pack holds on the workers serving it: GENERATE_BATCH_CANDIDATES, or fewer where GENERATE_MEMORY_BUDGET_MB allows fewer.',
          }),
        ),
        decode_batch_images: Type.Optional(
          Nullable(Type.Integer(), {
            description:
              "Most images of a batch decoded at once within GENERATE_MEMORY_BUDGET_MB (at most a quarter of it, at least one); null when the budget is unbounded or the pack's decoder memory is unknown.",
          }),
        ),
        sampling_defaults: Type.Object({
          top_k: Type.Integer(),
          temperature: Type.Number(),
          top_p: Type.Optional(Type.Number()),
        }),
      }),
      { description: 'The generator: null for a pack that serves CLIP only (classification and embeddings).' },
    ),
    embed_dim: Type.Integer(),
    vocabulary: Nullable(Type.Array(Type.String()), {
      description:
        "The words the pack was trained on; a generation reports the prompt's other words as unknown_words. Null when the pack does not say.",
    }),
    examples: Type.Array(Type.String(), {
      description: 'Prompts that show the pack at its best; empty when it lists none.',
    }),
    license: Nullable(Type.String(), {
      description:
        "The weights' license as their publisher states it (for example CC-BY-NC-SA-4.0); null when the pack does not say.",
    }),
    weights: Type.Optional(
      Type.Object(
        {
          format: Type.Union([Type.Literal('float32'), Type.Literal('int8')], {
            description:
              'float32, or int8: matrices stored as int8 with a scale per output column, activations quantized per row as they run (python3 -m training.quantize).',
          }),
          source: Nullable(Type.String(), {
            description: 'The float32 model an int8 one was quantized from; null for float32.',
          }),
        },
        { description: 'How the model holds its weights.' },
      ),
    ),
  },
  { $id: 'ModelInfo' },
);
export type ModelInfo = Static<typeof ModelInfo>;
export const ModelList = Type.Object({ data: Type.Array(ref(ModelInfo)) }, { $id: 'ModelList' });

export const Health = Type.Object({ status: Type.String() }, { $id: 'Health' });
export const Readiness = Type.Object(
  {
    status: StringEnum(['ready', 'unavailable'] as const),
    checks: Type.Object({
      redis: Type.Boolean(),
      workers: Type.Record(Type.String(), Type.Integer(), { description: 'Live workers per queue' }),
    }),
  },
  { $id: 'Readiness' },
);

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: StringEnum(ERROR_CODES),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', title: 'Problem details (RFC 9457)' },
);
export type Problem = Static<typeof Problem>;

/** The body of a webhook delivery: the generation as GET /generations/:id renders it, and the event. */
export const WebhookEventBody = Type.Intersect([ref(Generation), Type.Object({ event: StringEnum(WEBHOOK_EVENTS) })], {
  $id: 'WebhookEvent',
  description: 'Signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).',
});

/** Schemas with an `$id`: registered on the app once, named components of the OpenAPI document. */
export const NAMED_SCHEMAS = [
  Problem,
  GenerationImage,
  Generation,
  GenerationAccepted,
  GenerationList,
  ModelInfo,
  ModelList,
  ClassifyResponse,
  EmbedResponse,
  Health,
  Readiness,
  WebhookEventBody,
];
