// The pack a call that names none runs on, when DEFAULT_MODEL does not say.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultPackName } from '../../src/models/index.js';

test('the first pack by name that generates, passing over CLIP-only packs before it', () => {
  const packs = [
    { name: 'shapes', generates: true },
    { name: 'openai-clip-vit-b-32', generates: false },
    { name: 'micro', generates: true },
  ];
  assert.equal(defaultPackName(packs), 'micro');
});

test('with no pack that generates, the first by name; with none at all, none', () => {
  assert.equal(
    defaultPackName([
      { name: 'clip-b', generates: false },
      { name: 'clip-a', generates: false },
    ]),
    'clip-a',
  );
  assert.equal(defaultPackName([]), undefined);
});
