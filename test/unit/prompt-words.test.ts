// Prompt words as a pack's vocabulary lists them, and which of them a pack never saw.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { promptWords, unknownWords } from '../../src/lib/prompt-words.js';

test('words are lower-cased runs of letters and digits, each once, in order', () => {
  assert.deepEqual(promptWords('A red Circle, on the LEFT!  a red circle'), [
    'a',
    'red',
    'circle',
    'on',
    'the',
    'left',
  ]);
  assert.deepEqual(promptWords("the cat's hat, a well-known 3d shape"), [
    'the',
    "cat's",
    'hat',
    'a',
    'well-known',
    '3d',
    'shape',
  ]);
  assert.deepEqual(promptWords('ＲＥＤ   circle\tà côté'), ['red', 'circle', 'à', 'côté']);
  assert.deepEqual(promptWords(' -- ... !! '), []);
});

test('unknown words are the prompt words outside the vocabulary; no vocabulary says nothing', () => {
  const vocabulary = new Set(['a', 'red', 'circle', 'on', 'the', 'left']);
  assert.deepEqual(unknownWords('A red circle on a Skateboard, left of the cat', vocabulary), [
    'skateboard',
    'of',
    'cat',
  ]);
  assert.deepEqual(unknownWords('a RED circle', vocabulary), []);
  assert.equal(unknownWords('a red circle', undefined), null);
});
