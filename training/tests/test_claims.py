import unittest

import numpy as np

from training import claims, shapes_world as world


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
