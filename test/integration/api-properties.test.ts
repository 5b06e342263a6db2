// Property-based: random and malformed requests never make the API answer 500. Valid bodies
// meet full queues (depth 0) and get a quick 503, so no worker is needed; errors are always
// problem+json; prototype-pollution keys pollute nothing.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type Harness, startHarness } from './api-harness.js';

const RUNS = 200;
const TINY_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC';

// Values a client could put anywhere: wrong types, huge and odd numbers, unicode, nesting.
const junk = fc.oneof(
  fc.anything({
    maxDepth: 3,
    withBigInt: false,
    withBoxedValues: false,
    withMap: false,
    withSet: false,
    withTypedArray: false,
    withSparseArray: false,
  }),
  fc.constantFrom(
    1e308,
    -1e308,
    2 ** 53 + 1,
    -0,
    0.1,
    4294967296,
    -1,
    '',
    ' ',
    '\u0000',
    '\ud800',
    '{}',
    '<|eos|>',
    'é',
    'x'.repeat(5000),
  ),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(
    'http://127.0.0.1:1/x',
    'http://169.254.169.254/',
    'http://[::1]/',
    'file:///etc/passwd',
    'http://0/',
    'https://10.0.0.1/a.png',
  ),
);
const image = fc.oneof(
  fc.constant({ base64: TINY_PNG }),
  fc.record({ url: junk }),
  fc.record({ base64: junk }),
  fc.dictionary(fc.string(), junk, { maxKeys: 3 }),
);

const generationBody = fc.record(
  {
    prompt: fc.oneof(fc.string({ unit: 'grapheme', maxLength: 50 }), junk),
    candidates: fc.oneof(fc.integer({ min: -5, max: 5000 }), junk),
    n: junk,
    top_k: junk,
    temperature: fc.oneof(fc.double(), junk),
    top_p: fc.oneof(fc.double(), junk),
    seed: fc.oneof(fc.integer(), junk),
    model: junk,
    output_format: junk,
    webhook: junk,
    webhook_events_filter: junk,
    image,
    keep_rows: fc.oneof(fc.integer({ min: -2, max: 10 }), junk),
    mask: image,
  },
  { requiredKeys: [] },
);
const classifyBody = fc.record(
  {
    image,
    images: fc.oneof(fc.array(image, { maxLength: 3 }), junk),
    labels: fc.oneof(fc.array(fc.string({ unit: 'grapheme', maxLength: 20 }), { maxLength: 5 }), junk),
    templates: fc.oneof(fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }), junk),
    top_k: junk,
    model: junk,
  },
  { requiredKeys: [] },
);
const embedBody = fc.record(
  {
    images: fc.oneof(fc.array(image, { maxLength: 3 }), junk),
    texts: fc.oneof(fc.array(fc.string({ unit: 'grapheme', maxLength: 20 }), { maxLength: 3 }), junk),
    model: junk,
  },
  { requiredKeys: [] },
);

// Bodies that pass validation, so that the queue is reached too.
const VALID: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  '/generations': fc.record({
    prompt: fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 40 })
      .filter((text) => /\S/.test(text) && !/\p{Cc}/u.test(text)),
    seed: fc.nat(),
  }),
  '/clip/classify': fc.record({
    image: fc.constant({ base64: TINY_PNG }),
    labels: fc.uniqueArray(fc.stringMatching(/^[a-z ]{1,20}$/), { minLength: 1, maxLength: 5 }),
  }),
  '/clip/embed': fc.record({ texts: fc.array(fc.stringMatching(/^[a-z]{1,20}$/), { minLength: 1, maxLength: 3 }) }),
};

// Raw JSON text: the body, extra keys (prototype pollution included), or plain garbage.
const POLLUTION = [
  '"__proto__":{"polluted":true}',
  '"constructor":{"prototype":{"polluted":true}}',
  '"__proto__":null',
  '"prototype":1',
];
function rawBodies(
  body: fc.Arbitrary<Record<string, unknown>>,
  valid: fc.Arbitrary<Record<string, unknown>>,
): fc.Arbitrary<string> {
  return fc.oneof(
    body.map((value) => JSON.stringify(value)),
    valid.map((value) => JSON.stringify(value)),
    fc.tuple(body, fc.constantFrom(...POLLUTION)).map(([value, extra]) => {
      const text = JSON.stringify(value);
      return text === '{}' ? `{${extra}}` : `{${extra},${text.slice(1)}`;
    }),
    junk.map((value) => JSON.stringify(value) ?? 'undefined'),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.integer({ min: 1, max: 2000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
    fc.constantFrom('', '{', '{"prompt":', 'null', '[]', '{"prompt":"a","prompt":1}', '\ufeff{"prompt":"a"}'),
  );
}

describe('random requests never make a 500', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({
      worker: false,
      env: { GENERATE_MAX_QUEUED: '0', CLASSIFY_MAX_QUEUED: '0', OUTBOUND_ALLOW: '', IMAGE_FETCH_TIMEOUT_MS: '500' },
    });
  });
  after(() => h.close());

  const statuses = new Map<number, number>();
  async function check(
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    payload?: string,
    contentType = 'application/json',
  ): Promise<void> {
    const response = await h.app.inject({
      method,
      url,
      ...(payload !== undefined && { payload, headers: { 'content-type': contentType } }),
    });
    const where = `${method} ${url} ${JSON.stringify(payload)?.slice(0, 300)} → ${response.statusCode} ${response.body.slice(0, 300)}`;
    assert.ok(response.statusCode < 500 || response.statusCode === 503, where);
    statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
    if (response.statusCode >= 400) {
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/, where);
      const problem = response.json();
      assert.equal(problem.status, response.statusCode, where);
      assert.equal(typeof problem.code, 'string', where);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, `prototype polluted by ${where}`);
  }

  for (const [path, body] of [
    ['/generations', generationBody],
    ['/clip/classify', classifyBody],
    ['/clip/embed', embedBody],
  ] as const) {
    test(`POST ${path}`, async () => {
      statuses.clear();
      await fc.assert(
        fc.asyncProperty(rawBodies(body as fc.Arbitrary<Record<string, unknown>>, VALID[path]), (payload) =>
          check('POST', path, payload),
        ),
        { numRuns: RUNS },
      );
      // Both refusals and requests that passed validation and met the full queue were tried.
      assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(503) ?? 0) > 0, JSON.stringify([...statuses]));
    });
  }

  test('other content types', async () => {
    const type = fc.constantFrom(
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'application/xml',
      '*/*',
      '',
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/generations', '/clip/classify', '/clip/embed'),
        type,
        fc.string({ unit: 'binary', maxLength: 200 }),
        (path, contentType, payload) => check('POST', path, payload, contentType),
      ),
      { numRuns: RUNS },
    );
  });

  test('random ids and paths for GET, DELETE and cancel', async () => {
    const id = fc.oneof(
      fc.uuid(),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }),
      fc.constantFrom('..', '%2e%2e', '%00', '__proto__', 'constructor', '0'.repeat(300)),
    );
    const query = fc.oneof(
      fc.constant(''),
      fc.string({ maxLength: 40 }).map((text) => `?${text}`),
      fc.constantFrom('?limit=1e308', '?limit=-1', '?cursor=__proto__', '?status[]=x', '?__proto__[polluted]=1'),
    );
    await fc.assert(
      fc.asyncProperty(
        id,
        fc.constantFrom(['GET', ''], ['DELETE', ''], ['POST', '/cancel']),
        query,
        (raw, [method, suffix], q) =>
          check(method as 'GET' | 'DELETE' | 'POST', `/generations/${encodeURIComponent(raw)}${suffix}${q}`),
      ),
      { numRuns: RUNS },
    );
    await fc.assert(
      fc.asyncProperty(query, (q) => check('GET', `/generations${q}`)),
      { numRuns: RUNS },
    );
  });
});
