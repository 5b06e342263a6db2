import unittest

import numpy as np

from training.world import oracle
from training.world import shapes as world

SCENES_PER_SPLIT = 1000


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A generated-looking copy: slightly blurred, with pixel noise and a few stray pixels."""
    padded = np.pad(image.astype(np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    blurred = sum(padded[1 + dy: 65 + dy, 1 + dx: 65 + dx] * w for dy, dx, w in _BLUR_TAPS)
    noisy = blurred + rng.normal(0.0, 8.0, blurred.shape)
    for _ in range(6):
        noisy[rng.integers(64), rng.integers(64)] = rng.integers(0, 256, 3)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


# A 3x3 blur that keeps half of each pixel and spreads the rest over its neighbours.
_BLUR_TAPS = [(dy, dx, 0.5 if dy == dx == 0 else 0.5 / 8) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


class ReadBackTest(unittest.TestCase):
    def test_judge_accepts_clean_renders(self):
        rng = np.random.default_rng(11)
        failures = []
        total = 0
        for split in world.SPLITS:
            for _ in range(SCENES_PER_SPLIT):
                scene = world.sample_scene(rng, split)
                total += 1
                image = world.render(scene)
                if not oracle.judge(image, scene):
                    failures.append((scene, oracle.read_objects(image)))
        for scene, reads in failures:
            print(f"oracle failure: {scene} read as {reads}")
        self.assertLessEqual(len(failures), total * 0.005)

    def test_reads_attributes_and_positions(self):
        rng = np.random.default_rng(12)
        for _ in range(200):
            scene = world.sample_scene(rng, n_objects=1)
            (read,) = oracle.read_objects(world.render(scene))
            (obj,) = scene.objects
            self.assertEqual((read.shape, read.colour, read.size), (obj.shape, obj.colour, obj.size), scene)
            self.assertLess(abs(read.cx - obj.cx), 1.5, scene)
            self.assertLess(abs(read.cy - obj.cy), 1.5, scene)

    def test_tolerates_blur_noise_and_stray_pixels(self):
        rng = np.random.default_rng(13)
        scenes = [world.sample_scene(rng) for _ in range(300)]
        passed = sum(oracle.judge(degrade(world.render(s), rng), s) for s in scenes)
        self.assertGreaterEqual(passed, 0.97 * len(scenes))

    def test_empty_background_has_no_objects(self):
        image = np.empty((64, 64, 3), dtype=np.uint8)
        image[:] = world.BACKGROUND
        self.assertEqual(oracle.read_objects(image), [])


class JudgeTest(unittest.TestCase):
    scene = world.Scene(
        (world.Obj("circle", "red", "large", 18.0, 30.0), world.Obj("square", "cyan", "small", 48.0, 34.0)),
        "left of",
    )

    def judge_render_of(self, shown: world.Scene, asked: world.Scene, check_size: bool = True) -> bool:
        return oracle.judge(world.render(shown), asked, check_size)

    def test_accepts_the_scene_itself(self):
        self.assertTrue(self.judge_render_of(self.scene, self.scene))

    def test_rejects_the_wrong_relation(self):
        for relation in ("right of", "above", "below"):
            self.assertFalse(self.judge_render_of(self.scene, world.Scene(self.scene.objects, relation)))

    def test_rejects_a_wrong_attribute(self):
        red, cyan = self.scene.objects
        for wrong in (
            world.Obj("triangle", "red", "large", red.cx, red.cy),
            world.Obj("circle", "purple", "large", red.cx, red.cy),
            world.Obj("circle", "red", "small", red.cx, red.cy),
        ):
            self.assertFalse(self.judge_render_of(self.scene, world.Scene((wrong, cyan), "left of")), wrong)

    def test_size_is_checked_only_when_asked(self):
        red, cyan = self.scene.objects
        asked = world.Scene((world.Obj("circle", "red", "small", red.cx, red.cy), cyan), "left of")
        self.assertTrue(self.judge_render_of(self.scene, asked, check_size=False))

    def test_rejects_a_missing_or_extra_object(self):
        one = world.Scene(self.scene.objects[:1], None)
        self.assertFalse(self.judge_render_of(one, self.scene))
        self.assertFalse(self.judge_render_of(self.scene, one))


if __name__ == "__main__":
    unittest.main()
