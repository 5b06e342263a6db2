// What a classify or embed request costs before and after it is answered: the model and a
// queue place are checked before any image URL is fetched; the images of one request are
// capped together; small ones travel in the job, large ones wait beside it in Redis (not
// base64 inside it) and are deleted, with a job no worker took, when the request gives up (504).
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { ClassifyJobData } from '../../src/contracts/jobs.js';
import type { TypedQueue } from '../../src/queue/queues.js';
import { INLINE_IMAGE_BYTES } from '../../src/service/clip-images.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { type Harness, closeSharedEngine, json, post, startHarness } from './api-harness.js';

async function png(size: number): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: { r: 200, g: 40, b: 40 } } })
    .png()
    .toBuffer();
}

/** A PNG of random pixels: larger than its size says, as photographs are. */
async function noise(size: number): Promise<Buffer> {
  const pixels = Buffer.alloc(size * size * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(Math.random() * 256);
  return sharp(pixels, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}

/** The first job on the classify queue's wait list, once there is one. */
async function queuedJob(queue: TypedQueue<'classify'>) {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const [waiting] = await queue.getWaiting();
    if (waiting) return waiting;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('no job was queued');
}

/** A loopback image server that counts the requests it gets. */
async function imageServer(image: Buffer): Promise<{ url: string; hits: () => number; server: Server }> {
  let hits = 0;
  const server = createServer((_request, response) => {
    hits += 1;
    response.writeHead(200, { 'content-type': 'image/png' }).end(image);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/a.png`, hits: () => hits, server };
}

const labels = ['circle', 'square'];

describe('checks before any fetch', () => {
  let h: Harness;
  let images: Awaited<ReturnType<typeof imageServer>>;
  before(async () => {
    h = await startHarness({ env: { CLASSIFY_MAX_QUEUED: '0' } });
    images = await imageServer(await png(16));
  });
  after(async () => {
    images.server.close();
    await h.close();
    await closeSharedEngine();
  });

  test('an unknown model and a full queue are refused without fetching the image', async () => {
    const unknown = await post(h.baseUrl, '/clip/classify', { image: { url: images.url }, labels, model: 'nope' });
    assert.equal(unknown.status, 400);
    assert.equal((await json(unknown)).code, 'unknown_model');
    const full = await post(h.baseUrl, '/clip/classify', { image: { url: images.url }, labels });
    assert.equal(full.status, 503);
    assert.equal((await json(full)).code, 'queue_full');
    const embed = await post(h.baseUrl, '/clip/embed', { images: [{ url: images.url }] });
    assert.equal(embed.status, 503);
    assert.equal(images.hits(), 0, 'no image was fetched');
  });
});

describe('the images of a request', () => {
  let h: Harness;
  let image: Buffer;
  let small: Buffer;
  before(async () => {
    image = await noise(160);
    small = await png(48);
    assert.ok(image.byteLength > INLINE_IMAGE_BYTES && small.byteLength <= INLINE_IMAGE_BYTES);
    h = await startHarness({
      worker: false,
      env: { CLASSIFY_TIMEOUT_MS: '1500', CLIP_REQUEST_MAX_IMAGE_BYTES: String(image.byteLength * 2) },
    });
  });
  after(() => h.close());

  test('past CLIP_REQUEST_MAX_IMAGE_BYTES together: 413 images_too_large, nothing queued', async () => {
    const one = { base64: image.toString('base64') };
    const response = await post(h.baseUrl, '/clip/classify', { images: [one, one, one], labels });
    assert.equal(response.status, 413);
    const body = await json(response);
    assert.equal(body.code, 'images_too_large');
    assert.equal(body.errors[0].field, 'images');
    assert.equal(await h.services.queues.get('classify').count(), 0);
    assert.equal(await h.services.queues.redis.zcard(serviceKeys(h.config.queuePrefix).clipPlaces), 0, 'no place kept');
  });

  test('large ones wait beside the job with a TTL, and go with a job nobody waits for (504)', async () => {
    const queue = h.services.queues.get('classify');
    const pending = post(h.baseUrl, '/clip/classify', { images: [{ base64: image.toString('base64') }], labels });
    const waiting = await queuedJob(queue);
    const [request] = (waiting.data as ClassifyJobData).requests;
    const ref = request.images;
    assert.ok('key' in ref, 'a reference, not the images');
    assert.equal(ref.count, 1);
    assert.ok(!JSON.stringify(waiting.data).includes(image.toString('base64').slice(0, 64)), 'no base64 in the job');
    const redis = h.services.queues.redis;
    assert.deepEqual(await redis.lrangeBuffer(ref.key, 0, -1), [image]);
    assert.ok((await redis.pttl(ref.key)) > 0, 'the images expire by themselves too');

    const response = await pending;
    assert.equal(response.status, 504);
    assert.equal((await json(response)).code, 'timeout');
    assert.equal(await queue.getJob(waiting.id as string), undefined, 'the job is removed');
    assert.equal(await redis.exists(ref.key), 0, 'its images are deleted');
    assert.equal(await redis.zcard(serviceKeys(h.config.queuePrefix).clipPlaces), 0, 'its place is freed');
  });

  test('small ones travel inline in the job: nothing beside it', async () => {
    const queue = h.services.queues.get('classify');
    const pending = post(h.baseUrl, '/clip/classify', { images: [{ base64: small.toString('base64') }], labels });
    const waiting = await queuedJob(queue);
    const [request] = (waiting.data as ClassifyJobData).requests;
    assert.deepEqual(request.images, { base64: [small.toString('base64')] });
    const redis = h.services.queues.redis;
    assert.deepEqual(await redis.keys(`${h.config.queuePrefix}:svc:clip-images:*`), []);
    assert.equal((await pending).status, 504);
  });
});

describe('the wait for a reply', () => {
  let h: Harness;
  let image: Buffer;
  before(async () => {
    image = await png(32);
    h = await startHarness({ worker: false });
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
  });

  test('a reply lost while the subscription was down is read back from the job after the reconnect', async () => {
    const queue = h.services.queues.get('classify');
    const pending = post(h.baseUrl, '/clip/classify', { image: { base64: image.toString('base64') }, labels });
    const waiting = await queuedJob(queue);
    assert.ok(waiting.id, 'the job is queued');
    // Its reply goes where nobody listens, as if published while the subscription was down.
    const data = waiting.data as ClassifyJobData;
    const channel = data.reply_to;
    assert.ok(channel, 'the job names the channel its request listens on');
    await waiting.updateData({ ...data, reply_to: `${channel}:lost` } as never);
    const worker = await h.startWorker({ WORKER_QUEUES: 'classify' });
    try {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
        if ((await queue.getJobState(waiting.id)) === 'completed') break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(await queue.getJobState(waiting.id), 'completed');
      // The API's subscriber drops and comes back: what it missed is read back.
      const redis = h.services.queues.redis;
      const name = `dalle-serve:clip-replies:${channel.split(':').pop()}`;
      const clients = String(await redis.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n');
      const id = clients.find((line) => line.includes(` name=${name} `))?.match(/^id=(\d+)/)?.[1];
      assert.ok(id, 'the API subscribes under its channel name');
      await redis.call('CLIENT', 'KILL', 'ID', id);
      const response = await pending;
      assert.equal(response.status, 200);
      const body = (await json(response)) as { results: { labels: { label: string }[] }[] };
      assert.deepEqual(body.results[0].labels.map((score) => score.label).sort(), [...labels].sort());
    } finally {
      await worker.stop();
    }
  });

  test('a job Redis lost (a failover) is noticed at the reconnect: 503 at once, not a 504 at the deadline', async () => {
    const queue = h.services.queues.get('classify');
    const started = Date.now();
    const pending = post(h.baseUrl, '/clip/classify', { image: { base64: image.toString('base64') }, labels });
    const waiting = await queuedJob(queue);
    const channel = (waiting.data as ClassifyJobData).reply_to;
    assert.ok(channel);
    // Gone, as a job added on a master that a failover replaced before a replica had it.
    await waiting.remove();
    const redis = h.services.queues.redis;
    const name = `dalle-serve:clip-replies:${channel.split(':').pop()}`;
    const clients = String(await redis.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n');
    const id = clients.find((line) => line.includes(` name=${name} `))?.match(/^id=(\d+)/)?.[1];
    assert.ok(id);
    await redis.call('CLIENT', 'KILL', 'ID', id);
    const response = await pending;
    assert.equal(response.status, 503);
    assert.equal((await json(response)).code, 'service_unavailable');
    assert.ok(Date.now() - started < h.config.classifyTimeoutMs, 'before the deadline');
  });
});
