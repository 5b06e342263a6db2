// Crafted images against the real API and worker: every one is a 400 (unsupported formats
// at the API before any decoder, undecodable ones from the worker), and the worker still
// classifies afterwards. Animated images are classified by their first frame.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { sniffImageFormat } from '../../src/lib/image-format.js';
import { type Harness, closeSharedEngine, json, post, startHarness } from './api-harness.js';

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A valid-looking PNG declaring width × height, with almost no pixel data. */
function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', ihdr),
    chunk('IDAT', Buffer.from('789c030000000001', 'hex')),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('crafted images', () => {
  let h: Harness;
  let red: Buffer;
  let images: Server;
  let imagesBase: string;
  const labels = ['a red circle', 'a blue square'];
  before(async () => {
    h = await startHarness({
      env: { IMAGE_MAX_BYTES: '200000', IMAGE_MAX_PIXELS: '10000', IMAGE_FETCH_MAX_REDIRECTS: '1' },
      ownEngine: true,
    });
    red = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#dd2222' } })
      .png()
      .toBuffer();
    // /hop/N redirects N times before it serves the image.
    images = createServer((request, response) => {
      const hops = Number(/^\/hop\/(\d+)$/.exec(request.url ?? '')?.[1] ?? -1);
      if (hops > 0) return response.writeHead(302, { location: `/hop/${hops - 1}` }).end();
      if (hops === 0) return response.writeHead(200, { 'content-type': 'image/png' }).end(red);
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => images.listen(0, '127.0.0.1', resolve));
    imagesBase = `http://127.0.0.1:${(images.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => images.close(resolve));
    await h.close();
    await closeSharedEngine();
  });

  const classify = (bytes: Buffer) =>
    post(h.baseUrl, '/clip/classify', { image: { base64: bytes.toString('base64') }, labels });

  async function refused(bytes: Buffer, code: string, name: string): Promise<void> {
    const response = await classify(bytes);
    const body = await json(response);
    assert.equal(response.status, 400, `${name}: ${JSON.stringify(body)}`);
    assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(body.code, code, name);
  }

  test('the format allow-list: png, jpeg, webp, gif, avif; nothing else reaches a decoder', async () => {
    for (const format of ['png', 'jpeg', 'webp', 'gif', 'avif'] as const) {
      const bytes = await sharp(red).toFormat(format).toBuffer();
      assert.equal(sniffImageFormat(bytes), format);
      assert.equal((await classify(bytes)).status, 200, format);
    }
    const svg = Buffer.from(
      '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><image href="file:///etc/passwd"/></svg>',
    );
    const tiff = await sharp(red).tiff().toBuffer();
    const random = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7919 + 13) % 256));
    for (const [name, bytes] of [
      ['svg', svg],
      ['tiff', tiff],
      ['pdf', Buffer.from('%PDF-1.7\n1 0 obj <<>> endobj\n')],
      ['random bytes', random],
      ['html', Buffer.from('<html></html>')],
      ['bmp', Buffer.from('424d3a000000', 'hex')],
    ] as const) {
      await refused(bytes, 'unsupported_image_format', name);
    }
  });

  test('undecodable files in an accepted format are 400 invalid_image, from the worker', async () => {
    await refused(red.subarray(0, red.length - 30), 'invalid_image', 'truncated png');
    await refused(red.subarray(0, 40), 'invalid_image', 'png header only');
    await refused(pngBomb(100_000, 100_000), 'invalid_image', 'png bomb of 10^10 pixels');
    await refused(pngBomb(0xffffffff >>> 1, 1), 'invalid_image', 'png of 2^31 columns');
    await refused(
      Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), Buffer.alloc(64, 0xaa)]),
      'invalid_image',
      'jpeg garbage',
    );
    await refused(Buffer.from('GIF89a\xff\xff\xff\xff', 'latin1'), 'invalid_image', 'gif of 65535 × 65535 and nothing');
    const empty = new FormData();
    empty.append('image', new Blob([]), 'empty.png');
    empty.append('labels', JSON.stringify(labels));
    const response = await fetch(`${h.baseUrl}/clip/classify`, { method: 'POST', body: empty });
    assert.equal(response.status, 400);
    assert.equal((await json(response)).code, 'invalid_image', 'zero-length upload');
    const tooBig = await classify(Buffer.concat([red, Buffer.alloc(200_000)]));
    assert.equal(tooBig.status, 413, 'over IMAGE_MAX_BYTES');
  });

  test('IMAGE_MAX_PIXELS: a real image over the limit is refused, one under it is classified', async () => {
    const large = await sharp({ create: { width: 101, height: 100, channels: 3, background: '#dd2222' } })
      .png()
      .toBuffer();
    const response = await classify(large);
    const body = await json(response);
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.equal(body.code, 'invalid_image');
    assert.match(body.detail, /pixel limit/i);
    const atLimit = await sharp({ create: { width: 100, height: 100, channels: 3, background: '#dd2222' } })
      .png()
      .toBuffer();
    assert.equal((await classify(atLimit)).status, 200);
  });

  test('IMAGE_FETCH_MAX_REDIRECTS: an image URL may take one redirect here, not two', async () => {
    const byUrl = (path: string) =>
      post(h.baseUrl, '/clip/classify', { image: { url: `${imagesBase}${path}` }, labels });
    assert.equal((await byUrl('/hop/1')).status, 200);
    const refusedBody = await json(await byUrl('/hop/2'));
    assert.equal(refusedBody.code, 'image_fetch_failed', JSON.stringify(refusedBody));
    assert.match(refusedBody.detail, /more than 1 redirect/);
  });

  test('an animated image is classified by its first frame', async () => {
    const frame = (colour: string) =>
      sharp({ create: { width: 64, height: 64, channels: 3, background: colour } })
        .png()
        .toBuffer();
    const animated = await sharp([await frame('#dd2222'), await frame('#2222dd')], { join: { animated: true } })
      .gif()
      .toBuffer();
    assert.equal((await sharp(animated).metadata()).pages, 2);
    const first = await json(await classify(animated));
    const still = await json(await classify(await sharp(animated, { pages: 1 }).png().toBuffer()));
    assert.deepEqual(first.results, still.results);
  });

  test('the worker still answers after all of them', async () => {
    const response = await classify(red);
    assert.equal(response.status, 200);
    assert.equal((await json(response)).results[0].labels.length, 2);
  });
});
