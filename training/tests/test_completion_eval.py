"""training.eval.completion on the committed demo pack, at a tiny size: its cases, its checks on
images whose answer is known, kept tokens forced as sample_loop forces them, and its result."""
import dataclasses
import os
import unittest

import torch

from training.eval import completion
from training.eval.evaluate import Scorer
from training.pack.weights import load_pack
from training.world import shapes as world
from training.world.bpe import Tokenizer

PACK = os.path.join(os.path.dirname(__file__), "..", "..", "packs", "demo-shapes")
KEEP_ROWS, GRID, KEEP_PIXELS = 4, 8, 32


class CompletionEvalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One thread: at these sizes a pool of two spins against the host's other work for no gain.
        cls.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        manifest, generator, vqvae, clip, _ = load_pack(PACK)
        tokenizer = Tokenizer.load(os.path.join(PACK, manifest["generator"]["tokenizer"]))
        cls.models = (manifest, generator, vqvae, Scorer(clip, manifest, tokenizer), tokenizer)
        cls.cases = completion.cases(3, KEEP_PIXELS)

    @classmethod
    def tearDownClass(cls):
        torch.set_num_threads(cls.threads)

    def test_cases_keep_one_object_on_top_and_ask_for_both(self):
        self.assertEqual([c.text for c in completion.cases(3, KEEP_PIXELS)], [c.text for c in self.cases])
        for case in self.cases:
            top, bottom = case.scene.objects
            self.assertEqual(case.scene.relation, "above")
            self.assertLessEqual(top.cy + top.side / 2, KEEP_PIXELS)
            self.assertGreaterEqual(bottom.cy - bottom.side / 2, KEEP_PIXELS)
            self.assertEqual(case.kept.objects, (top,))
            self.assertIn(f"{top.colour} {top.shape} above ", case.text)
            self.assertTrue(case.text.endswith(f"{bottom.colour} {bottom.shape}"))

    def test_the_checks_read_the_answer_from_rendered_scenes(self):
        case = self.cases[0]
        both, kept_only = world.render(case.scene), world.render(case.kept)
        self.assertEqual(completion.judge(both, case), {"second": True, "kept": True, "whole": True})
        self.assertEqual(completion.judge(kept_only, case), {"second": False, "kept": True, "whole": False})
        other = next(c for c in world.COLOURS if c != case.bottom.colour)
        recoloured = world.Scene((case.top, dataclasses.replace(case.bottom, colour=other)), "above")
        self.assertFalse(completion.judge(world.render(recoloured), case)["second"])
        # The kept object drawn below the kept rows is not the kept object in them.
        moved = world.Scene((dataclasses.replace(case.top, cy=case.bottom.cy),), None)
        self.assertFalse(completion.judge(world.render(moved), case)["kept"])

    def test_every_candidate_carries_the_encoders_codes_in_the_kept_rows(self):
        vqvae = self.models[2]
        case = self.cases[1]
        keep, codes = completion.kept_tokens(vqvae, world.render(case.kept), KEEP_ROWS, GRID)
        n = KEEP_ROWS * GRID
        self.assertTrue(torch.equal(keep[:n], codes[:n]))
        self.assertTrue(bool((keep[n:] == -1).all()))
        tokens, images = completion.sample(self.models, case.text, 6, 5, keep)
        self.assertEqual(images.shape, (6, 64, 64, 3))
        self.assertTrue(torch.equal(tokens[:, :n], codes[:n].expand(6, -1)))
        # Below them the candidates are sampled, not copies of one another.
        self.assertGreater(len({tuple(row) for row in tokens[:, n:].tolist()}), 1)
        # Nothing kept draws what a sampler without `keep` draws (the contract's rule).
        free, _ = completion.sample(self.models, case.text, 6, 5, torch.full_like(keep, -1))
        plain, _ = completion.sample(self.models, case.text, 6, 5)
        self.assertTrue(torch.equal(free, plain))

    def test_a_tiny_run_reports_both_modes_and_the_forced_tokens(self):
        result = completion.evaluate(PACK, prompts=2, candidates=4, top=2, log=lambda _: None, threads=1)
        self.assertEqual((result["keep_rows"], result["grid"], len(result["prompts"])), (KEEP_ROWS, GRID, 2))
        self.assertTrue(result["kept_tokens_forced"])
        for mode in completion.MODES:
            self.assertEqual(set(result[mode]), set(completion.MEASURES))
            for parts in result[mode].values():
                self.assertTrue(all(0.0 <= parts[p] <= 1.0 for p in ("all", "top")))
        # A kept object survives encode -> decode, so some candidate keeps it where the input had it.
        self.assertEqual(result["round_trip"]["kept"], 1.0)
        self.assertGreater(result["completion"]["kept"]["all"], 0.0)
        table = completion.markdown(result)
        self.assertIn("| completion: all 4 | completion: CLIP top 2 | text only: all 4 | text only: CLIP top 2 |",
                      table)
        self.assertEqual(len(table.splitlines()), 2 + len(completion.MEASURES) + 2)


if __name__ == "__main__":
    unittest.main()
