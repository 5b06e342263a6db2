"""The encoder graph of packs/CONTRACT.md (schema 4): its signature, its weights read back by
training.pack.weights, and the PyTorch module it is exported from giving the VQ-VAE's codes on
uint8 pixels. onnxruntime's answers on the committed pack are checked against PyTorch's by
test/integration/models-parity.test.ts (fixture from training/eval/reference.py)."""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import onnx
import torch

from training.export import graphs
from training.export.graphs import PixelEncoder
from training.model import configs
from training.model.models import VQVAE
from training.pack.manifest import GRAPH_FILES
from training.pack.weights import load_pack, read_initializers
from training.world import shapes as world

PACK = os.path.join(os.path.dirname(__file__), "..", "..", "packs", "demo-shapes")


class EncoderGraphTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        torch.manual_seed(4)
        cls.vqvae = VQVAE(configs.DEMO["vq"]).eval()
        cls.dir = tempfile.mkdtemp()
        graphs.export_encoder(cls.vqvae, cls.dir)
        cls.path = os.path.join(cls.dir, GRAPH_FILES["encoder"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_signature_is_uint8_pixels_in_and_codes_out(self):
        graph = onnx.load(self.path).graph
        (pixels,), (tokens,) = graph.input, graph.output
        self.assertEqual((pixels.name, pixels.type.tensor_type.elem_type), ("pixels", onnx.TensorProto.UINT8))
        self.assertEqual([d.dim_value or d.dim_param for d in pixels.type.tensor_type.shape.dim], ["B", 64, 64, 3])
        self.assertEqual((tokens.name, tokens.type.tensor_type.elem_type), ("image_tokens", onnx.TensorProto.INT64))

    def test_weights_are_kept_under_their_parameter_names(self):
        weights = read_initializers(self.path, "vqvae.")
        for name, value in self.vqvae.state_dict().items():
            if name.startswith("encoder.") or name == "codebook":
                self.assertTrue(torch.equal(weights[name], value), name)

    def test_the_exported_module_gives_the_vqvae_codes_of_its_pixels(self):
        images, _, _ = world.make_dataset(6, 9, "heldout")
        with torch.no_grad():
            codes = PixelEncoder(self.vqvae)(torch.from_numpy(images))
            expected = self.vqvae.encode(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
        self.assertEqual(codes.dtype, torch.int64)
        self.assertTrue(torch.equal(codes, expected))


class DemoPackEncoderTest(unittest.TestCase):
    def test_the_demo_pack_encoder_inverts_its_decoder_on_scenes(self):
        """The committed encoder, read back from its graph: scenes encoded and decoded stay close,
        and what the decoder draws encodes back to mostly the same codes."""
        with open(os.path.join(PACK, "manifest.json")) as f:
            self.assertIn("encoder", json.load(f))
        torch.set_num_threads(2)
        _, _, vqvae, _, missing = load_pack(PACK)
        self.assertEqual([n for n in missing if n.startswith("vqvae.encoder.")], [])
        images, _, _ = world.make_dataset(64, 21, "heldout")
        with torch.no_grad():
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
            codes = vqvae.encode(x)
            drawn = (vqvae.decode(codes) * 255).round().clamp(0, 255) / 255
            again = vqvae.encode(drawn)
        self.assertLess(float(((drawn - x) ** 2).mean()), 0.01)
        self.assertGreater(float((again == codes).float().mean()), 0.9)
        self.assertGreater(np.unique(codes.numpy()).size, 16, "scenes use many codes, not a collapsed few")


if __name__ == "__main__":
    unittest.main()
