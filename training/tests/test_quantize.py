"""training.quantize on the committed demo pack: every constant-weight MatMul rewritten (the
sample loop's body too), the manifest's format and checksums, the committed int8 fixture the
TypeScript tests serve equal to a fresh build, the same graphs from a pack whose generator keeps
its weights in one shared external file (as a full-size export does), and CLIP zero-shot within 1
point of float32."""
import hashlib
import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from training.eval import evaluate
from training.export.mindalle_pack import WEIGHTS_FILE, save_sharing_weights
from training.export.quantize import quantize_pack
from training.pack.manifest import file_entry, write_manifest
from training.pack.weights import load_pack
from training.world.bpe import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "packs" / "demo-shapes"
FIXTURE = ROOT / "test" / "fixtures" / "packs" / "demo-shapes-int8"


def ops(graph, found):
    """{op type: count} over `graph` and every subgraph, and constant-B MatMuls left."""
    constants = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant"
                                                       for o in n.output}
    for node in graph.node:
        found[node.op_type] = found.get(node.op_type, 0) + 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                ops(attr.g, found)
    found.setdefault("constant_matmul", 0)
    found["constant_matmul"] += sum(1 for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants)
    return found


def zero_shot(pack_dir):
    manifest, _, _, clip, missing = load_pack(str(pack_dir))
    assert not missing, missing
    scorer = evaluate.Scorer(clip, manifest, Tokenizer.load(os.path.join(pack_dir, manifest["clip"]["tokenizer"])))
    return {split: evaluate.zero_shot(scorer, split, 240, evaluate.EVAL_SEED + i)
            for i, split in enumerate(("heldout", "train"))}


class QuantizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dst = Path(cls.tmp.name) / "demo-shapes-int8"
        cls.manifest = quantize_pack(str(DEMO), str(cls.dst))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_every_constant_matmul_is_int8_the_loop_body_too(self):
        m = self.manifest
        for name in ("generator-prefill.onnx", "generator-step.onnx", "clip-image.onnx", "clip-text.onnx"):
            found = ops(onnx.load(self.dst / name).graph, {})
            self.assertEqual(found["constant_matmul"], 0, name)
            self.assertGreater(found["MatMulInteger"], 0, name)
            # Attention's MatMuls multiply activations by activations: they stay float.
            self.assertGreater(found.get("MatMul", 0), 0, name)
        loop = onnx.load(self.dst / m["generator"]["graphs"]["sample_loop"])
        body = next(n for n in loop.graph.node if n.op_type == "Loop").attribute[0].g
        self.assertEqual(ops(body, {})["MatMulInteger"], ops(onnx.load(self.dst / "generator-step.onnx").graph,
                                                             {})["MatMulInteger"])
        decoder = ops(onnx.load(self.dst / m["decoder"]["graph"]).graph, {})
        self.assertNotIn("MatMulInteger", decoder)

    def test_manifest_states_the_format_and_every_checksum(self):
        m = self.manifest
        self.assertEqual(m["name"], "demo-shapes-int8")
        self.assertEqual(m["weights"], {"format": "int8", "source": "demo-shapes",
                                        "graphs": ["prefill", "step", "sample_loop", "kv_step", "clip_image",
                                                   "clip_text"]})
        for name, entry in m["files"].items():
            data = (self.dst / name).read_bytes()
            self.assertEqual(entry, {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}, name)
        size = sum(e["bytes"] for e in m["files"].values())
        with open(DEMO / "manifest.json") as f:
            self.assertLess(size, 0.5 * sum(e["bytes"] for e in json.load(f)["files"].values()))
        with self.assertRaises(SystemExit):
            quantize_pack(str(self.dst), str(Path(self.tmp.name) / "again"))

    def test_the_committed_fixture_is_this_build(self):
        with open(FIXTURE / "manifest.json") as f:
            self.assertEqual(json.load(f), self.manifest, "rebuild it: python3 -m training.quantize packs/demo-shapes "
                                                         "--out test/fixtures/packs/demo-shapes-int8")

    def test_generator_weights_in_one_shared_file_give_the_same_graphs(self):
        shared = Path(self.tmp.name) / "demo-shapes-shared"
        shutil.copytree(DEMO, shared)
        with open(shared / "manifest.json") as f:
            doc = json.load(f)
        graphs = list(doc["generator"]["graphs"].values())
        save_sharing_weights({name: onnx.load(shared / name) for name in graphs}, str(shared))
        doc["files"] = dict(sorted({**doc["files"], **{name: file_entry(str(shared / name))
                                                       for name in [*graphs, WEIGHTS_FILE]}}.items()))
        write_manifest(str(shared), doc)
        out = Path(self.tmp.name) / "demo-shapes-shared-int8"
        manifest = quantize_pack(str(shared), str(out))
        self.assertNotIn(WEIGHTS_FILE, manifest["files"])
        self.assertFalse((out / WEIGHTS_FILE).exists())
        for name in graphs:
            inline, external = onnx.load(self.dst / name).graph, onnx.load(out / name).graph
            self.assertEqual([n.SerializeToString() for n in external.node],
                             [n.SerializeToString() for n in inline.node], name)
            tensors = {t.name: numpy_helper.to_array(t) for t in external.initializer}
            expected = {t.name: numpy_helper.to_array(t) for t in inline.initializer}
            self.assertEqual(tensors.keys(), expected.keys(), name)
            for key, value in expected.items():
                np.testing.assert_array_equal(tensors[key], value, err_msg=f"{name}: {key}")

    def test_clip_zero_shot_within_one_point_of_float32(self):
        float32, int8 = zero_shot(DEMO), zero_shot(self.dst)
        for split in float32:
            self.assertLessEqual(abs(float32[split] - int8[split]), 0.01, (split, float32, int8))


if __name__ == "__main__":
    unittest.main()
