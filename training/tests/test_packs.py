import hashlib
import json
import unittest
from pathlib import Path

PACKS = Path(__file__).resolve().parents[2] / "packs"
# Where a manifest names its files (the contract's graphs and tokenizers).
FILE_FIELDS = [
    ("generator", "tokenizer"),
    ("generator", "graphs", "prefill"),
    ("generator", "graphs", "step"),
    ("generator", "graphs", "sample_loop"),
    ("decoder", "graph"),
    ("encoder", "graph"),
    ("clip", "tokenizer"),
    ("clip", "graphs", "image"),
    ("clip", "graphs", "text"),
]


def named_files(manifest: dict) -> list[str]:
    names = []
    for field in FILE_FIELDS:
        value = manifest
        for key in field:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            names.append(value)
    return names


class PackFilesTest(unittest.TestCase):
    """Every committed pack's files match its manifest; passes with no packs at all."""

    def test_files_match_their_checksums_and_sizes(self):
        for manifest_path in sorted(PACKS.glob("*/manifest.json")):
            pack = manifest_path.parent
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            with self.subTest(pack=pack.name):
                self.assertTrue(manifest["files"], "a pack names at least one file")
                for name, entry in manifest["files"].items():
                    path = (pack / name).resolve()
                    self.assertEqual(path.parent, pack.resolve(), f"{name} must lie in the pack folder")
                    self.assertTrue(path.is_file(), f"{name} is missing")
                    data = path.read_bytes()
                    self.assertEqual(len(data), entry["bytes"], f"{name} size")
                    self.assertEqual(hashlib.sha256(data).hexdigest(), entry["sha256"], f"{name} sha256")

    def test_every_named_file_is_listed(self):
        for manifest_path in sorted(PACKS.glob("*/manifest.json")):
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            with self.subTest(pack=manifest_path.parent.name):
                for name in named_files(manifest):
                    self.assertIn(name, manifest["files"])


if __name__ == "__main__":
    unittest.main()
