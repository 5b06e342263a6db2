// training/world/bpe.py wrote these ids; the service's tokenizer (the @huggingface/tokenizers library)
// must give the same ones, or prompts would reach the models as other tokens than in training.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TextTokenizer } from '../../src/models/tokenizers.js';

interface ParityFixture {
  tokenizer: string;
  cases: { text: string; ids: number[] }[];
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = JSON.parse(readFileSync(`${root}test/fixtures/tokenizer-parity.json`, 'utf8')) as ParityFixture;
const tokenizer = await TextTokenizer.load(`${root}${fixture.tokenizer}`);

test('the fixture covers captions and hostile text', () => {
  assert.ok(fixture.cases.length >= 40);
  assert.ok(
    fixture.cases.some(({ text }) => /[^\x00-\x7f]/.test(text)),
    'some non-ascii text',
  );
  assert.ok(
    fixture.cases.some(({ text }) => text.length > 1000),
    'a very long text',
  );
});

// The one deliberate difference: training's tokenizer turns `<|pad|>`, `<|bos|>` and `<|eos|>`
// written in a caption into special ids; the service never lets user text do that.
const SPECIAL = /<\|(pad|bos|eos)\|>/i;
const SPECIAL_IDS = new Set([0, 1, 2]);

test('the JS tokenizer gives the Python ids for every case without special-token strings', () => {
  const plain = fixture.cases.filter(({ text }) => !SPECIAL.test(text));
  assert.ok(plain.length >= fixture.cases.length - 5);
  for (const { text, ids } of plain) {
    assert.deepEqual(tokenizer.encode(text), ids, JSON.stringify(text));
  }
});

test('special tokens written in the text stay text: no id 0, 1 or 2', () => {
  const ids = tokenizer.encode('<|pad|><|bos|><|eos|>');
  assert.ok(ids.length > 3);
  assert.ok(!ids.some((id) => SPECIAL_IDS.has(id)), ids.join());
  for (const { text } of fixture.cases.filter(({ text }) => SPECIAL.test(text))) {
    assert.ok(!tokenizer.encode(text).some((id) => SPECIAL_IDS.has(id)), JSON.stringify(text));
  }
});
