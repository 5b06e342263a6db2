// A pack says what it doesn't know: GET /models lists the words it was trained on and prompts
// that show it off, and a generation reports its prompt's token count, whether the prompt was
// cut, and the words the pack never saw, in GET /generations/:id and in the webhook body.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type Generation, GenerationAccepted, type ModelInfo, ModelList } from '../../src/contracts/schemas.js';
import { serviceKeys } from '../../src/service/redis-keys.js';
import { publishModels } from '../../src/service/model-registry.js';
import {
  type Harness,
  type WebhookReceiver,
  closeSharedEngine,
  json,
  post,
  startHarness,
  startWebhookReceiver,
  terminal,
  waitFor,
} from './api-harness.js';

const manifest = JSON.parse(readFileSync(new URL('../../packs/demo-shapes/manifest.json', import.meta.url), 'utf8'));
// Token ids by the Python tokenizer the pack was trained with (training/world/fixtures.py).
const parity: { text: string; ids: number[] }[] = JSON.parse(
  readFileSync(new URL('../fixtures/tokenizer-parity.json', import.meta.url), 'utf8'),
).cases;

describe('what a pack knows', () => {
  let h: Harness;
  let receiver: WebhookReceiver;

  before(async () => {
    h = await startHarness();
    receiver = await startWebhookReceiver();
  });
  after(async () => {
    await receiver.close();
    await h.close();
    await closeSharedEngine();
  });

  async function generate(prompt: string): Promise<{ view: Generation; webhook: any }> {
    const body = { prompt, candidates: 2, n: 1, webhook: receiver.url, webhook_events_filter: ['completed'] };
    const { id } = await json(await post(h.baseUrl, '/generations', body), GenerationAccepted);
    const view = await waitFor(h.baseUrl, id, terminal);
    assert.equal(view.status, 'succeeded', JSON.stringify(view.error));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const delivery = receiver.deliveries.map((d) => JSON.parse(d.body)).find((event) => event.id === id);
      if (delivery) return { view, webhook: delivery };
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no completed webhook for ${id}`);
  }

  test('GET /models lists the vocabulary and the examples of the pack', async () => {
    const { data } = await json(await fetch(`${h.baseUrl}/models`), ModelList);
    const demo = data.find((model) => model.name === 'demo-shapes');
    assert.ok(demo);
    assert.deepEqual(demo.vocabulary, manifest.vocabulary);
    assert.deepEqual(demo.examples, manifest.examples);
    assert.ok(demo.vocabulary?.includes('circle') && !demo.vocabulary.includes('skateboard'));
    assert.equal(demo.license, null, 'the demo manifest states no license');
    const micro = data.find((model) => model.name === 'micro-dalle1');
    assert.ok(micro);
    assert.equal(micro.vocabulary, null, 'a pack that lists no vocabulary says nothing');
    assert.deepEqual(micro.examples, []);
  });

  test("an older worker's entry without vocabulary, examples or license reads as a pack stating none", async () => {
    const older = {
      name: 'older-pack',
      version: '1',
      description: null,
      default_for: [],
      generation: null,
      embed_dim: 8,
    };
    const keys = serviceKeys(h.config.queuePrefix);
    await publishModels(h.services.queues.redis, keys, [older as unknown as ModelInfo], 60);
    const { data } = await json(await fetch(`${h.baseUrl}/models`), ModelList);
    assert.deepEqual(
      data.find((model) => model.name === 'older-pack'),
      { ...older, vocabulary: null, examples: [], license: null },
    );
  });

  test('words the pack never saw are reported, each once, lower-cased, in the view and the webhook', async () => {
    const { view, webhook } = await generate('A red circle riding a Skateboard, a SKATEBOARD!');
    assert.deepEqual(view.unknown_words, ['riding', 'skateboard']);
    assert.equal(view.truncated, false);
    assert.ok((view.prompt_tokens ?? 0) > 0);
    for (const field of ['unknown_words', 'truncated', 'prompt_tokens'] as const) {
      assert.deepEqual(webhook[field], view[field]);
    }
  });

  test("a prompt in the pack's own words has none unknown; prompt_tokens is the tokenizer's count", async () => {
    const known = parity.find((c) => c.text.split(' ').length >= 4 && c.ids.length <= manifest.geometry.text_length);
    assert.ok(known);
    const { view, webhook } = await generate(known.text);
    assert.deepEqual(view.unknown_words, []);
    assert.equal(view.prompt_tokens, known.ids.length);
    assert.equal(view.truncated, false);
    assert.deepEqual(webhook.unknown_words, []);
  });

  test('a prompt longer than the text length is reported cut, with its full token count', async () => {
    // The fixture's longest case is one phrase 30 times, too long for a prompt; the tokenizer
    // splits at words first, so each repeat has the same tokens and 12 repeats have 12/30 of them.
    const repeated = parity.reduce((a, b) => (b.text.length > a.text.length ? b : a));
    const phrase = repeated.text.slice(0, (repeated.text.length + 1) / 30 - 1);
    assert.equal(repeated.text, Array(30).fill(phrase).join(' '));
    assert.equal(repeated.ids.length % 30, 0);
    const long = {
      text: Array(12).fill(phrase).join(' '),
      ids: repeated.ids.slice(0, (repeated.ids.length / 30) * 12),
    };
    assert.ok(long.ids.length > manifest.geometry.text_length);
    const { view, webhook } = await generate(long.text);
    assert.equal(view.truncated, true);
    assert.equal(view.prompt_tokens, long.ids.length);
    assert.equal(webhook.truncated, true);
    assert.equal(webhook.prompt_tokens, long.ids.length);
  });
});
