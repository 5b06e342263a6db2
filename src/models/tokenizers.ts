// Text → token ids with the pack's Hugging Face tokenizer.json (the @huggingface/tokenizers
// library), laid out as the contract says: generator ids padded to the text length, CLIP
// ids framed by BOS/EOS. Special tokens are added here, never by the library.
import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';

export class TextTokenizer {
  private constructor(private readonly tokenizer: Tokenizer) {}

  static async load(path: string): Promise<TextTokenizer> {
    const json = JSON.parse(await readFile(path, 'utf8')) as { added_tokens?: unknown[] };
    // Without its added tokens the library cannot split `<|pad|>`, `<|bos|>` or `<|eos|>` out
    // of user text into special ids: typed, they are plain text (ByteLevel cuts them into
    // `<|`, `pad`, `|>`). The special ids come only from the layouts below.
    return new TextTokenizer(new Tokenizer({ ...json, added_tokens: [] }, {}));
  }

  /** Token ids of `text`, with no special tokens, whatever the text says. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: true });
  }
}

export interface GeneratorText {
  /** `length` ids, right-padded. */
  ids: BigInt64Array;
  /** Token count before truncation. */
  tokenCount: number;
  truncated: boolean;
  /** The text the kept tokens spell: the prompt itself unless it was cut. */
  usedText: string;
}

export function generatorText(tokenizer: TextTokenizer, text: string, length: number, padId: number): GeneratorText {
  const tokens = tokenizer.encode(text);
  const ids = new BigInt64Array(length).fill(BigInt(padId));
  const kept = Math.min(tokens.length, length);
  for (let i = 0; i < kept; i++) ids[i] = BigInt(tokens[i]);
  const truncated = tokens.length > length;
  const usedText = truncated ? tokenizer.decode(tokens.slice(0, length)) : text;
  return { ids, tokenCount: tokens.length, truncated, usedText };
}

export interface ClipTextLayout {
  contextLength: number;
  bosId: number;
  eosId: number;
  padId: number;
}

/** `[bos, tokens…, eos, pad…]`, tokens cut so that EOS always fits. */
export function clipText(tokenizer: TextTokenizer, text: string, layout: ClipTextLayout): BigInt64Array {
  const tokens = tokenizer.encode(text).slice(0, layout.contextLength - 2);
  const ids = new BigInt64Array(layout.contextLength).fill(BigInt(layout.padId));
  ids[0] = BigInt(layout.bosId);
  tokens.forEach((t, i) => (ids[i + 1] = BigInt(t)));
  ids[tokens.length + 1] = BigInt(layout.eosId);
  return ids;
}
