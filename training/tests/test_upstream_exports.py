"""The minDALL-E and dVAE exporters against upstream's own answers (fixtures/upstream-small.json,
written by make_upstream_fixtures.py from Kakao Brain's and OpenAI's code on the seeded random
checkpoints of make_upstream_checkpoints.py). The exported graphs run under onnxruntime against the
same fixture in test/training/mindalle.test.ts (training/check_upstream.mjs): onnxruntime is in
Node here, not in this Python."""
import base64
import json
import os
import pickle
import shutil
import sys
import tempfile
import types
import unittest
from unittest import mock

import numpy as np
import onnx
import torch

from training.export import dvae_decoder, dvae_encoder, mindalle_pack
from training.tests import make_upstream_checkpoints as make
from training.tests.test_pack_memory import kv_step_cache_copies, loop_cache_copies, step_copies
from training.upstream import dvae, safe_pickle
from training.upstream import mindalle_tokenizer as tok

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "upstream-small.json")
# float32 through different but equivalent arithmetic (fused attention, one GELU formula).
LOGIT_TOLERANCE = 1e-4


def pixels_of(entry):
    return np.frombuffer(base64.b64decode(entry["base64"]), dtype=np.uint8).reshape(entry["shape"])


class UpstreamExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        with open(FIXTURE) as f:
            cls.fixture = json.load(f)
        cls.dir = tempfile.mkdtemp()
        make.write_mindalle(os.path.join(cls.dir, "mindalle"), "small")
        make.write_dvae(os.path.join(cls.dir, "dvae"), "small")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def test_checkpoints_are_the_ones_the_fixtures_were_computed_on(self):
        for name, digest in self.fixture["digests"].items():
            self.assertEqual(make.state_digest(self.path(*name.split("/"))), digest, name)

    def test_tokenizer_gives_upstreams_ids(self):
        vocab = tok.read_vocab(self.path("mindalle", "tokenizer", "bpe-16k-vocab.json"))
        merges = tok.read_merges(self.path("mindalle", "tokenizer", "bpe-16k-merges.txt"))
        for prompt, ids in zip(self.fixture["prompts"], self.fixture["token_ids"]):
            self.assertEqual(tok.reference_encode(prompt, vocab, merges), ids, prompt)
        _, pad = tok.special_ids(vocab)
        self.assertEqual(pad, len(vocab), "[PAD] is added after the vocabulary, as add_special_tokens does")
        self.assertIn(tok.UNK, tok.tokenizer_json(vocab, merges)["model"]["unk_token"])

    def test_generator_matches_upstream_prefill_and_step_logits(self):
        config, stage1, stage2, _, _ = mindalle_pack.read_release(self.path("mindalle"))
        gpt, _, _ = mindalle_pack.build_models(config, stage1, stage2)
        texts = torch.tensor([self.fixture["token_ids"][i] for i in self.fixture["text_tokens_rows"]])
        path = torch.tensor(self.fixture["image_path"])
        with torch.no_grad():
            logits, kv = gpt.prefill(texts)
            self.assertEqual(list(kv.shape), [gpt.layers, 2, 2, gpt.heads, 64, gpt.head_dim])
            np.testing.assert_allclose(logits.flatten().numpy(), self.fixture["prefill_logits"], atol=LOGIT_TOLERANCE)
            for k, expected in enumerate(self.fixture["step_logits"]):
                logits, kv = gpt.step(path[:, k:k + 1], kv)
                np.testing.assert_allclose(logits.flatten().numpy(), expected, atol=LOGIT_TOLERANCE,
                                           err_msg=f"step {k}")

    def test_decoder_matches_upstream_pixels(self):
        config, stage1, stage2, _, _ = mindalle_pack.read_release(self.path("mindalle"))
        _, vqgan, _ = mindalle_pack.build_models(config, stage1, stage2)
        with torch.no_grad():
            pixels = vqgan(torch.tensor(self.fixture["image_path"])).numpy().astype(int)
        expected = pixels_of(self.fixture["decoder_pixels"]).astype(int)
        self.assertEqual(pixels.shape, expected.shape)
        self.assertLessEqual(np.abs(pixels - expected).max(), 1)  # a rounding step at most

    def test_dvae_decoder_matches_upstream_pixels(self):
        model = dvae.load_decoder(self.path("dvae", "decoder.pkl"))
        model.grid = make.SIZES["small"]["dvae"]["grid"]
        with torch.no_grad():
            pixels = model(torch.tensor(self.fixture["dvae_codes"])).numpy().astype(int)
        expected = pixels_of(self.fixture["dvae_pixels"]).astype(int)
        self.assertEqual(pixels.shape, expected.shape)
        self.assertLessEqual(np.abs(pixels - expected).max(), 1)

    def test_vqgan_encoder_gives_upstreams_codes(self):
        # Codes, not distances: an argmin is exact or wrong (the fixture's nearest two codes are at
        # least 0.1 apart in squared distance, far above float32 noise).
        config, stage1, stage2, _, _ = mindalle_pack.read_release(self.path("mindalle"))
        _, vqgan, encoder = mindalle_pack.build_models(config, stage1, stage2)
        self.assertEqual(encoder.quantize.embedding.weight.data_ptr(), vqgan.quantize.embedding.weight.data_ptr(),
                         "one codebook, held once")
        with torch.no_grad():
            codes = encoder(torch.from_numpy(pixels_of(self.fixture["encoder_images"]).copy()))
        self.assertEqual(codes.dtype, torch.int64)
        self.assertEqual(codes.tolist(), self.fixture["encoder_codes"])

    def test_dvae_encoder_gives_upstreams_codes(self):
        images = pixels_of(self.fixture["dvae_encoder_images"])
        model = dvae.load_encoder(self.path("dvae", "encoder.pkl"), images.shape[1])
        self.assertEqual(model.grid, make.SIZES["small"]["dvae"]["grid"])
        with torch.no_grad():
            codes = model(torch.from_numpy(images.copy()))
        self.assertEqual(codes.tolist(), self.fixture["dvae_encoder_codes"])

    def test_a_dvae_decoder_is_refused_as_an_encoder_and_the_other_way_round(self):
        with self.assertRaisesRegex(SystemExit, "a dall_e Decoder .decoder.pkl., not a Encoder"):
            dvae.load_encoder(self.path("dvae", "decoder.pkl"))
        with self.assertRaisesRegex(SystemExit, "a dall_e Encoder .encoder.pkl., not a Decoder"):
            dvae.load_decoder(self.path("dvae", "encoder.pkl"))

    def test_encoder_graphs_take_uint8_pixels_and_give_codes(self):
        config, stage1, stage2, _, _ = mindalle_pack.read_release(self.path("mindalle"))
        _, _, encoder = mindalle_pack.build_models(config, stage1, stage2)
        os.makedirs(self.path("graphs"), exist_ok=True)
        mindalle_pack.export_encoder(encoder, self.path("graphs"))
        small_dvae = dvae.load_encoder(self.path("dvae", "encoder.pkl"), 32)
        dvae_encoder.export_graph(small_dvae, self.path("graphs", "dvae-encoder.onnx"))
        for name, size, cells in (("encoder.onnx", 64, 16), ("dvae-encoder.onnx", 32, 16)):
            graph = onnx.load(self.path("graphs", name)).graph
            (pixels,), (tokens,) = graph.input, graph.output
            shape = [d.dim_value or d.dim_param for d in pixels.type.tensor_type.shape.dim]
            self.assertEqual((pixels.name, pixels.type.tensor_type.elem_type, shape),
                             ("pixels", onnx.TensorProto.UINT8, ["B", size, size, 3]), name)
            shape = [d.dim_value or d.dim_param for d in tokens.type.tensor_type.shape.dim]
            self.assertEqual((tokens.name, tokens.type.tensor_type.elem_type, shape),
                             ("image_tokens", onnx.TensorProto.INT64, ["B", cells]), name)

    def test_dvae_pack_gets_the_new_encoder_or_none_never_the_bases(self):
        # A base on the small dVAE's geometry with an encoder of its own: that encoder's codes are
        # for the decoder being replaced, so the new pack has the dVAE's encoder or no encoder.
        base = self.path("base")
        os.makedirs(base)
        for name in ("decoder.onnx", "encoder.onnx", "kept.txt"):
            with open(os.path.join(base, name), "w") as f:
                f.write(name)
        geometry = {"image_grid": [4, 4], "codebook_size": 512, "image_size": [32, 32]}
        with open(os.path.join(base, "manifest.json"), "w") as f:
            json.dump({"schema_version": 4, "name": "base", "version": "1", "description": "", "geometry": geometry,
                       "decoder": {"graph": "decoder.onnx"}, "encoder": {"graph": "encoder.onnx"},
                       "files": {n: {} for n in ("decoder.onnx", "encoder.onnx", "kept.txt")}}, f)
        decoder = dvae.load_decoder(self.path("dvae", "decoder.pkl"))
        decoder.grid = 4
        encoder = dvae.load_encoder(self.path("dvae", "encoder.pkl"), 32)
        with mock.patch.multiple(dvae_decoder, DALLE1_GRID=[4, 4], DALLE1_PIXELS=[32, 32]):
            with_encoder = dvae_decoder.onto_base(decoder, base, self.path("with-encoder"), encoder)
            without = dvae_decoder.onto_base(decoder, base, self.path("without"))
            with self.assertRaisesRegex(SystemExit, "the dVAE encoder gives a 8×8 grid"):
                dvae_decoder.onto_base(decoder, base, self.path("wrong"), dvae.load_encoder(
                    self.path("dvae", "encoder.pkl"), 64))
        self.assertEqual(list(with_encoder)[list(with_encoder).index("decoder") + 1], "encoder")
        self.assertEqual(sorted(with_encoder["files"]), ["decoder.onnx", "encoder.onnx", "kept.txt"])
        graph = onnx.load(self.path("with-encoder", "encoder.onnx")).graph
        self.assertEqual([i.name for i in graph.input], ["pixels"])
        self.assertIn("encoder", with_encoder["license"])
        self.assertNotIn("encoder", without)
        self.assertEqual(sorted(without["files"]), ["decoder.onnx", "kept.txt"])
        self.assertFalse(os.path.exists(self.path("without", "encoder.onnx")))

    def test_pickle_that_would_run_code_is_refused_without_running_it(self):
        class Payload:
            def __reduce__(self):
                return (os.system, ("touch " + self_marker,))

        self_marker = self.path("ran")
        evil = self.path("evil.pkl")
        torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": Payload()}, evil)
        with self.assertRaises(pickle.UnpicklingError) as caught:
            safe_pickle.load_state_dict(evil, dvae.STAND_IN_PACKAGES)
        self.assertIn("system", str(caught.exception))
        self.assertFalse(os.path.exists(self_marker))

    def test_lightning_checkpoint_with_pickled_hyper_parameters_gives_its_tensors(self):
        # A Lightning .ckpt pickles OmegaConf objects beside the weights: PyTorch's tensors-only
        # reader refuses it, the stand-ins read it without importing omegaconf.
        module = types.ModuleType("omegaconf.dictconfig")

        class DictConfig:
            def __init__(self, content):
                self._content = content

        DictConfig.__module__, DictConfig.__qualname__ = module.__name__, "DictConfig"
        module.DictConfig = DictConfig
        fakes = {"omegaconf": types.ModuleType("omegaconf"), module.__name__: module}
        sys.modules.update(fakes)
        try:
            path = self.path("lightning.ckpt")
            torch.save({"state_dict": {"w": torch.arange(3.0)}, "epoch": 4,
                        "hyper_parameters": DictConfig({"embed_dim": 64})}, path)
        finally:
            for name in fakes:
                del sys.modules[name]
        state = safe_pickle.load_state_dict(path, mindalle_pack.STAND_IN_PACKAGES)
        self.assertEqual(list(state), ["w"])
        self.assertTrue(torch.equal(state["w"], torch.arange(3.0)))

    def test_export_writes_a_pack_with_license_and_shared_weights(self):
        out = self.path("pack")
        manifest = mindalle_pack.export_pack(self.path("mindalle"), out, external=True, name="mindalle-tiny")
        self.assertEqual(manifest["license"], mindalle_pack.LICENSE)
        self.assertEqual(manifest["schema_version"], 5)
        self.assertEqual(manifest["geometry"]["text_length"], 64)
        self.assertEqual(manifest["geometry"]["image_grid"], [4, 4])
        self.assertEqual(manifest["generator"]["text_pad_id"], self.fixture["token_ids"][-1][0])
        self.assertNotIn("clip", manifest)
        self.assertEqual(manifest["encoder"], {"graph": "encoder.onnx"})
        self.assertEqual(list(manifest)[list(manifest).index("decoder") + 1], "encoder")
        self.assertIn("encoder.onnx", manifest["files"])
        self.assertIn(mindalle_pack.WEIGHTS_FILE, manifest["files"])
        # Every generator tensor lives once in the shared file: no graph holds the large ones.
        graphs = sum(manifest["files"][manifest["generator"]["graphs"][g]]["bytes"]
                     for g in ("prefill", "step", "sample_loop", "kv_step"))
        self.assertLess(graphs, manifest["files"][mindalle_pack.WEIGHTS_FILE]["bytes"] / 2)
        params = sum(t.numel() for k, t in torch.load(self.path("mindalle", "stage2_last.ckpt"))["state_dict"].items()
                     if not k.startswith("head_txt."))
        self.assertLess(manifest["files"][mindalle_pack.WEIGHTS_FILE]["bytes"], params * 4 * 1.1)

    def test_the_exported_step_writes_the_cache_twice_at_most_and_the_loop_once(self):
        # Upstream's attention, exported: each layer's past read where it lies (test_pack_memory.py).
        out = self.path("pack-copies")
        mindalle_pack.export_pack(self.path("mindalle"), out, name="mindalle-tiny")
        copied, cache = step_copies(out)
        self.assertLess(copied, 2.2 * cache)
        self.assertEqual(loop_cache_copies(out), [])
        self.assertEqual(kv_step_cache_copies(out), [])

    def test_weights_past_2_gb_go_through_files_one_tensor_at_a_time_into_the_same_pack(self):
        # minDALL-E's 5 GB: with the limit lowered, this small export takes that path.
        for fp16 in (False, True):
            inline, spilled = self.path(f"inline-{fp16}"), self.path(f"spilled-{fp16}")
            mindalle_pack.export_pack(self.path("mindalle"), inline, fp16=fp16, external=True, name="m")
            with mock.patch.object(mindalle_pack, "PROTOBUF_LIMIT", 1000):
                mindalle_pack.export_pack(self.path("mindalle"), spilled, fp16=fp16, name="m")
            self.assertEqual(sorted(os.listdir(inline)), sorted(os.listdir(spilled)))
            for name in os.listdir(inline):
                with open(os.path.join(inline, name), "rb") as a, open(os.path.join(spilled, name), "rb") as b:
                    self.assertEqual(a.read(), b.read(), f"{name}, fp16 {fp16}")


if __name__ == "__main__":
    unittest.main()
