import json
import unittest

import numpy as np
from PIL import Image

from training.world import fixtures, oracle
from training.world import shapes as world


class SceneFixturesTest(unittest.TestCase):
    """The committed scene fixtures are what `python3 -m training.world.fixtures` writes (the
    parity fixture is checked in test_bpe)."""

    def test_scene_images_and_labels(self):
        labels = json.loads((fixtures.SCENES_DIR / "labels.json").read_text(encoding="utf-8"))
        expected = fixtures.scene_fixtures()
        self.assertEqual([(e["file"], e["split"]) for e in labels], [(name, split) for name, split, _ in expected])
        for entry, (name, split, scene) in zip(labels, expected):
            pixels = np.asarray(Image.open(fixtures.SCENES_DIR / name).convert("RGB"))
            np.testing.assert_array_equal(pixels, world.render(scene), err_msg=name)
            self.assertEqual(entry["label"], world.label(scene.objects[0]))
            (read,) = oracle.read_objects(pixels)
            self.assertEqual(f"{read.colour} {read.shape}", entry["label"])
            colour, shape = entry["label"].split(" ")
            self.assertEqual((colour, shape) in world.HELDOUT_PAIRS, split == "heldout", name)


if __name__ == "__main__":
    unittest.main()
