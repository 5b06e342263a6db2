// minDALL-E's text tokenizer, held to the library upstream uses: Hugging Face `tokenizers` (its
// Rust core, through the Node binding) built as minDALL-E's build_tokenizer builds it, on the
// seeded random release's vocabulary and merges (training/tests/make_upstream_checkpoints.py).
// The committed fixture's ids (training/upstream/mindalle_tokenizer.py's reference_encode) and the
// service's path (the exported tokenizer.json through src/models/tokenizers.ts, padded by the
// contract) must both give the library's ids.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import upstream from 'tokenizers';
import { TextTokenizer, generatorText } from '../../src/models/tokenizers.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const TEXT_LENGTH = 64;

interface Fixture {
  prompts: string[];
  token_ids: number[][];
}

/** minDALL-E's dalle/models/tokenizer.py: CharBPETokenizer(unk_token='[UNK]', lowercase=True), [PAD], pad and cut to 64. */
async function upstreamTokenizer(folder: string): Promise<upstream.Tokenizer> {
  const model = await upstream.BPE.fromFile(join(folder, 'bpe-16k-vocab.json'), join(folder, 'bpe-16k-merges.txt'), {
    unkToken: '[UNK]',
    endOfWordSuffix: '</w>',
  });
  const tokenizer = new upstream.Tokenizer(model);
  // CharBPETokenizer's own steps, in its order.
  if (tokenizer.tokenToId('[UNK]') !== null) tokenizer.addSpecialTokens(['[UNK]']);
  tokenizer.setNormalizer(upstream.sequenceNormalizer([upstream.bertNormalizer({ lowercase: false }), upstream.lowercase()]));
  tokenizer.setPreTokenizer(upstream.bertPreTokenizer());
  tokenizer.addSpecialTokens(['[PAD]']);
  tokenizer.setPadding({ maxLength: TEXT_LENGTH, padId: tokenizer.tokenToId('[PAD]')!, padToken: '[PAD]' });
  tokenizer.setTruncation(TEXT_LENGTH);
  return tokenizer;
}

/** Seeded prompts from every kind of character the normalizer and pre-tokenizer treat apart. */
function awkwardPrompts(count: number, seed: number): string[] {
  const pools = [
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
    '     ',
    '.,;:!?\'"()[]{}-_/\\@#$%^&*+=<>|~`',
    'éèêëñüöäçåøßÉÑÜ\u0301\u0308',
    '猫狗雪山水火日本語한국어',
    '🎨🐈‍⬛👍🏽✨',
    '\t\n\r\u0000\u0007\u00a0\u200b\u2028\ufeff',
  ];
  const words = ['painting', 'photo', 'apple', 'the', 'sea', 'night', 'sunglasses', 'a', 'of', 'on'];
  let state = seed;
  const next = (n: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  const prompts: string[] = [];
  while (prompts.length < count) {
    const parts: string[] = [];
    // Mostly short; every tenth long enough to be cut at 64 tokens.
    const length = next(10) === 0 ? 80 + next(80) : 1 + next(24);
    for (let i = 0; i < length; i++) {
      if (next(3) === 0) parts.push(` ${words[next(words.length)]} `);
      else {
        const pool = [...pools[next(pools.length)]];
        parts.push(pool[next(pool.length)]);
      }
    }
    const prompt = parts.join('');
    // Typed special tokens stay text in the service by choice (README, "Bring your own checkpoint").
    if (!prompt.includes('[UNK]') && !prompt.includes('[PAD]')) prompts.push(prompt);
  }
  return prompts;
}

describe("minDALL-E's tokenizer against Hugging Face tokenizers", () => {
  let dir: string;
  let library: upstream.Tokenizer;
  let service: TextTokenizer;
  let padId: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mindalle-tokenizer-'));
    const python = (...args: string[]) => run('/usr/bin/python3', args, { cwd: root });
    await python('-m', 'training.tests.make_upstream_checkpoints', dir);
    const folder = join(dir, 'mindalle', 'tokenizer');
    await python('-m', 'training.upstream.mindalle_tokenizer', folder, join(dir, 'tokenizer.json'));
    library = await upstreamTokenizer(folder);
    service = await TextTokenizer.load(join(dir, 'tokenizer.json'));
    padId = library.tokenToId('[PAD]')!;
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("the committed fixture's ids are the library's", async () => {
    const fixture = JSON.parse(
      await readFile(join(root, 'training/tests/fixtures/upstream-small.json'), 'utf8'),
    ) as Fixture;
    assert.ok(fixture.prompts.length >= 10);
    for (const [i, prompt] of fixture.prompts.entries())
      assert.deepEqual((await library.encode(prompt)).getIds(), fixture.token_ids[i], JSON.stringify(prompt));
  });

  test("the service's ids are the library's on 400 awkward prompts, long ones cut at 64", async () => {
    const prompts = awkwardPrompts(400, 20261130);
    let cut = 0;
    for (const prompt of prompts) {
      const expected = (await library.encode(prompt)).getIds();
      const text = generatorText(service, prompt, TEXT_LENGTH, padId);
      if (text.truncated) cut++;
      assert.deepEqual(Array.from(text.ids, Number), expected, JSON.stringify(prompt));
    }
    // The set must exercise truncation, or the comparison above says nothing about it.
    assert.ok(cut >= 10, `only ${cut} prompts were cut`);
  });
});
