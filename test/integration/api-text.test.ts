// Prompts, labels, templates and texts from clients: count and length limits, control
// characters refused with a 400 naming the field, Unicode NFC-normalised before use, and the
// body size limit enforced before the body is parsed.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { type Harness, closeSharedEngine, json, post, startHarness } from './api-harness.js';

const COMPOSED = 'caf\u00e9 cr\u00e8me';
const DECOMPOSED = 'cafe\u0301 cre\u0300me';

describe('prompts and labels', () => {
  let h: Harness;
  let png: { base64: string };
  before(async () => {
    h = await startHarness({ env: { BODY_LIMIT_BYTES: '4096' } });
    png = {
      base64: (
        await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } })
          .png()
          .toBuffer()
      ).toString('base64'),
    };
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  async function refused(path: string, body: unknown, field: string): Promise<void> {
    const response = await post(h.baseUrl, path, body);
    const problem = await json(response);
    assert.equal(response.status, 400, `${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(problem)}`);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(problem.code, 'validation_failed');
    assert.equal(problem.errors[0].field, field, JSON.stringify(body).slice(0, 200));
  }

  test('control characters are refused, naming the field', async () => {
    for (const bad of ['\u0000', '\u0007', '\u001b[31m', '\u007f', '\u0085', '\u009b', '\ud800', 'a\udfffb']) {
      await refused('/generations', { prompt: `a red ${bad}circle` }, 'prompt');
      await refused('/clip/classify', { image: png, labels: ['ok', `x${bad}`] }, 'labels[1]');
      await refused(
        '/clip/classify',
        { image: png, labels: ['ok', 'fine'], templates: [`a {}${bad}`] },
        'templates[0]',
      );
      await refused('/clip/embed', { texts: ['ok', `x${bad}`] }, 'texts[1]');
    }
    for (const bad of ['\t', '\n', '\r'])
      await refused('/clip/classify', { image: png, labels: [`x${bad}y`, 'ok'] }, 'labels[0]');
    // Tab and line breaks are text in a prompt; emoji and other scripts are welcome everywhere.
    for (const prompt of [
      'a red circle\nabove a blue square',
      'a\tred circle',
      'ein rotes Quadrat \u{1f7e5}',
      '\u8d64\u3044\u5186',
    ]) {
      assert.equal(
        (await post(h.baseUrl, '/generations', { prompt, candidates: 1 })).status,
        202,
        JSON.stringify(prompt),
      );
    }
  });

  test('count and length limits', async () => {
    const labels = (count: number) => Array.from({ length: count }, (_, i) => `label ${i}`);
    await refused('/clip/classify', { image: png, labels: labels(257) }, 'labels');
    await refused('/clip/classify', { image: png, labels: ['x'.repeat(101), 'b'] }, 'labels[0]');
    await refused('/clip/classify', { image: png, labels: ['a', 'b'], templates: Array(17).fill('a {}') }, 'templates');
    await refused('/clip/classify', { image: png, labels: ['a', 'b'], templates: ['{} and {}'] }, 'templates[0]');
    await refused('/clip/classify', { image: png, labels: ['a', 'b'], templates: ['no placeholder'] }, 'templates[0]');
    await refused('/generations', { prompt: 'x'.repeat(1001) }, 'prompt');
    await refused('/generations', { prompt: ' \n\t ' }, 'prompt');
    const ok = await post(h.baseUrl, '/clip/classify', {
      image: png,
      labels: ['x'.repeat(100), 'b'],
      templates: Array(16).fill('a photo of {}'),
    });
    assert.equal(ok.status, 200, JSON.stringify(await ok.clone().json()));
  });

  test('text is NFC-normalised: composed and decomposed forms are one text', async () => {
    await refused('/clip/classify', { image: png, labels: [COMPOSED, DECOMPOSED] }, 'labels');
    const classified = await json(await post(h.baseUrl, '/clip/classify', { image: png, labels: [DECOMPOSED, 'tea'] }));
    assert.ok(
      classified.results[0].labels.some((entry: { label: string }) => entry.label === COMPOSED),
      JSON.stringify(classified),
    );
    const embedded = await json(await post(h.baseUrl, '/clip/embed', { texts: [COMPOSED, DECOMPOSED] }));
    assert.deepEqual(embedded.embeddings[0], embedded.embeddings[1]);
    const accepted = await json(await post(h.baseUrl, '/generations', { prompt: DECOMPOSED, candidates: 1 }));
    const generation = await json(await fetch(`${h.baseUrl}/generations/${accepted.id}`));
    assert.equal(generation.input.prompt, COMPOSED);
  });

  test('special-token strings as labels are classified as text', async () => {
    const result = await json(
      await post(h.baseUrl, '/clip/classify', { image: png, labels: ['<|eos|>', '<|bos|>', '<|pad|>', 'red'] }),
    );
    assert.equal(result.results[0].labels.length, 4, JSON.stringify(result));
  });

  test('a body over BODY_LIMIT_BYTES is 413 problem+json before it is read', async () => {
    // Jobs of earlier tests may move on meanwhile (active to completed); a queued one adds to the total.
    const jobs = async () =>
      Object.values(await h.services.queues.get('generate').getJobCounts()).reduce((sum, n) => sum + n, 0);
    const before = await jobs();
    const big = await post(h.baseUrl, '/generations', { prompt: 'x', padding: 'y'.repeat(5000) });
    assert.equal(big.status, 413);
    assert.match(big.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal((await json(big)).code, 'payload_too_large');
    assert.equal(await jobs(), before, 'nothing was queued');
    // A declared length over the limit is answered without waiting for the body at all.
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const url = new URL('/clip/classify', h.baseUrl);
      const request = httpRequest(
        url,
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '100000000' } },
        (response) => {
          let text = '';
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => {
            resolve({ status: response.statusCode ?? 0, body: text });
            request.destroy();
          });
        },
      );
      request.on('error', reject);
      request.write('{"labels":');
    });
    assert.equal(status, 413);
    assert.equal(JSON.parse(body).code, 'payload_too_large');
  });
});
