// The contract's token layouts with the demo pack's tokenizer.json: generator ids padded or
// cut to the text length (and the cut reported), CLIP ids framed by BOS/EOS with EOS kept.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { clipText, generatorText, TextTokenizer } from '../../src/models/tokenizers.js';

const tokenizerPath = fileURLToPath(new URL('../../packs/demo-shapes/tokenizer.json', import.meta.url));
const layout = { contextLength: 8, bosId: 1, eosId: 2, padId: 0 };
let tokenizer: TextTokenizer;
before(async () => (tokenizer = await TextTokenizer.load(tokenizerPath)));

test('encoding adds no special tokens', () => {
  const ids = tokenizer.encode('a red circle');
  assert.ok(ids.length >= 3);
  assert.ok(!ids.includes(1) && !ids.includes(2));
});

test('generator text is right-padded, or cut to the text length and reported', () => {
  const ids = tokenizer.encode('a red circle');
  const short = generatorText(tokenizer, 'a red circle', 10, 0);
  assert.deepEqual(Array.from(short.ids, Number), [...ids, ...new Array(10 - ids.length).fill(0)]);
  assert.equal(short.truncated, false);
  assert.equal(short.tokenCount, ids.length);
  const long = 'a red circle above a blue square to the left of a green cross';
  const all = tokenizer.encode(long);
  const cut = generatorText(tokenizer, long, 5, 0);
  assert.deepEqual(Array.from(cut.ids, Number), all.slice(0, 5));
  assert.equal(cut.truncated, true);
  assert.equal(cut.tokenCount, all.length);
});

test('CLIP text is bos, tokens, eos, pads; a long text keeps its eos', () => {
  const ids = tokenizer.encode('a red circle');
  assert.deepEqual(Array.from(clipText(tokenizer, 'a red circle', layout), Number), [
    1,
    ...ids,
    2,
    ...new Array(8 - ids.length - 2).fill(0),
  ]);
  const long = 'a red circle above a blue square to the left of a green cross';
  assert.deepEqual(Array.from(clipText(tokenizer, long, layout), Number), [
    1,
    ...tokenizer.encode(long).slice(0, 6),
    2,
  ]);
});

test('special-token strings typed in text stay text: never a special id', async () => {
  const { readFile } = await import('node:fs/promises');
  const json = JSON.parse(await readFile(tokenizerPath, 'utf8')) as { added_tokens: { id: number; content: string }[] };
  const special = new Set(json.added_tokens.map((token) => token.id));
  assert.deepEqual([...special].sort(), [0, 1, 2]);
  for (const text of [
    '<|pad|>',
    '<|bos|>a red circle<|eos|>',
    'a <|PAD|> square',
    '<|eos|><|eos|><|bos|>',
    '<|<|pad|>|>',
    'a\u00a0<|bos|>',
    '<| pad |>',
  ]) {
    const ids = tokenizer.encode(text);
    assert.ok(ids.length > 0, text);
    assert.ok(!ids.some((id) => special.has(id)), `${text}: ${ids.join()}`);
    const clip = Array.from(clipText(tokenizer, text, { contextLength: 64, bosId: 1, eosId: 2, padId: 0 }), Number);
    assert.equal(clip.filter((id) => id === 1).length, 1, text);
    assert.equal(clip.filter((id) => id === 2).length, 1, text);
    assert.ok(
      !Array.from(generatorText(tokenizer, text, 64, 0).ids.slice(0, ids.length), Number).some((id) => special.has(id)),
      text,
    );
  }
  // Ordinary text encodes as before.
  assert.deepEqual(tokenizer.encode('a red circle'), tokenizer.encode('A Red Circle'));
});
