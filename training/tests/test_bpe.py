import json
import tempfile
import unittest
from pathlib import Path

from training.world import bpe
from training.world.corpus import tokenizer_corpus

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "training/tokenizer/shapes-bpe.json"
PARITY_FIXTURE = ROOT / "test/fixtures/tokenizer-parity.json"
G = bpe.BYTE_TO_CHAR[ord(" ")]  # "Ġ", how a space looks after the byte mapping


class PretokenizeTest(unittest.TestCase):
    def test_splits_as_gpt2_pattern(self):
        cases = {
            "a red circle": ["a", " red", " circle"],
            "a  b": ["a", " ", " b"],
            "a\tb": ["a", "\t", "b"],
            "x  ": ["x", "  "],
            "it's they're": ["it", "'s", " they", "'re"],
            "1,000 2x": ["1", ",", "000", " 2", "x"],
            "héllo wörld": ["héllo", " wörld"],
            "日本 語": ["日本", " 語"],
            " 🎨! ok": [" 🎨!", " ok"],
            "a\u00a0b": ["a", "\u00a0", "b"],
        }
        for text, pieces in cases.items():
            self.assertEqual(bpe.pretokenize(text), pieces, repr(text))

    def test_byte_mapping_is_a_bijection_onto_printable_characters(self):
        chars = set(bpe.BYTE_TO_CHAR.values())
        self.assertEqual(len(chars), 256)
        self.assertTrue(all(c.isprintable() and not c.isspace() for c in chars))


class TrainTest(unittest.TestCase):
    def test_learns_the_most_frequent_pairs_in_order(self):
        tok = bpe.train_bpe(["ab ab ab abc", "abc"], 1000, bpe.SPECIAL_TOKENS)
        # (a, b) occurs 5 times, then (Ġ, ab) 3 times; what is left occurs once and is not merged.
        self.assertEqual(tok.merges, [("a", "b"), (G, "ab")])
        self.assertEqual(tok.vocab_size, 3 + 256 + 2)
        self.assertEqual(tok.encode("ab abc"), [tok.token_to_id("ab"), tok.token_to_id(G + "ab"), tok.token_to_id("c")])

    def test_ties_go_to_the_smaller_pair(self):
        self.assertEqual(bpe.train_bpe(["cd", "ab"] * 2, 1000, []).merges, [("a", "b"), ("c", "d")])
        # (a, b), (c, d) and (Ġ, a) all occur twice; "a" < "c" < "Ġ" in string order.
        self.assertEqual(bpe.train_bpe(["cd ab"] * 2, 1000, []).merges[:2], [("a", "b"), ("c", "d")])

    def test_stops_at_the_vocabulary_size(self):
        tok = bpe.train_bpe(["ab ab ab abc", "abc"], 3 + 256 + 1, bpe.SPECIAL_TOKENS)
        self.assertEqual(tok.merges, [("a", "b")])

    def test_lowest_rank_then_leftmost_merge_first(self):
        tok = bpe.Tokenizer({**{c: i for i, c in enumerate(bpe.BYTE_ALPHABET)}, "aa": 256, "bc": 257, "ab": 258},
                            [("a", "a"), ("b", "c"), ("a", "b")], [])
        self.assertEqual(tok.encode("aaa"), [256, tok.token_to_id("a")])  # leftmost of equal ranks
        self.assertEqual(tok.encode("abc"), [tok.token_to_id("a"), 257])  # (b, c) outranks (a, b)

    def test_specials_come_first_and_survive_save_and_load(self):
        tok = bpe.train_bpe(["a red circle"] * 3, 300, bpe.SPECIAL_TOKENS)
        self.assertEqual([tok.token_to_id(t) for t in bpe.SPECIAL_TOKENS], [0, 1, 2])
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "tokenizer.json"
            tok.save(path)
            loaded = bpe.Tokenizer.load(path)
            saved = json.loads(path.read_text(encoding="utf-8"))
        self.assertEqual((loaded.vocab, loaded.merges), (tok.vocab, tok.merges))
        self.assertEqual(loaded.encode("a red <|eos|>circle"), tok.encode("a red <|eos|>circle"))
        self.assertEqual(saved["model"]["type"], "BPE")
        self.assertEqual([t["id"] for t in saved["added_tokens"]], [0, 1, 2])


class ShapesTokenizerTest(unittest.TestCase):
    tokenizer = bpe.Tokenizer.load(COMMITTED)

    def test_matches_the_parity_fixture(self):
        fixture = json.loads(PARITY_FIXTURE.read_text(encoding="utf-8"))
        self.assertEqual(ROOT / fixture["tokenizer"], COMMITTED)
        self.assertGreaterEqual(len(fixture["cases"]), 40)
        for case in fixture["cases"]:
            self.assertEqual(self.tokenizer.encode(case["text"]), case["ids"], repr(case["text"]))

    def test_captions_take_one_token_per_word(self):
        text = "there is a small red circle to the left of a large blue square"
        self.assertEqual(len(self.tokenizer.encode(text)), len(text.split()))

    def test_the_recipe_reproduces_the_committed_file(self):
        retrained = bpe.train_bpe(tokenizer_corpus(seed=0), 512, bpe.SPECIAL_TOKENS)
        self.assertEqual(retrained.to_json(), json.loads(COMMITTED.read_text(encoding="utf-8")))
        self.assertEqual(retrained.vocab_size, 512)


if __name__ == "__main__":
    unittest.main()
