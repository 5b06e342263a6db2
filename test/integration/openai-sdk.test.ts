// The OpenAI-compatible /v1 through the official `openai` SDK, against the running service:
// real Redis, BullMQ, worker, engine, sharp and storage on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import OpenAI, { toFile } from 'openai';
import sharp from 'sharp';
import { type Harness, closeSharedEngine, json, startHarness } from './api-harness.js';
import { waitForGeneration } from '../../src/api/openai/image-generation.js';

const PROMPT = 'a red circle on a blue background';
const KEY = 'sdk-test-key-0123456789abcdef';

function client(h: Harness, apiKey = 'unused-in-open-mode'): OpenAI {
  return new OpenAI({ baseURL: `${h.baseUrl}/v1`, apiKey, maxRetries: 0 });
}

async function decodedPng(bytes: Buffer) {
  const { info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  assert.equal((await sharp(bytes).metadata()).format, 'png');
  return info;
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  a.forEach((value, i) => {
    dot += value * b[i];
    na += value * value;
    nb += b[i] * b[i];
  });
  return dot / Math.sqrt(na * nb);
}

/** The SDK error a call rejects with. */
async function sdkError(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `an APIError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

describe('/v1 with the openai SDK', () => {
  let h: Harness;
  let openai: OpenAI;
  before(async () => {
    h = await startHarness({
      env: { OPENAI_MODEL_ALIASES: 'dall-e-2=demo-shapes,text-embedding-3-small=demo-shapes' },
    });
    openai = client(h);
  });
  after(async () => {
    await h.close();
  });

  test('images.generate with b64_json: PNGs best first, an ordinary generation listed by GET /generations', async () => {
    const response = await openai.images.generate({
      model: 'demo-shapes',
      prompt: PROMPT,
      n: 2,
      size: '64x64' as '256x256',
      response_format: 'b64_json',
      // Extensions travel as extra fields.
      ...({ candidates: 4, seed: 7 } as object),
    });
    assert.equal(response.data?.length, 2);
    for (const image of response.data ?? []) {
      assert.equal(image.revised_prompt, PROMPT);
      const info = await decodedPng(Buffer.from(image.b64_json ?? '', 'base64'));
      assert.deepEqual([info.width, info.height], [64, 64]);
    }
    const list = await json(await fetch(`${h.baseUrl}/generations`));
    const generation = list.data.find((entry: any) => entry.input.prompt === PROMPT && entry.input.seed === 7);
    assert.ok(generation, 'the /v1 generation is listed');
    assert.equal(generation.status, 'succeeded');
    assert.deepEqual([generation.input.candidates, generation.input.n], [4, 2]);
    // Best first: the images are the generation's ranks 1 and 2, in order.
    const ranked = await Promise.all(
      generation.images.map(async (image: any) => Buffer.from(await (await fetch(image.url)).arrayBuffer())),
    );
    assert.deepEqual(
      response.data?.map((image) => image.b64_json),
      ranked.map((bytes) => bytes.toString('base64')),
    );
  });

  test('images.generate with url (through a model alias): the URL serves the PNG', async () => {
    const response = await openai.images.generate({
      model: 'dall-e-2',
      prompt: PROMPT,
      size: 'auto',
      ...({ candidates: 2 } as object),
    });
    assert.equal(response.data?.length, 1);
    const url = response.data?.[0].url ?? '';
    assert.ok(url.startsWith(h.baseUrl), url);
    const fetched = await fetch(url);
    assert.equal(fetched.status, 200);
    const info = await decodedPng(Buffer.from(await fetched.arrayBuffer()));
    assert.deepEqual([info.width, info.height], [64, 64]);
  });

  test('revised_prompt is the text the model read: a prompt past its text length is cut', async () => {
    const long = Array.from({ length: 12 }, (_, i) => `a red circle number ${i}`).join(' and ');
    const response = await openai.images.generate({ prompt: long, ...({ candidates: 1 } as object) });
    const revised = response.data?.[0].revised_prompt ?? '';
    assert.ok(revised.length > 0 && revised.length < long.length, revised);
    assert.ok(long.startsWith(revised), `${JSON.stringify(revised)} begins the prompt`);
  });

  test('stream: a decodable partial image arrives before image_generation.completed', async () => {
    const stream = await openai.images.generate({
      prompt: PROMPT,
      stream: true,
      partial_images: 2,
      ...({ candidates: 8, seed: 3 } as object),
    });
    const events: { type: string; b64_json: string; partial_image_index?: number }[] = [];
    for await (const event of stream) events.push(event);
    const types = events.map((event) => event.type);
    const firstPartial = types.indexOf('image_generation.partial_image');
    const completed = types.indexOf('image_generation.completed');
    assert.ok(firstPartial >= 0, `a partial image among ${types.join(', ')}`);
    assert.ok(completed > firstPartial, `completed after the partial image: ${types.join(', ')}`);
    assert.equal(types.filter((type) => type === 'image_generation.completed').length, 1);
    assert.ok(types.filter((type) => type === 'image_generation.partial_image').length <= 2);
    assert.equal(events[firstPartial].partial_image_index, 0);
    const partial = await decodedPng(Buffer.from(events[firstPartial].b64_json, 'base64'));
    assert.deepEqual([partial.width, partial.height], [64, 64]);
    await decodedPng(Buffer.from(events[completed].b64_json, 'base64'));
  });

  test('models.list and models.retrieve: the packs and the aliases of served packs', async () => {
    const ids: string[] = [];
    for await (const model of openai.models.list()) ids.push(model.id);
    assert.ok(ids.includes('demo-shapes') && ids.includes('dall-e-2'), ids.join(', '));
    assert.equal((await openai.models.retrieve('demo-shapes')).object, 'model');
    const missing = await sdkError(openai.models.retrieve('no-such-pack'));
    assert.ok(missing instanceof OpenAI.NotFoundError);
  });

  test('embeddings.create: a prompt with itself has cosine 1, with an unrelated one less', async () => {
    const texts = [PROMPT, PROMPT, 'a green triangle in the corner'];
    // The SDK asks for base64 by default and decodes it; `float` comes as numbers.
    const [base64, floats] = await Promise.all([
      openai.embeddings.create({ model: 'text-embedding-3-small', input: texts }),
      openai.embeddings.create({ model: 'demo-shapes', input: texts, encoding_format: 'float' }),
    ]);
    for (const response of [base64, floats]) {
      assert.equal(response.object, 'list');
      assert.deepEqual(
        response.data.map((entry) => entry.index),
        [0, 1, 2],
      );
      const [a, b, c] = response.data.map((entry) => entry.embedding);
      assert.ok(Math.abs(cosine(a, b) - 1) < 1e-6, `self cosine ${cosine(a, b)}`);
      assert.ok(cosine(a, c) < cosine(a, b), `unrelated cosine ${cosine(a, c)}`);
      // Each text's CLIP tokens, start and end included: the two equal prompts count alike.
      assert.ok(response.usage.prompt_tokens > 3 * 2, `usage ${JSON.stringify(response.usage)}`);
      assert.equal(response.usage.total_tokens, response.usage.prompt_tokens);
    }
    base64.data[0].embedding.forEach((value, i) => assert.ok(Math.abs(value - floats.data[0].embedding[i]) < 1e-6));
    const single = await openai.embeddings.create({
      input: PROMPT,
      encoding_format: 'float',
    } as OpenAI.EmbeddingCreateParams);
    assert.equal(single.data.length, 1);
    const twice = await openai.embeddings.create({
      input: [PROMPT, PROMPT],
      encoding_format: 'float',
    } as OpenAI.EmbeddingCreateParams);
    assert.equal(twice.usage.prompt_tokens, 2 * single.usage.prompt_tokens);
  });

  test('a bad model, a size the pack does not draw and an unknown field are BadRequestErrors naming the field', async () => {
    const model = await sdkError(openai.images.generate({ model: 'no-such-pack', prompt: PROMPT }));
    assert.ok(model instanceof OpenAI.BadRequestError);
    assert.deepEqual([model.code, model.param, model.type], ['unknown_model', 'model', 'invalid_request_error']);

    const size = await sdkError(openai.images.generate({ prompt: PROMPT, size: '1024x1024' }));
    assert.ok(size instanceof OpenAI.BadRequestError);
    assert.equal(size.param, 'size');
    assert.match(size.message, /auto or 64x64/);

    const background = await sdkError(openai.images.generate({ prompt: PROMPT, background: 'transparent' }));
    assert.ok(background instanceof OpenAI.BadRequestError);
    assert.deepEqual([background.code, background.param], ['validation_failed', 'background']);
  });

  test('images.edit: the mask’s transparent cells are redrawn, the others kept; the edit is an ordinary completion', async () => {
    const scene = readFileSync(new URL('../fixtures/scenes/heldout-01.png', import.meta.url));
    // Transparent in the bottom half: the top four rows of cells are kept.
    const alpha = Buffer.alloc(64 * 64 * 4, 255);
    for (let i = 32 * 64; i < 64 * 64; i++) alpha[i * 4 + 3] = 0;
    const mask = await sharp(alpha, { raw: { width: 64, height: 64, channels: 4 } })
      .png()
      .toBuffer();
    const response = await openai.images.edit({
      model: 'demo-shapes',
      image: await toFile(scene, 'scene.png', { type: 'image/png' }),
      mask: await toFile(mask, 'mask.png', { type: 'image/png' }),
      prompt: 'a blue square below a red circle',
      n: 2,
      size: '64x64' as '256x256',
      response_format: 'b64_json',
      ...({ candidates: 4, seed: 9 } as object),
    });
    assert.equal(response.data?.length, 2);
    const list = await json(await fetch(`${h.baseUrl}/generations`));
    const generation = list.data.find((entry: any) => entry.input.seed === 9 && entry.input.completion);
    assert.ok(generation, 'the edit is listed as a completion');
    assert.equal(generation.input.completion.kept_cells, 32);
    assert.deepEqual(generation.input.completion.kept, [...Array(4).fill('########'), ...Array(4).fill('........')]);
    // The first row of cells decodes from kept cells only: every edit shows the input's there.
    const first = await Promise.all(
      (response.data ?? []).map(async (image) =>
        sharp(Buffer.from(image.b64_json ?? '', 'base64'))
          .extract({ left: 0, top: 0, width: 64, height: 8 })
          .raw()
          .toBuffer(),
      ),
    );
    assert.deepEqual(first[0], first[1]);

    // Without a mask the image's own transparency is the mask: an opaque image has none.
    const opaque = await sdkError(
      openai.images.edit({
        model: 'demo-shapes',
        image: await toFile(scene, 'scene.png', { type: 'image/png' }),
        prompt: 'a red circle',
      }),
    );
    assert.ok(opaque instanceof OpenAI.BadRequestError);
    assert.deepEqual([opaque.code, opaque.param], ['invalid_mask', 'image']);
    const micro = await sdkError(
      openai.images.edit({
        model: 'micro-dalle1',
        image: await toFile(scene, 'scene.png', { type: 'image/png' }),
        mask: await toFile(mask, 'mask.png', { type: 'image/png' }),
        prompt: 'a red circle',
      }),
    );
    assert.deepEqual([micro.status, micro.code, micro.param], [400, 'completion_unsupported', 'image']);
  });

  test('images.createVariation: the top half kept, the rest redrawn with no text, ranked by likeness to the image', async () => {
    const scene = readFileSync(new URL('../fixtures/scenes/heldout-01.png', import.meta.url));
    const response = await openai.images.createVariation({
      model: 'demo-shapes',
      image: await toFile(scene, 'scene.png', { type: 'image/png' }),
      n: 3,
      response_format: 'b64_json',
      ...({ candidates: 8, seed: 13 } as object),
    });
    assert.equal(response.data?.length, 3);
    const list = await json(await fetch(`${h.baseUrl}/generations`));
    const generation = list.data.find((entry: any) => entry.input.seed === 13 && entry.input.rank_by === 'image');
    assert.ok(generation, 'the variation is listed, ranked by the image');
    assert.equal(generation.input.prompt, '');
    assert.equal(generation.input.completion.keep_rows, 4);
    // Ranked by CLIP against the image: scores fall with rank, and are the likeness of each
    // variation to the input by CLIP's own image embeddings (POST /clip/embed).
    const scores = generation.images.map((image: any) => image.score);
    assert.deepEqual(
      scores,
      [...scores].sort((a: number, b: number) => b - a),
    );
    const png = (b64: string | undefined) => Buffer.from(b64 ?? '', 'base64');
    const vectors = await json(
      await fetch(`${h.baseUrl}/clip/embed`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          images: [scene, ...(response.data ?? []).map((image) => png(image.b64_json))].map((bytes) => ({
            base64: bytes.toString('base64'),
          })),
        }),
      }),
    );
    const [input, ...variations] = vectors.embeddings as number[][];
    // Each score is logit_scale × the cosine of the variation with the input image.
    const ratios = variations.map((vector, i) => scores[i] / cosine(vector, input));
    for (const ratio of ratios)
      assert.ok(Math.abs(ratio / ratios[0] - 1) < 1e-3, `score / likeness: ${ratios.join(', ')}`);
  });

  test("quality is a share of the serving workers' default candidates; usage counts what was sampled; style is ignored", async () => {
    const models = await json(await fetch(`${h.baseUrl}/models`));
    const demo = models.data.find((model: { name: string }) => model.name === 'demo-shapes');
    // The harness's worker runs on the CPU, whose default answers in seconds.
    assert.equal(demo.generation.default_candidates, 32);
    const [rows, columns] = demo.generation.image_grid;
    for (const [quality, candidates] of [
      ['low', 4],
      ['medium', 16],
    ] as const) {
      const { data: image, response } = await openai.images
        .generate({ model: 'demo-shapes', prompt: PROMPT, quality, style: 'natural', n: 2 })
        .withResponse();
      const generation = await json(await fetch(`${h.baseUrl}/generations/${response.headers.get('x-generation-id')}`));
      assert.equal(generation.input.candidates, candidates, quality);
      assert.equal(image.data?.length, 2);
      const usage = image.usage;
      assert.ok(usage);
      assert.ok(usage.input_tokens > 0);
      assert.equal(usage.output_tokens, candidates * rows * columns);
      assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    }
    // A native request naming no candidates gets the same default.
    const native = await json(
      await fetch(`${h.baseUrl}/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: PROMPT, n: 1 }),
      }),
    );
    const created = await json(await fetch(`${h.baseUrl}/generations/${native.id}`));
    assert.equal(created.input.candidates, 32);
  });

  test('native routes keep problem+json; unknown /v1 routes answer in OpenAI shape', async () => {
    const native = await fetch(`${h.baseUrl}/generations/nope`);
    assert.match(native.headers.get('content-type') ?? '', /^application\/problem\+json/);
    const v1 = await fetch(`${h.baseUrl}/v1/nope`);
    assert.equal(v1.status, 404);
    const body = await json(v1);
    assert.equal(body.error.code, 'not_found');
    assert.equal(body.error.type, 'invalid_request_error');
  });
});

describe('/v1 keys, limits and waits', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      worker: false,
      env: { API_KEYS: `sdk:${KEY}`, RATE_LIMIT_PER_MINUTE: '3', OPENAI_WAIT_TIMEOUT_MS: '300' },
    });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('without a key, or with a wrong one: AuthenticationError', async () => {
    // The SDK insists on a key; a null header leaves it out of the request.
    const keyless = new OpenAI({
      baseURL: `${h.baseUrl}/v1`,
      apiKey: 'left-out',
      maxRetries: 0,
      defaultHeaders: { authorization: null },
    });
    const missing = await sdkError(keyless.models.list());
    assert.ok(missing instanceof OpenAI.AuthenticationError, String(missing));
    const wrong = await sdkError(client(h, 'not-the-key-0123456789').models.list());
    assert.ok(wrong instanceof OpenAI.AuthenticationError);
    assert.equal(wrong.code, 'unauthorized');
  });

  test('a generation that outlasts OPENAI_WAIT_TIMEOUT_MS: an error naming it, not retried; it stays pollable', async () => {
    const openai = client(h, KEY);
    const timeout = await sdkError(openai.images.generate({ prompt: PROMPT, ...({ candidates: 1 } as object) }));
    assert.ok(timeout instanceof OpenAI.InternalServerError);
    assert.equal(timeout.status, 504);
    const id = timeout.headers?.get('x-generation-id') ?? '';
    assert.ok(id && timeout.message.includes(id), timeout.message);
    assert.equal(timeout.headers?.get('x-should-retry'), 'false');
    const native = await fetch(`${h.baseUrl}/generations/${id}`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal((await json(native)).status, 'queued');
  });

  test('the wait ends at OPENAI_WAIT_TIMEOUT_MS even when the process was held up as it began', async () => {
    const created = await fetch(`${h.baseUrl}/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: PROMPT, candidates: 1 }),
    });
    const { id } = (await json(created)) as { id: string };
    const owner = (await h.services.generations.lifecycle.read(id))?.owner ?? '';
    // The process held up (preempted, a GC pause) just after the wait set its timer: the clock
    // moves on while the timer's count began before, so the timer may fire before any deadline
    // read on the clock afterwards. Held up here where the wait listens for the client leaving.
    const { signal } = new AbortController();
    const listen = signal.addEventListener.bind(signal);
    signal.addEventListener = (...args: Parameters<typeof listen>) => {
      for (const busyUntil = Date.now() + 200; Date.now() < busyUntil;);
      listen(...args);
    };
    const outcome = await Promise.race([
      waitForGeneration(h.services, id, owner, { signal }).then(
        () => 'finished',
        (error: { code?: string }) => error.code,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5000).unref()),
    ]);
    assert.equal(outcome, 'timeout');
  });

  test('past the per-minute limit: RateLimitError with Retry-After', async () => {
    const openai = client(h, KEY);
    let limited: InstanceType<typeof OpenAI.APIError> | undefined;
    for (let i = 0; i < 5 && !limited; i++) {
      limited = await openai.models.list().then(
        () => undefined,
        (error) => error,
      );
    }
    assert.ok(limited instanceof OpenAI.RateLimitError, String(limited));
    assert.equal(limited.code, 'rate_limited');
    assert.ok(Number(limited.headers?.get('retry-after')) > 0);
  });
});
