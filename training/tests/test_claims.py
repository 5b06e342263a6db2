import unittest

import numpy as np

from training.model.train import clip_captions, clip_examples, recolour
from training.world import claims
from training.world import shapes as world


def scene(*objects, relation=None):
    return world.Scene(tuple(world.Obj(shape, colour, size, 0.0, 0.0) for colour, shape, size in objects), relation)


RED_CIRCLE = ("red", "circle", "small")
BLUE_SQUARE = ("blue", "square", "large")


class TruthTest(unittest.TestCase):
    def test_every_caption_is_true_of_its_own_scene(self):
        rng = np.random.default_rng(3)
        rows = claims.scene_rows([world.sample_scene(rng) for _ in range(300)])
        made = [(claims.partial_caption if i % 3 == 0 else claims.full_caption)(row, rng) for i, row in enumerate(rows)]
        table = claims.truth(np.stack([c for _, c in made]), rows)
        self.assertTrue(table.diagonal().all())
        self.assertLess(table.mean(), 0.5)  # and false of most others

    def test_full_captions_need_the_same_objects_relation_and_stated_sizes(self):
        pair = scene(RED_CIRCLE, BLUE_SQUARE, relation="left of")
        scenes = claims.scene_rows([
            pair,
            scene(BLUE_SQUARE, RED_CIRCLE, relation="right of"),  # the same picture, said the other way
            scene(RED_CIRCLE, BLUE_SQUARE, relation="above"),
            scene(RED_CIRCLE),
            scene(("red", "circle", "large")),
        ])
        pair_claim = claims.scene_rows([pair])[0].copy()
        pair_claim[0] = claims.TWO_OBJECTS
        single_any_size = claims.scene_rows([scene(RED_CIRCLE)])[0].copy()
        single_any_size[0], single_any_size[3] = claims.ONE_OBJECT, claims.ANY
        table = claims.truth(np.stack([pair_claim, single_any_size]), scenes)
        np.testing.assert_array_equal(table, [[True, True, False, False, False], [False, False, False, True, True]])

    def test_partial_captions_are_true_of_any_scene_with_such_an_object(self):
        scenes = claims.scene_rows([scene(RED_CIRCLE, BLUE_SQUARE, relation="below"), scene(BLUE_SQUARE),
                                    scene(RED_CIRCLE)])
        square = np.full(claims.COLUMNS, claims.ANY, dtype=np.int16)
        square[0], square[2] = claims.SOME_OBJECT, claims.SHAPES.index("square")
        np.testing.assert_array_equal(claims.truth(square[None], scenes), [[True, True, False]])

    def test_partial_caption_text_names_what_it_claims(self):
        rng = np.random.default_rng(5)
        row = claims.scene_rows([scene(RED_CIRCLE, BLUE_SQUARE, relation="above")])[0]
        for _ in range(50):
            text, claim = claims.partial_caption(row, rng)
            for value, names in zip(claim[1:4], (claims.COLOURS, claims.SHAPES, claims.SIZES)):
                if value != claims.ANY:
                    self.assertIn(names[value], text.split(" "))


if __name__ == "__main__":
    unittest.main()


class RecolouredImagesTest(unittest.TestCase):
    def test_a_recoloured_scene_gets_colourless_captions_and_no_colour_is_true_of_it(self):
        rng = np.random.default_rng(5)
        rows = claims.scene_rows([world.sample_scene(rng) for _ in range(300)])
        recoloured = rows.copy()
        recoloured[:, [1, 4]] = claims.NO_COLOUR
        made = [claims.partial_caption(row, rng, colourless=True) for row in rows]
        for text, _ in made:
            self.assertFalse(set(text.split()) & set(world.COLOURS), text)
        self.assertTrue(claims.truth(np.stack([c for _, c in made]), recoloured).diagonal().all())
        coloured = [claims.full_caption(row, rng)[1] for row in rows]
        self.assertFalse(claims.truth(np.stack(coloured), recoloured).any())

    def test_recolouring_keeps_every_shape_and_gives_it_a_colour_off_the_palette(self):
        images, _, scenes = world.make_dataset(64, 9)
        shown = recolour(images, claims.scene_rows(scenes), np.random.default_rng(1))
        background = np.all(images == world.BACKGROUND, axis=-1)
        self.assertTrue(np.all(shown[background] == world.BACKGROUND))
        # Object interiors: exactly a palette colour before, far from all of them after.
        palette = np.array(list(world.COLOURS.values()), float)
        interior = (images[..., None, :] == palette.astype(np.uint8)).all(-1).any(-1)
        self.assertGreater(interior.sum(), 64 * 50)
        distance = np.linalg.norm(shown[interior].astype(float)[:, None, :] - palette[None], axis=-1)
        self.assertGreater(distance.min(), 60)

    def test_a_clip_batch_shows_its_recoloured_images_off_the_palette_and_knows_their_truth(self):
        images, _, scenes = world.make_dataset(64, 9)
        recoloured = np.arange(64) % 3 == 0
        # Full captions only: every image in its own colours gets a caption naming them.
        shown, ids, truth = clip_examples(images, claims.scene_rows(scenes), clip_captions(2, partial_rate=0.0),
                                          recoloured, np.random.default_rng(1))
        self.assertEqual(len(ids), 64)
        self.assertTrue(truth.diagonal().all())
        self.assertFalse((shown[recoloured] == images[recoloured]).all())
        np.testing.assert_array_equal(shown[~recoloured], images[~recoloured])
        self.assertFalse(truth[np.ix_(recoloured, ~recoloured)].any())  # no palette colour is true of it
        self.assertTrue(truth[np.ix_(~recoloured, recoloured)].any())  # while "a circle" is true of a red one
