import unittest

import numpy as np

from training.eval.clip_validation import VALIDATION_PAIRS, object_pairs
from training.eval.evaluate import LABELS
from training.world import claims
from training.world import shapes as world


class ValidationPairsTest(unittest.TestCase):
    def test_validation_pairs_are_train_pairs_one_per_shape(self):
        self.assertFalse(set(VALIDATION_PAIRS) & world.HELDOUT_PAIRS)
        self.assertEqual(sorted(s for _, s in VALIDATION_PAIRS), sorted(world.SHAPES))

    def test_every_colour_and_shape_keeps_two_partners_in_what_clip_sees(self):
        seen = [p for p in world._TRAIN_PAIRS if p not in VALIDATION_PAIRS]
        for colour in world.COLOURS:
            self.assertGreaterEqual(sum(c == colour for c, _ in seen), 2, colour)
        for shape in world.SHAPES:
            self.assertGreaterEqual(sum(s == shape for _, s in seen), 2, shape)

    def test_object_pairs_name_each_objects_label(self):
        rng = np.random.default_rng(3)
        scenes = [world.sample_scene(rng) for _ in range(200)]
        pairs = object_pairs(claims.scene_rows(scenes))
        for scene, row in zip(scenes, pairs):
            expected = [LABELS.index(world.label(o)) for o in scene.objects] + [-1] * (2 - len(scene.objects))
            self.assertEqual(list(row), expected)


if __name__ == "__main__":
    unittest.main()
