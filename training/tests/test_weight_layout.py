"""training/export/weight_layout.py: each matrix stored as its MatMul reads it, on hand-made graphs
(Transpose, Gemm, a tied table, external data) and on a generator exported as the packs are; the
weights read back by name from such a pack; and the committed packs already in that layout."""
import json
import os
import tempfile
import unittest
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from training.export import graphs, weight_layout
from training.export.quantize import quantize_model
from training.model import configs
from training.model.models import build_models
from training.pack.manifest import GRAPH_FILES
from training.pack.weights import read_initializers

PACKS = Path(__file__).resolve().parents[2] / "packs"


def transposes_of_initializers(graph, constants=frozenset()):
    """Transpose nodes reading an initializer, and Gemms with transB on one, in `graph` and its subgraphs."""
    constants = constants | {t.name for t in graph.initializer}
    found = [n.name or n.op_type for n in graph.node
             if (n.op_type == "Transpose" and n.input[0] in constants)
             or (n.op_type == "Gemm" and any(a.name == "transB" and a.i for a in n.attribute))]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += transposes_of_initializers(attr.g, constants)
    return found


def matmul_weights(graph, constants=frozenset()):
    """Names of the constant B inputs of every MatMul, subgraphs included."""
    constants = constants | {t.name for t in graph.initializer}
    found = [n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += matmul_weights(attr.g, constants)
    return found


def linear_model(w, tied=False, gemm=False):
    """y = x · Wᵀ as torch writes it (Transpose + MatMul, or Gemm transB); `tied`: W also feeds a Gather."""
    vi = helper.make_tensor_value_info
    inputs = [vi("x", TensorProto.FLOAT, ["B", w.shape[1]])]
    outputs = [vi("y", TensorProto.FLOAT, ["B", w.shape[0]])]
    if gemm:
        nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="gemm", transB=1)]
    else:
        nodes = [helper.make_node("Transpose", ["W"], ["Wt"], name="t", perm=[1, 0]),
                 helper.make_node("MatMul", ["x", "Wt"], ["y"], name="mm")]
    if tied:
        inputs.append(vi("ids", TensorProto.INT64, ["B"]))
        outputs.append(vi("rows", TensorProto.FLOAT, ["B", w.shape[1]]))
        nodes.append(helper.make_node("Gather", ["W", "ids"], ["rows"], name="gather"))
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.zeros(w.shape[0], np.float32), "b")]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def initializer(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


class HandMadeGraphsTest(unittest.TestCase):
    def setUp(self):
        self.w = np.arange(12, dtype=np.float32).reshape(3, 4)  # [out 3, in 4]

    def test_transpose_and_matmul_read_one_transposed_initializer(self):
        model = linear_model(self.w)
        self.assertEqual(weight_layout.store_as_consumed(model), 1)
        self.assertEqual([n.op_type for n in model.graph.node], ["MatMul"])
        self.assertEqual(list(model.graph.node[0].input), ["x", "W.T"])
        self.assertEqual(sorted(t.name for t in model.graph.initializer), ["W.T", "b"])
        np.testing.assert_array_equal(numpy_helper.to_array(initializer(model, "W.T")), self.w.T)
        onnx.checker.check_model(model)
        self.assertEqual(weight_layout.store_as_consumed(model), 0, "a second pass has nothing to do")

    def test_gemm_loses_trans_b(self):
        model = linear_model(self.w, gemm=True)
        self.assertEqual(weight_layout.store_as_consumed(model), 1)
        gemm = model.graph.node[0]
        self.assertEqual(list(gemm.input), ["x", "W.T", "b"])
        self.assertEqual([a.name for a in gemm.attribute], [])
        np.testing.assert_array_equal(numpy_helper.to_array(initializer(model, "W.T")), self.w.T)

    def test_a_tied_table_keeps_its_rows_for_the_gather(self):
        model = linear_model(self.w, tied=True)
        weight_layout.store_as_consumed(model)
        self.assertEqual([t.name for t in model.graph.initializer], ["W", "W.T", "b"])
        self.assertEqual([n.op_type for n in model.graph.node], ["MatMul", "Gather"])
        self.assertEqual(list(model.graph.node[1].input), ["W", "ids"])

    def test_other_transposes_are_left_alone(self):
        model = linear_model(self.w)
        model.graph.node[0].attribute[0].ints[:] = [0, 1]
        self.assertEqual(weight_layout.store_as_consumed(model), 0)
        self.assertEqual([n.op_type for n in model.graph.node], ["Transpose", "MatMul"])

    def test_external_data_is_transposed_into_a_file_beside_it_once(self):
        with tempfile.TemporaryDirectory() as base:
            with open(os.path.join(base, "W"), "wb") as f:
                f.write(self.w.tobytes())
            models = [linear_model(self.w), linear_model(self.w)]
            for model in models:
                w = initializer(model, "W")
                w.ClearField("raw_data")
                w.data_location = TensorProto.EXTERNAL
                for key, value in (("location", "W"), ("offset", "0"), ("length", str(self.w.nbytes))):
                    entry = w.external_data.add()
                    entry.key, entry.value = key, value
                weight_layout.store_as_consumed(model, base)
                t = initializer(model, "W.T")
                self.assertEqual({e.key: e.value for e in t.external_data},
                                 {"location": "W.T", "offset": "0", "length": str(self.w.nbytes)})
                self.assertEqual(list(t.dims), [4, 3])
            self.assertEqual(sorted(os.listdir(base)), ["W", "W.T"])
            stored = np.fromfile(os.path.join(base, "W.T"), dtype=np.float32).reshape(4, 3)
            np.testing.assert_array_equal(stored, self.w.T)


class ExportedGeneratorTest(unittest.TestCase):
    """A micro generator exported as random_pack exports it: its graphs, and its weights read back."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.generator = build_models(configs.MICRO, 0)[0]
        graphs.export_generator(cls.generator, cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def load(self, key):
        return onnx.load(os.path.join(self.tmp.name, GRAPH_FILES[key]))

    def test_every_matmul_reads_its_matrix_as_stored_main_graph_and_loop_body_one_initializer(self):
        for key in ("prefill", "step", "sample_loop"):
            graph = self.load(key).graph
            self.assertEqual(transposes_of_initializers(graph), [], key)
            weights = matmul_weights(graph)
            self.assertTrue(weights and all(name.endswith(".T") for name in weights), (key, weights))
        loop = self.load("sample_loop").graph
        body = next(n for n in loop.node if n.op_type == "Loop").attribute[0].g
        shared = {t.name for t in loop.initializer}
        main = [n.input[1] for n in loop.node if n.op_type == "MatMul" and n.input[1] in shared]
        self.assertEqual(len(main), 5)
        self.assertEqual(sorted(matmul_weights(body, shared)), sorted(main),
                         "the Loop body reads the very initializers prefill reads")

    def test_the_weights_read_back_by_parameter_name(self):
        state = self.generator.state_dict()
        for key in ("prefill", "step"):
            weights = read_initializers(os.path.join(self.tmp.name, GRAPH_FILES[key]), "generator.")
            weights.pop("int8")
            self.assertIn("blocks.0.attn.qkv.weight", weights)
            for name, value in weights.items():
                self.assertTrue(torch.equal(value, state[name]), (key, name))

    def test_the_int8_rewrite_still_finds_every_matrix(self):
        model = self.load("sample_loop")
        before = len(matmul_weights(model.graph))
        self.assertEqual(quantize_model(model), before)
        self.assertEqual(matmul_weights(model.graph), [])
        names = {t.name for t in model.graph.initializer}
        self.assertIn("w/prefill/generator.blocks.0.attn.qkv.weight.T.int8", names)


class CommittedPacksTest(unittest.TestCase):
    def test_committed_packs_store_their_matrices_as_read(self):
        for manifest_path in sorted(PACKS.glob("*/manifest.json")):
            doc = json.loads(manifest_path.read_text(encoding="utf-8"))
            for key, file in doc.get("generator", {}).get("graphs", {}).items():
                with self.subTest(pack=manifest_path.parent.name, graph=key):
                    graph = onnx.load(str(manifest_path.parent / file)).graph
                    self.assertEqual(transposes_of_initializers(graph), [])


if __name__ == "__main__":
    unittest.main()
