"""A byte-level BPE tokenizer (GPT-2 style): trainer, encoder, and Hugging Face tokenizer.json I/O.

The encoder mirrors what @huggingface/tokenizers (the JS library the service uses) does with
the saved file: split out special tokens on the raw text, normalise (NFC, lowercase), split
with GPT-2's pattern, map bytes to printable characters, apply merges lowest rank first
(leftmost on ties). Python's `re` has no \\p{L}, so the pattern is matched by hand below.

Regenerate the committed shapes tokenizer:
    python3 -m training.world.bpe --out training/tokenizer/shapes-bpe.json --vocab-size 512 --seed 0
"""
from __future__ import annotations

import argparse
import json
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

from training.world.corpus import tokenizer_corpus

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>"]
MIN_PAIR_COUNT = 2  # a pair seen once is not worth a vocabulary entry
_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")
_JS_SPACE_EXTRA = set("\t\n\v\f\r\u2028\u2029\ufeff")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


BYTE_TO_CHAR = bytes_to_unicode()
BYTE_ALPHABET = [BYTE_TO_CHAR[b] for b in range(256)]


def _is_space(ch: str) -> bool:  # JavaScript's \s
    return ch in _JS_SPACE_EXTRA or unicodedata.category(ch) == "Zs"


def _is_letter(ch: str) -> bool:  # \p{L}
    return unicodedata.category(ch).startswith("L")


def _is_number(ch: str) -> bool:  # \p{N}
    return unicodedata.category(ch).startswith("N")


def _is_other(ch: str) -> bool:  # [^\s\p{L}\p{N}]
    return not (_is_space(ch) or _is_letter(ch) or _is_number(ch))


def _run_end(text: str, i: int, belongs) -> int:
    while i < len(text) and belongs(text[i]):
        i += 1
    return i


def _match_end(text: str, i: int) -> int:
    """End of the match at i of /'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+/u,
    trying the alternatives in order as a backtracking regex engine does."""
    if text[i] == "'":
        for suffix in _CONTRACTIONS:
            if text.startswith(suffix, i + 1):
                return i + 1 + len(suffix)
    for belongs in (_is_letter, _is_number, _is_other):
        if text[i] == " " and i + 1 < len(text) and belongs(text[i + 1]):
            return _run_end(text, i + 1, belongs)
        if belongs(text[i]):
            return _run_end(text, i, belongs)
    end = _run_end(text, i, _is_space)
    # \s+(?!\S) gives back one space when a non-space follows; \s+ takes the run otherwise.
    return end - 1 if end < len(text) and end - 1 > i else end


def pretokenize(text: str) -> list[str]:
    pieces, i = [], 0
    while i < len(text):
        end = _match_end(text, i)
        pieces.append(text[i:end])
        i = end
    return pieces


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def to_byte_chars(piece: str) -> str:
    return "".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8"))


def _split_specials(text: str, specials: list[str]) -> list[str]:
    """Split out special tokens, longest match first at each position (as the JS library's
    dictionary splitter does)."""
    sections, start, i = [], 0, 0
    while i < len(text):
        match = max((s for s in specials if text.startswith(s, i)), key=len, default=None)
        if match is None:
            i += 1
            continue
        if i > start:
            sections.append(text[start:i])
        sections.append(match)
        i += len(match)
        start = i
    if start < len(text):
        sections.append(text[start:])
    return sections


class Tokenizer:
    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], special_tokens: list[str]):
        self.vocab = vocab
        self.merges = merges
        self.special_tokens = special_tokens
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._bpe = lru_cache(maxsize=65536)(self._bpe_uncached)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def _bpe_uncached(self, word: str) -> tuple[str, ...]:
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self._ranks.get(pair, len(self._ranks)), i) for i, pair in enumerate(zip(parts, parts[1:]))]
            rank, i = min(ranked)
            if rank == len(self._ranks):
                break
            parts[i: i + 2] = [parts[i] + parts[i + 1]]
        return tuple(parts)

    def encode(self, text: str) -> list[int]:
        """Token ids of text, no special tokens added (special tokens written in the text are
        still recognised, as the JS library does)."""
        ids = []
        for section in _split_specials(text, self.special_tokens):
            if section in self.special_tokens:
                ids.append(self.vocab[section])
                continue
            normalized = normalize(section)
            if normalized in self.special_tokens:
                ids.append(self.vocab[normalized])
                continue
            for piece in pretokenize(normalized):
                ids.extend(self.vocab[token] for token in self._bpe(to_byte_chars(piece)))
        return ids

    def to_json(self) -> dict:
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": self.vocab[t], "content": t, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True}
                for t in self.special_tokens
            ],
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": self.vocab,
                "merges": [list(pair) for pair in self.merges],
            },
        }

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        model = data["model"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model["merges"]]
        specials = [t["content"] for t in data["added_tokens"] if t["special"]]
        return cls(dict(model["vocab"]), merges, specials)


def _merge_word(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    merged, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            merged.append(word[i] + word[i + 1])
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return tuple(merged)


def train_bpe(texts: list[str], vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    """Learn merges from texts until the vocabulary (specials, 256 bytes, merges) reaches
    vocab_size or no pair occurs MIN_PAIR_COUNT times. The most frequent pair wins; ties go
    to the smallest pair in string order, so training is deterministic."""
    vocab = {t: i for i, t in enumerate(special_tokens)}
    for ch in BYTE_ALPHABET:
        vocab.setdefault(ch, len(vocab))
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        for piece in pretokenize(normalize(text)):
            counts[tuple(to_byte_chars(piece))] += 1
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, n in counts.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < MIN_PAIR_COUNT:
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        merged: Counter[tuple[str, ...]] = Counter()
        for word, n in counts.items():
            merged[_merge_word(word, best)] += n
        counts = merged
    return Tokenizer(vocab, merges, list(special_tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the shapes-world BPE tokenizer.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tokenizer = train_bpe(tokenizer_corpus(args.seed), args.vocab_size, SPECIAL_TOKENS)
    tokenizer.save(args.out)
    print(f"wrote {args.out}: {tokenizer.vocab_size} tokens, {len(tokenizer.merges)} merges")


if __name__ == "__main__":
    main()
