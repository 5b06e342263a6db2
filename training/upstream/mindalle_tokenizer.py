"""minDALL-E's text tokenizer as a Hugging Face tokenizer.json, and a reference encoder.

Upstream builds `tokenizers.CharBPETokenizer.from_file(vocab, merges, unk_token='[UNK]',
lowercase=True, dropout=None)`, adds `[PAD]` as a special token, pads to 64 with it and truncates
to 64; no BOS/EOS. CharBPETokenizer means: BertNormalizer (clean text, CJK characters spaced, no
accent stripping) then Lowercase; the BERT pre-tokenizer (split on whitespace, every punctuation
character a word of its own); BPE with `</w>` ending each word and `[UNK]` for each character the
vocabulary lacks. `tokenizer_json` writes exactly that pipeline; `reference_encode` re-implements
it in Python (Python's `tokenizers` is not a Debian package) for the fixtures, and
test/training/mindalle-tokenizer.test.ts holds both to the library itself (its Node binding).

    python3 -m training.upstream.mindalle_tokenizer TOKENIZER_DIR OUT.json   # bpe-16k-{vocab.json,merges.txt} in

One difference by choice, as for the other packs: `[PAD]` or `[UNK]` typed in a prompt stays text
in the service (upstream's library turns them into their special ids).
"""
import argparse
import json
import os
import unicodedata

UNK, PAD, SUFFIX = "[UNK]", "[PAD]", "</w>"


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_merges(path):
    """`#version` header (optional), then one `left right` pair per line."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    return [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]


def special_ids(vocab):
    """(unk id, pad id): `[PAD]` is added after the vocabulary when it is not in it, as
    `add_special_tokens` does."""
    if UNK not in vocab:
        raise SystemExit(f"the tokenizer vocabulary has no {UNK}")
    return vocab[UNK], vocab.get(PAD, len(vocab))


def tokenizer_json(vocab, merges):
    unk_id, pad_id = special_ids(vocab)
    full = dict(vocab)
    full.setdefault(PAD, pad_id)
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for t, i in sorted(((UNK, unk_id), (PAD, pad_id)), key=lambda p: p[1])]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None,
             "lowercase": False},
            {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": None,
        "decoder": {"type": "BPEDecoder", "suffix": SUFFIX},
        "model": {"type": "BPE", "dropout": None, "unk_token": UNK, "continuing_subword_prefix": None,
                  "end_of_word_suffix": SUFFIX, "fuse_unk": False, "byte_fallback": False,
                  "vocab": full, "merges": [f"{a} {b}" for a, b in merges]},
    }


# --- Reference: the `tokenizers` library's algorithm, step by step ---

def _is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c) in ("Cc", "Cf", "Cn", "Co")


def _is_whitespace(c):
    return c.isspace()  # after control characters are gone, the same set as Rust's char::is_whitespace


def _is_chinese(c):
    cp = ord(c)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def normalize(text):
    out = []
    for c in text:
        if c in ("\0", "\ufffd") or _is_control(c):
            continue
        if _is_whitespace(c):
            out.append(" ")
        elif _is_chinese(c):
            out.append(f" {c} ")
        else:
            out.append(c)
    return "".join(out).lower()


def _is_punctuation(c):
    return (c.isascii() and not c.isalnum() and c.isprintable() and c != " ") or unicodedata.category(c).startswith("P")


def pre_tokenize(text):
    words, current = [], ""
    for c in text:
        if c.isspace():
            if current:
                words.append(current)
            current = ""
        elif _is_punctuation(c):
            if current:
                words.append(current)
            words.append(c)
            current = ""
        else:
            current += c
    if current:
        words.append(current)
    return words


def bpe_word(word, vocab, ranks, unk_id):
    symbols = [c + SUFFIX if i == len(word) - 1 else c for i, c in enumerate(word)]
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            break
        _, i = min(pairs)
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
    return [vocab.get(s, unk_id) for s in symbols]


def reference_encode(text, vocab, merges, length=64):
    """upstream's `tokenizer.encode(text).ids`: [UNK]/[PAD] typed verbatim become their ids,
    the rest normalised, split and merged; truncated and padded with [PAD] to `length`."""
    unk_id, pad_id = special_ids(vocab)
    ranks = {pair: r for r, pair in enumerate(merges)}
    ids, rest = [], text
    while rest:
        hits = [(rest.find(t), t) for t in (UNK, PAD) if rest.find(t) >= 0]
        cut, token = min(hits) if hits else (len(rest), None)
        for word in pre_tokenize(normalize(rest[:cut])):
            ids += bpe_word(word, vocab, ranks, unk_id)
        if token is None:
            break
        ids.append(unk_id if token == UNK else pad_id)
        rest = rest[cut + len(token):]
    ids = ids[:length]
    return ids + [pad_id] * (length - len(ids))


def main():
    parser = argparse.ArgumentParser(description="minDALL-E's tokenizer files as a tokenizer.json.")
    parser.add_argument("folder", help="the release's tokenizer/ (bpe-16k-vocab.json, bpe-16k-merges.txt)")
    parser.add_argument("out")
    args = parser.parse_args()
    doc = tokenizer_json(read_vocab(os.path.join(args.folder, "bpe-16k-vocab.json")),
                         read_merges(os.path.join(args.folder, "bpe-16k-merges.txt")))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
