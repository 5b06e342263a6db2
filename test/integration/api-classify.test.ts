// Classification and embeddings through HTTP, the queue and the worker's micro-batcher.
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { type Harness, closeSharedEngine, json, post, startHarness } from './api-harness.js';

async function shape(color: { r: number; g: number; b: number }): Promise<Buffer> {
  const svg = `<svg width="64" height="64" xmlns="http://www.w3.org/2000/svg"><rect width="64" height="64" fill="white"/><circle cx="32" cy="32" r="20" fill="rgb(${color.r},${color.g},${color.b})"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

function batchSizes(metricsText: string): { sum: number; count: number } {
  const sum = Number(/^dalle_classify_batch_size_sum (\S+)$/m.exec(metricsText)?.[1] ?? 0);
  const count = Number(/^dalle_classify_batch_size_count (\S+)$/m.exec(metricsText)?.[1] ?? 0);
  return { sum, count };
}

describe('clip', () => {
  let h: Harness;
  let images: Server;
  let imagesUrl: string;
  let red: Buffer;
  let blue: Buffer;

  before(async () => {
    h = await startHarness();
    red = await shape({ r: 220, g: 20, b: 20 });
    blue = await shape({ r: 20, g: 20, b: 220 });
    images = createServer((request, response) => {
      if (request.url === '/red.png') response.writeHead(200, { 'content-type': 'image/png' }).end(red);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
    imagesUrl = `http://127.0.0.1:${(images.address() as { port: number }).port}`;
  });
  after(async () => {
    images.close();
    await h.close();
    await closeSharedEngine();
  });

  const labels = ['circle', 'square', 'triangle'];

  function assertDistribution(result: { labels: { label: string; score: number }[] }, expected: string[]) {
    assert.deepEqual([...result.labels.map((l) => l.label)].sort(), [...expected].sort());
    const scores = result.labels.map((l) => l.score);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
      'sorted by score',
    );
    assert.ok(Math.abs(scores.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'scores sum to 1');
  }

  test('a single base64 image gets every label with probabilities that sum to 1', async () => {
    const response = await post(h.baseUrl, '/clip/classify', { image: { base64: red.toString('base64') }, labels });
    assert.equal(response.status, 200);
    const body = await json(response);
    assert.equal(body.model, 'demo-shapes');
    assert.equal(body.results.length, 1);
    assertDistribution(body.results[0], labels);
  });

  test('an image URL is fetched; top_k keeps the best labels', async () => {
    const byUrl = await json(
      await post(h.baseUrl, '/clip/classify', { image: { url: `${imagesUrl}/red.png` }, labels }),
    );
    const byBytes = await json(
      await post(h.baseUrl, '/clip/classify', { image: { base64: red.toString('base64') }, labels }),
    );
    assert.deepEqual(byUrl, byBytes);
    const top = await json(
      await post(h.baseUrl, '/clip/classify', { image: { base64: red.toString('base64') }, labels, top_k: 2 }),
    );
    assert.deepEqual(top.results[0].labels, byBytes.results[0].labels.slice(0, 2));
  });

  test('a batch gets one result per image, in order', async () => {
    const body = await json(
      await post(h.baseUrl, '/clip/classify', {
        images: [{ base64: red.toString('base64') }, { base64: blue.toString('base64') }],
        labels,
      }),
    );
    assert.equal(body.results.length, 2);
    const single = await json(
      await post(h.baseUrl, '/clip/classify', { image: { base64: blue.toString('base64') }, labels }),
    );
    for (const [i, entry] of body.results[1].labels.entries()) {
      assert.equal(entry.label, single.results[0].labels[i].label);
      assert.ok(Math.abs(entry.score - single.results[0].labels[i].score) < 1e-5);
    }
  });

  test('multipart uploads: one image part per file, one labels field per label', async () => {
    const form = new FormData();
    form.append('image', new Blob([red], { type: 'image/png' }), 'red.png');
    form.append('image', new Blob([blue], { type: 'image/png' }), 'blue.png');
    for (const label of labels) form.append('labels', label);
    form.append('top_k', '2');
    const response = await fetch(`${h.baseUrl}/clip/classify`, { method: 'POST', body: form });
    assert.equal(response.status, 200);
    const body = await json(response);
    assert.equal(body.results.length, 2);
    assert.equal(body.results[0].labels.length, 2);

    const bad = new FormData();
    bad.append('image', new Blob([Buffer.from('not an image')]), 'x.png');
    bad.append('labels', '["a","b"]');
    const refused = await fetch(`${h.baseUrl}/clip/classify`, { method: 'POST', body: bad });
    assert.equal(refused.status, 400);
    assert.equal((await json(refused)).code, 'unsupported_image_format');
  });

  test('labels mean the same on every path: commas separate them in a form field, no label holds one, one label is refused', async () => {
    const upload = async (...fields: string[]) => {
      const form = new FormData();
      form.append('image', new Blob([red], { type: 'image/png' }), 'red.png');
      for (const field of fields) form.append('labels', field);
      return fetch(`${h.baseUrl}/clip/classify`, { method: 'POST', body: form });
    };
    const byJson = await json(
      await post(h.baseUrl, '/clip/classify', { image: { base64: red.toString('base64') }, labels }),
    );
    for (const fields of [
      ['circle, square,triangle'],
      ['circle', 'square', 'triangle'],
      ['circle,square', 'triangle'],
    ]) {
      const response = await upload(...fields);
      assert.equal(response.status, 200, fields.join('|'));
      assert.deepEqual((await json(response)).results[0].labels, byJson.results[0].labels, fields.join('|'));
    }

    const comma = await post(h.baseUrl, '/clip/classify', {
      image: { base64: red.toString('base64') },
      labels: ['circle,square', 'triangle'],
    });
    assert.equal(comma.status, 400);
    const commaBody = await json(comma);
    assert.equal(commaBody.code, 'validation_failed');
    assert.equal(commaBody.errors[0].field, 'labels[0]');
    assert.match(commaBody.detail, /no commas/);

    for (const response of [
      await post(h.baseUrl, '/clip/classify', { image: { base64: red.toString('base64') }, labels: ['circle'] }),
      await upload('circle'),
    ]) {
      assert.equal(response.status, 400);
      const body = await json(response);
      assert.equal(body.errors[0].field, 'labels');
      assert.match(body.detail, /always scores 1/);
    }
  });

  test('an undecodable image is a 400 invalid_image and fails only its own request', async () => {
    const [bad, good] = await Promise.all([
      // A PNG cut short: it passes the format check and fails in the decoder.
      post(h.baseUrl, '/clip/classify', {
        image: { base64: red.subarray(0, red.length - 20).toString('base64') },
        labels,
      }),
      post(h.baseUrl, '/clip/classify', { image: { base64: red.toString('base64') }, labels }),
    ]);
    assert.equal(bad.status, 400);
    const problem = await json(bad);
    assert.equal(problem.code, 'invalid_image');
    assert.match(bad.headers.get('content-type') ?? '', /application\/problem\+json/);
    assert.equal(good.status, 200);
  });

  test('embeddings of texts and images are L2-normalised', async () => {
    const texts = await json(await post(h.baseUrl, '/clip/embed', { texts: ['a red circle', 'a blue square'] }));
    assert.equal(texts.embeddings.length, 2);
    assert.equal(texts.dim, 64);
    const pictures = await json(await post(h.baseUrl, '/clip/embed', { images: [{ base64: red.toString('base64') }] }));
    assert.equal(pictures.embeddings.length, 1);
    for (const vector of [...texts.embeddings, ...pictures.embeddings]) {
      assert.equal(vector.length, 64);
      assert.ok(Math.abs(Math.hypot(...vector) - 1) < 1e-4);
    }
    assert.notDeepEqual(texts.embeddings[0], texts.embeddings[1]);
  });
});

describe('clip micro-batching', () => {
  let h: Harness;
  // A batch that never times out goes to the engine when it is full: eight concurrent
  // requests make one batch of eight however slowly they arrive.
  before(async () => (h = await startHarness({ env: { CLASSIFY_BATCH_WAIT_MS: '60000', CLASSIFY_BATCH_MAX: '8' } })));
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('concurrent requests are micro-batched into one engine call', async () => {
    const [red, blue] = await Promise.all([shape({ r: 220, g: 20, b: 20 }), shape({ r: 20, g: 20, b: 220 })]);
    const labels = ['circle', 'square', 'triangle'];
    const metrics = async () =>
      batchSizes(await (await fetch(`http://127.0.0.1:${h.worker?.metricsPort}/metrics`)).text());
    const before = await metrics();
    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        post(h.baseUrl, '/clip/classify', { image: { base64: (i % 2 ? red : blue).toString('base64') }, labels }),
      ),
    );
    for (const response of responses) assert.equal(response.status, 200);
    const afterwards = await metrics();
    assert.deepEqual(
      { requests: afterwards.sum - before.sum, batches: afterwards.count - before.count },
      {
        requests: 8,
        batches: 1,
      },
    );
  });
});
