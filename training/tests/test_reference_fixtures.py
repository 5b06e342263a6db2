import json
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "test/fixtures/reference"


class ReferenceFixturesTest(unittest.TestCase):
    """Each reference fixture describes the committed pack of its name, whole."""

    def fixtures(self):
        return sorted(FIXTURES.glob("*.json"))

    def test_every_pack_has_a_fixture(self):
        packs = {p.parent.name for p in (ROOT / "packs").glob("*/manifest.json")}
        self.assertEqual(packs, {f.stem for f in self.fixtures()})

    def test_fixture_was_made_from_the_committed_files(self):
        for path in self.fixtures():
            fixture = json.loads(path.read_text(encoding="utf-8"))
            manifest = json.loads((ROOT / "packs" / fixture["pack"] / "manifest.json").read_text(encoding="utf-8"))
            with self.subTest(pack=fixture["pack"]):
                shas = {name: entry["sha256"] for name, entry in manifest["files"].items()}
                self.assertEqual(fixture["files"], shas, "regenerate with python3 -m training.eval.reference")

    def test_shapes_follow_the_pack_geometry(self):
        for path in self.fixtures():
            fixture = json.loads(path.read_text(encoding="utf-8"))
            manifest = json.loads((ROOT / "packs" / fixture["pack"] / "manifest.json").read_text(encoding="utf-8"))
            g, gen = manifest["geometry"], fixture["generator"]
            with self.subTest(pack=fixture["pack"]):
                self.assertTrue(all(len(ids) == g["text_length"] for ids in gen["text_tokens"]))
                rows = [gen["prefill_logits"], *gen["step_logits"]]
                self.assertTrue(all(len(r) == len(gen["text_tokens"]) for r in rows))
                self.assertTrue(all(len(x) == g["codebook_size"] for r in rows for x in r))
                n = g["image_grid"][0] * g["image_grid"][1]
                for entry in fixture["decoder"]:
                    self.assertEqual(len(entry["image_tokens"]), n)
                    self.assertTrue((FIXTURES / entry["png"]).is_file())
                embed_dim = manifest["clip"]["embed_dim"]
                for entry in fixture["clip_image"]:
                    self.assertEqual(len(entry["image_embeds"]), embed_dim)
                    self.assertTrue((FIXTURES / entry["png"]).is_file())
                for entry in fixture["clip_text"]:
                    self.assertEqual(len(entry["text_embeds"]), embed_dim)
                    self.assertEqual(len(entry["input_ids"]), manifest["clip"]["context_length"])


if __name__ == "__main__":
    unittest.main()
