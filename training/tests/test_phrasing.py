import itertools
import re
import unittest

import numpy as np

from training.eval import evaluate
from training.model import configs
from training.model.train import TOKENIZER, clip_captions, generator_captions
from training.world import claims, oracle, phrasing
from training.world import shapes as world
from training.world.bpe import Tokenizer

_RNG = np.random.default_rng(21)
ROWS = claims.scene_rows([world.sample_scene(_RNG) for _ in range(400)])


def all_object_phrases():
    sizes = [None] + [w for s in world.SIZES for w in phrasing.SYNONYMS[s]]
    colours = [w for c in world.COLOURS for w in phrasing.SYNONYMS.get(c, [c])]
    for article, size, colour, shape in itertools.product(("a ", ""), sizes, colours, world.SHAPES):
        yield article + " ".join(([size] if size else []) + [colour, shape])


class HeldoutPhrasingsTest(unittest.TestCase):
    def test_training_never_draws_a_heldout_phrasing(self):
        rng = np.random.default_rng(1)
        keys = set(phrasing.all_training_keys())
        self.assertFalse(keys & phrasing.HELDOUT_KEYS)
        for row in ROWS:
            for _ in range(5):
                text, _ = phrasing.training_caption(row, rng)
                for key in phrasing.HELDOUT_KEYS:
                    self.assertFalse(self._fits(key, text), (key, text))

    def _fits(self, key, text):
        """Whether text is key with object phrases put in."""
        sizes = "|".join(w for s in world.SIZES for w in phrasing.SYNONYMS[s])
        obj = f"(?:a )?(?:(?:{sizes}) )?[a-z]+ [a-z]+"
        pattern = re.escape(key).replace(r"\{a\}", obj).replace(r"\{b\}", obj)
        return re.fullmatch(pattern, text) is not None

    def test_heldout_phrasings_are_new_combinations_of_training_words(self):
        vocabulary = set(phrasing.vocabulary())
        every_key = set(phrasing.single_keys())
        every_key |= {k for r in world.RELATIONS for k in phrasing.pair_keys(r)}
        every_key |= {k for h, v in itertools.product(world.HPOS, world.VPOS)
                      for p, _, _ in phrasing.position_words(h, v) for k in phrasing.position_keys(p)}
        for key in phrasing.HELDOUT_KEYS:
            self.assertIn(key, every_key)  # the grammar could say it; training just never does
            words = key.replace("{a}", "").replace("{b}", "").split()
            self.assertTrue(set(words) <= vocabulary, key)

    def test_every_relation_and_place_has_a_heldout_phrasing(self):
        self.assertEqual(set(phrasing.HELDOUT["pairs"]), set(world.RELATIONS))
        for h, v in itertools.product(world.HPOS, world.VPOS):
            self.assertTrue(phrasing.heldout_position_templates(h, v), (h, v))


class CaptionTest(unittest.TestCase):
    def test_captions_are_true_of_their_scene_and_state_what_the_claim_says(self):
        rng = np.random.default_rng(2)
        made = [phrasing.training_caption(row, rng) for row in ROWS]
        table = claims.truth(np.stack([c for _, c in made]), ROWS)
        self.assertTrue(table.diagonal().all())
        size_words = {w for s in world.SIZES for w in phrasing.SYNONYMS[s]}
        for (text, claim), row in zip(made, ROWS):
            words = set(text.split(" "))
            stated = [claim[3 + 3 * j] for j in range(row[0]) if claim[3 + 3 * j] != claims.ANY]
            for size in stated:
                self.assertTrue(set(phrasing.SYNONYMS[world.SIZES[size]]) & words, text)
            if not stated:
                self.assertFalse(size_words & words, text)

    def test_many_phrasings_of_one_scene(self):
        rng = np.random.default_rng(3)
        pair = next(r for r in ROWS if r[0] == 2)
        single = next(r for r in ROWS if r[0] == 1)
        self.assertGreater(len({phrasing.training_caption(pair, rng)[0] for _ in range(300)}), 100)
        self.assertGreater(len({phrasing.training_caption(single, rng)[0] for _ in range(300)}), 50)

    def test_half_the_captions_keep_the_worlds_plain_wording(self):
        rng, world_rng = np.random.default_rng(9), np.random.default_rng(10)
        scenes = [world.sample_scene(world_rng, "train", n) for n in (1, 2) for _ in range(10)]
        for scene, row in zip(scenes, claims.scene_rows(scenes)):
            plain = {world.describe(scene, world_rng)[0] for _ in range(200)}  # every template, sized or not
            drawn = [phrasing.training_caption(row, rng)[0] for _ in range(400)]
            if len(scene.objects) == 1:  # plain wording with its place said the evaluation's way
                obj = scene.objects[0]
                place = " " + phrasing.canonical_position(*world.position_of(obj.cx, obj.cy))
                drawn = [text.removesuffix(place) for text in drawn]
            share = np.mean([text in plain for text in drawn])
            self.assertGreater(share, 0.3, scene)
            self.assertLess(share, 0.7, scene)
            if len(scene.objects) == 2:  # the evaluation's training phrasing is drawn, not just possible
                self.assertGreater(np.mean([t == world.canonical_caption(scene) for t in drawn]), 0.01)

    def test_captions_are_drawn_up_to_the_text_length_and_never_cut(self):
        tokenizer = Tokenizer.load(TOKENIZER)
        length = configs.DEMO["gpt"].text_length
        longest_object = max(all_object_phrases(), key=lambda o: len(tokenizer.encode(o)))
        too_long = [k for k in phrasing.all_training_keys()
                    if len(tokenizer.encode(k.format(a=longest_object, b=longest_object))) > length]
        self.assertTrue(too_long)  # so the redraw below is needed
        captions = generator_captions(4)
        drawn = np.concatenate([captions(ROWS)[0] for _ in range(5)])
        used = (drawn != 0).sum(1)
        self.assertLessEqual(used.max(), length)
        self.assertGreaterEqual(used.max(), length - 2)  # the long phrasings are still drawn
        for text, ids in captions.ids.items():
            if ids is not None:
                self.assertEqual(list(ids[:len(tokenizer.encode(text))]), tokenizer.encode(text))

    def test_evaluation_prompts_fit_without_cutting(self):
        tokenizer = Tokenizer.load(TOKENIZER)
        for name, make in evaluate.PHRASINGS.items():
            for group, scenes in evaluate.prompt_groups(8, evaluate.EVAL_SEED + 2).items():
                for i, scene in enumerate(scenes):
                    prompt = make(scene, "positions" if group == "positions" else "objects", i)
                    self.assertLessEqual(len(tokenizer.encode(prompt.text)), configs.DEMO["gpt"].text_length,
                                         prompt.text)

    def test_clip_captions_carry_claims_true_of_their_scenes(self):
        ids, claim_rows = clip_captions(6)(ROWS)
        self.assertEqual(ids.shape, (len(ROWS), configs.DEMO["clip"].context_length))
        self.assertTrue((ids[:, 0] == 1).all())
        self.assertTrue(claims.truth(claim_rows, ROWS).diagonal().all())
        self.assertTrue((claim_rows[:, 0] == claims.SOME_OBJECT).any())


class PositionTest(unittest.TestCase):
    def test_single_objects_fall_in_every_place_and_the_oracle_reads_it_back(self):
        rng = np.random.default_rng(7)
        seen = set()
        for _ in range(300):
            scene = world.sample_scene(rng, "train", 1)
            obj = scene.objects[0]
            place = world.position_of(obj.cx, obj.cy)
            seen.add(place)
            (read,) = oracle.read_objects(world.render(scene))
            self.assertEqual(world.position_of(read.cx, read.cy), place, scene)
            self.assertTrue(oracle.judge(world.render(scene), scene, position=place))
            wrong = ("left" if place[0] != "left" else "right", None)
            self.assertFalse(oracle.judge(world.render(scene), scene, position=wrong))
        self.assertEqual(seen, set(itertools.product(world.HPOS, world.VPOS)))

    def test_place_claims_need_the_place(self):
        left_top = world.Scene((world.Obj("circle", "red", "small", 12.0, 12.0),), None)
        centre = world.Scene((world.Obj("circle", "red", "small", 32.0, 32.0),), None)
        rows = claims.scene_rows([left_top, centre])
        at_left = rows[0].copy()
        at_left[claims.VPOS_COL] = claims.ANY
        in_centre = rows[1].copy()
        np.testing.assert_array_equal(claims.truth(np.stack([at_left, in_centre]), rows),
                                      [[True, False], [False, True]])

    def test_position_phrases_say_only_what_holds(self):
        for h, v in itertools.product(world.HPOS, world.VPOS):
            for phrase, said_h, said_v in phrasing.position_words(h, v):
                self.assertIn(said_h, (None, h))
                self.assertIn(said_v, (None, v))
                self.assertTrue(said_h or said_v)


class ManifestWordsTest(unittest.TestCase):
    def test_vocabulary_covers_every_training_caption_and_the_examples(self):
        vocabulary = set(phrasing.vocabulary())
        rng = np.random.default_rng(8)
        for row in ROWS:
            for make in (claims.full_caption, claims.partial_caption):
                self.assertTrue(set(make(row, rng)[0].split()) <= vocabulary)
        for example in phrasing.EXAMPLES:
            self.assertTrue(set(example.split()) <= vocabulary, example)
        self.assertNotIn("cat", vocabulary)
        for example in phrasing.EXAMPLES:  # they show what it learnt, not the held-out pairs
            for colour, shape in world.HELDOUT_PAIRS:
                self.assertNotIn(f"{colour} {shape}", example)


if __name__ == "__main__":
    unittest.main()
