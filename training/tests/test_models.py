import dataclasses
import tempfile
import unittest

import numpy as np
import torch

from training.export import graphs
from training.export.graphs import PixelDecoder
from training.model import configs
from training.model.models import VQVAE, CLIPConfig, ShapeStem, build_models
from training.model.train import TOKENIZER, clip_pixels, decode_codes
from training.pack import manifest
from training.pack.weights import load_pack
from training.world import shapes as world


def scene_of(colour, shape="square", cx=30.0, cy=34.0):
    return world.Scene((world.Obj(shape, colour, "large", cx, cy),), None)


def pixels(*scenes):
    return clip_pixels(np.stack([world.render(s) for s in scenes]), "cpu")


class ShapeStemTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.config = dataclasses.replace(configs.DEMO["clip"], shape_mask_threshold=0.8)
        self.stem = ShapeStem(self.config)

    def test_the_convolutions_see_the_same_mask_whatever_the_colour(self):
        masks = self.stem.mask(pixels(*(scene_of(c, "circle") for c in world.COLOURS)))
        for mask in masks[1:]:  # up to the rounding of rendered pixels to bytes
            self.assertLess((mask - masks[0]).abs().max().item(), 0.01)
        self.assertAlmostEqual(masks[0, 0, 34, 30].item(), 1.0, places=5)
        self.assertAlmostEqual(masks[0, 0, 3, 3].item(), 0.0, places=5)

    def test_edges_keep_their_anti_aliased_fraction(self):
        mask = self.stem.mask(pixels(scene_of("red", "circle")))[0, 0]
        partial = ((mask > 0.05) & (mask < 0.95)).sum().item()
        self.assertGreater(partial, 20)

    def test_colour_reaches_the_tokens_of_the_object_only(self):
        tokens = self.stem(pixels(scene_of("red"), scene_of("cyan")))
        differs = (tokens[0] - tokens[1]).abs().amax(0) > 1e-6  # per 8x8 patch
        self.assertTrue(differs[4, 3].item())  # the object's centre patch
        self.assertFalse(differs[0, 7].item())  # a background corner

    def test_shape_changes_the_tokens_in_the_same_colour(self):
        tokens = self.stem(pixels(scene_of("red", "square"), scene_of("red", "cross")))
        self.assertGreater((tokens[0] - tokens[1]).abs().max().item(), 1e-3)

    def test_off_unless_configured(self):
        self.assertEqual(CLIPConfig().shape_mask_threshold, 0.0)



class DecodedImagesTest(unittest.TestCase):
    def test_clip_trains_on_the_images_the_packs_decoder_graph_makes(self):
        torch.manual_seed(0)
        vqvae = VQVAE(configs.DEMO["vq"]).eval()
        codes = np.random.default_rng(0).integers(0, configs.DEMO["vq"].codebook_size, (3, 64))
        with torch.no_grad():
            graph = PixelDecoder(vqvae)(torch.from_numpy(codes)).numpy()
        decoded = decode_codes(vqvae, codes, "cpu")
        self.assertEqual(decoded.dtype, np.uint8)
        np.testing.assert_array_equal(decoded, graph)



class PackWeightsTest(unittest.TestCase):
    def write_pack(self, out, cfg, version):
        generator, vqvae, clip = build_models(cfg, seed=3)
        graphs.export_all(generator, vqvae, clip, out, with_loop=False)
        manifest.write(out, TOKENIZER, name="demo-shapes", version=version, description="a test pack",
                       gpt=cfg["gpt"], vq=cfg["vq"], clip=cfg["clip"], logit_scale=clip.logit_scale().item(),
                       sampling_defaults=configs.SAMPLING_DEFAULTS, with_loop=False)
        return clip

    def test_a_pack_from_before_the_shape_stem_loads_with_its_own_image_tower(self):
        before = dict(configs.DEMO, clip=dataclasses.replace(configs.DEMO["clip"], shape_mask_threshold=0.0))
        with tempfile.TemporaryDirectory() as out:
            clip = self.write_pack(out, before, "1.1.0")
            _, _, _, loaded, _ = load_pack(out)
        self.assertEqual(loaded.config.shape_mask_threshold, 0.0)
        self.assertIn("visual.stem.0.weight", loaded.state_dict())
        for name, value in clip.state_dict().items():
            self.assertTrue(torch.equal(loaded.state_dict()[name], value), name)

    def test_a_weight_of_another_shape_is_refused_by_name(self):
        narrower = dict(configs.DEMO, clip=dataclasses.replace(configs.DEMO["clip"], embed_dim=32))
        with tempfile.TemporaryDirectory() as out:
            self.write_pack(out, narrower, "9.9.9")
            with self.assertRaisesRegex(ValueError, r"proj\.weight: the graph holds \(32, 64\), the model \(64, 64\)"):
                load_pack(out)

if __name__ == "__main__":
    unittest.main()
