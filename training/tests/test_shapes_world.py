import hashlib
import unittest

import numpy as np

from training.world import shapes as world


def object_mask(obj: world.Obj) -> np.ndarray:
    """Pixels the object changes when rendered alone."""
    alone = world.render(world.Scene((obj,), None))
    return (alone != np.array(world.BACKGROUND, dtype=np.uint8)).any(axis=2)


def extent(mask: np.ndarray, axis: int) -> tuple[int, int]:
    """First and last index along axis (0 = rows, 1 = columns) holding a pixel of the mask."""
    hits = np.nonzero(mask.any(axis=1 - axis))[0]
    return int(hits[0]), int(hits[-1])


class RendererTest(unittest.TestCase):
    def test_same_seed_gives_identical_bytes_and_captions(self):
        first, second = world.make_dataset(20, seed=7), world.make_dataset(20, seed=7)
        self.assertEqual(first[0].tobytes(), second[0].tobytes())
        self.assertEqual(first[1], second[1])
        self.assertEqual(first[2], second[2])
        self.assertNotEqual(first[0].tobytes(), world.make_dataset(20, seed=8)[0].tobytes())

    def test_renders_are_pinned(self):
        # Training data, fixtures and evaluation all rely on these exact pixels and captions.
        images, captions, _ = world.make_dataset(4, seed=0)
        digests = [hashlib.sha256(image.tobytes()).hexdigest() for image in images]
        self.assertEqual(digests, PINNED_DIGESTS)
        self.assertEqual(captions, PINNED_CAPTIONS)

    def test_dataset_layout(self):
        images, captions, scenes = world.make_dataset(50, seed=1, split="heldout")
        self.assertEqual(images.shape, (50, world.IMAGE_SIZE, world.IMAGE_SIZE, 3))
        self.assertEqual(images.dtype, np.uint8)
        self.assertEqual((len(captions), len(scenes)), (50, 50))

    def test_shapes_have_distinct_fill_ratios(self):
        fills = {}
        for shape in world.SHAPES:
            _, _, cover = world.coverage(world.Obj(shape, "red", "large", 32.0, 32.0, 24.0))
            fills[shape] = cover.sum() / 24.0**2
        ordered = sorted(fills.values())
        self.assertGreater(min(b - a for a, b in zip(ordered, ordered[1:])), 0.05, fills)


class SceneTest(unittest.TestCase):
    def test_objects_stay_inside_and_apart(self):
        rng = np.random.default_rng(3)
        for _ in range(300):
            scene = world.sample_scene(rng, "train")
            masks = [object_mask(obj) for obj in scene.objects]
            for mask in masks:
                self.assertFalse(mask[:2].any() or mask[-2:].any() or mask[:, :2].any() or mask[:, -2:].any(), scene)
            if len(masks) == 2:
                self.assertFalse((masks[0] & masks[1]).any(), scene)

    def test_relations_hold_in_the_pixels(self):
        rng = np.random.default_rng(4)
        seen = set()
        for _ in range(300):
            scene = world.sample_scene(rng, "train", n_objects=2)
            seen.add(scene.relation)
            first, second = (object_mask(obj) for obj in scene.objects)
            axis = 1 if scene.relation in ("left of", "right of") else 0
            (a_lo, a_hi), (b_lo, b_hi) = extent(first, axis), extent(second, axis)
            if scene.relation in ("left of", "above"):
                self.assertGreaterEqual(b_lo - a_hi, 3, scene)  # at least 2 clear pixels between
            else:
                self.assertGreaterEqual(a_lo - b_hi, 3, scene)
        self.assertEqual(seen, set(world.RELATIONS))

    def test_train_never_holds_a_heldout_pair(self):
        rng = np.random.default_rng(5)
        for _ in range(3000):
            scene = world.sample_scene(rng, "train")
            for obj in scene.objects:
                self.assertNotIn((obj.colour, obj.shape), world.HELDOUT_PAIRS)

    def test_heldout_always_holds_a_heldout_pair(self):
        rng = np.random.default_rng(6)
        used = set()
        for _ in range(1000):
            scene = world.sample_scene(rng, "heldout")
            pairs = {(obj.colour, obj.shape) for obj in scene.objects}
            self.assertTrue(pairs & world.HELDOUT_PAIRS, scene)
            used |= pairs & world.HELDOUT_PAIRS
        self.assertEqual(used, world.HELDOUT_PAIRS)

    def test_heldout_pairs_leave_every_colour_and_shape_in_training(self):
        self.assertGreaterEqual(len(world.HELDOUT_PAIRS), 4)
        for colour in world.COLOURS:
            self.assertTrue(any((colour, shape) not in world.HELDOUT_PAIRS for shape in world.SHAPES))
        for shape in world.SHAPES:
            self.assertTrue(any((colour, shape) not in world.HELDOUT_PAIRS for colour in world.COLOURS))

    def test_unknown_split_is_refused(self):
        with self.assertRaises(ValueError):
            world.sample_scene(np.random.default_rng(0), "test")


class CaptionTest(unittest.TestCase):
    def test_captions_name_every_object_in_lowercase_ascii_words(self):
        rng = np.random.default_rng(8)
        wordings = set()
        for _ in range(500):
            scene = world.sample_scene(rng)
            for text in (world.caption(scene, rng), world.canonical_caption(scene)):
                self.assertRegex(text, r"^[a-z]+( [a-z]+)*$")
                for obj in scene.objects:
                    self.assertIn(f"{obj.colour} {obj.shape}", text)
            wordings.add(world.caption(scene, rng).split(" ")[0])
        self.assertGreaterEqual(len(wordings), 3)  # templates vary the wording

    def test_canonical_caption_states_everything(self):
        scene = world.Scene(
            (world.Obj("cross", "yellow", "large", 16.0, 32.0), world.Obj("circle", "purple", "small", 48.0, 32.0)),
            "left of",
        )
        self.assertEqual(world.canonical_caption(scene), "a large yellow cross to the left of a small purple circle")
        self.assertEqual(world.label(scene.objects[1]), "purple circle")


PINNED_DIGESTS = [
    "66012a66a9323feca85b355c43361f4d5a639d95f1804da1fd153beda7c0557e",
    "1e720f01a5dd3e6a9586acff539abf6146c10d475d3610e9b846ae081594fcc3",
    "803c3a1fadee7456f8a34665bea0070bc4c1b1e799726dadac1d4e6991659dbf",
    "7571e1f949c64eedb18175f5aaa911396180349499c802d0fcf3552f09a5deac",
]
PINNED_CAPTIONS = [
    "an image of a purple circle to the left of a yellow circle",
    "a blue triangle",
    "an image of a red square to the left of a blue square",
    "an image of a purple square to the right of a large cyan circle",
]

if __name__ == "__main__":
    unittest.main()
