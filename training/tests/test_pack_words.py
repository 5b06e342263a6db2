import json
import os
import shutil
import tempfile
import unittest

from training.pack import manifest
from training.world import phrasing

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "packs", "demo-shapes", "manifest.json")


class PackWordsTest(unittest.TestCase):
    def test_words_are_written_into_a_manifest_and_the_files_left_as_they_were(self):
        with tempfile.TemporaryDirectory() as folder:
            shutil.copyfile(DEMO, os.path.join(folder, "manifest.json"))
            with open(DEMO) as f:
                before = json.load(f)
            manifest.write_words(folder, ["red", "circle", "red", "a"], ["a red circle"])
            with open(os.path.join(folder, "manifest.json")) as f:
                after = json.load(f)
        self.assertEqual(after["vocabulary"], ["a", "circle", "red"])
        self.assertEqual(after["examples"], ["a red circle"])
        self.assertEqual(after["files"], before["files"])
        self.assertEqual(list(after)[-1], "files")
        rest = {k: v for k, v in after.items() if k not in ("vocabulary", "examples")}
        self.assertEqual(rest, {k: v for k, v in before.items() if k not in ("vocabulary", "examples")})

    def test_the_recipe_vocabulary_is_lower_case_single_words(self):
        vocabulary = phrasing.vocabulary()
        self.assertEqual(vocabulary, sorted(set(vocabulary)))
        for word in vocabulary:
            self.assertRegex(word, r"^[a-z]+$")
        for word in ("left", "top", "centre", "center", "underneath", "violet", "big", "corner"):
            self.assertIn(word, vocabulary)


if __name__ == "__main__":
    unittest.main()
