import json
import os
import tempfile
import unittest

import onnx
from onnx import TensorProto, helper

from training.pack.memory import memory_figures, peak_live_bytes, value_bytes

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
PACKS = [os.path.join(ROOT, "packs", name) for name in ("demo-shapes", "micro-dalle1")] + [
    os.path.join(ROOT, "test", "fixtures", "packs", "demo-shapes-int8")]


class PeakLiveBytesTest(unittest.TestCase):
    def graph(self, folder):
        # x [B, 1000] → a = x + x → b = a * a → c = Concat(b, b) [B, 2000] → y = ReduceSum(c) [B, 1]
        nodes = [helper.make_node("Add", ["x", "x"], ["a"]), helper.make_node("Mul", ["a", "a"], ["b"]),
                 helper.make_node("Concat", ["b", "b"], ["c"], axis=1),
                 helper.make_node("ReduceSum", ["c", "axes"], ["y"], keepdims=1)]
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1000])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 1])],
            [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
        path = os.path.join(folder, "g.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        return path

    def test_values_count_while_a_later_node_reads_them_and_scale_with_the_batch(self):
        with tempfile.TemporaryDirectory() as folder:
            path = self.graph(folder)
            # At Concat: x (4000 B a row, the caller's), b (4000) and c (8000); a freed after Mul.
            self.assertEqual(peak_live_bytes(path, {"B": 1}), 16000)
            self.assertEqual(peak_live_bytes(path, {"B": 3}), 48000)
            with self.assertRaisesRegex(ValueError, "dimension 'B' is not given"):
                peak_live_bytes(path, {})

    def test_a_reshaped_value_is_its_input_seen_in_another_shape(self):
        # x [B, 1000] → r = Reshape(x) [B, 10, 100] → y = Neg(r): onnxruntime copies nothing for r.
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Neg", ["r"], ["y"])]
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1000])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 10, 100])],
            [helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 10, 100])])
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "g.onnx")
            onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
            self.assertEqual(peak_live_bytes(path, {"B": 2}), 16000)


class PackMemoryTest(unittest.TestCase):
    def test_each_committed_pack_states_what_its_graphs_measure(self):
        for pack in PACKS:
            with open(os.path.join(pack, "manifest.json")) as f:
                doc = json.load(f)
            with self.subTest(pack=os.path.basename(pack)):
                self.assertEqual(doc["memory"], memory_figures(pack, doc))

    def test_a_row_holds_the_key_value_cache_it_is_given_and_the_one_it_returns(self):
        for pack in PACKS:
            doc, cache, _ = pack_cache(pack)
            g = doc["geometry"]
            with self.subTest(pack=os.path.basename(pack)):
                self.assertGreaterEqual(doc["memory"]["sample_row_bytes"], 2 * cache)
                # The decoder's output alone: height × width × 3 bytes (uint8 pixels).
                self.assertGreater(doc["memory"]["decode_image_bytes"], g["image_size"][0] * g["image_size"][1] * 3)

    def test_a_step_writes_the_cache_twice_at_most(self):
        # Each layer's past read apart (one Split) and the grown cache written once; attention
        # reads the past where it lies. Concatenating each layer's past first, then stacking the
        # layers, wrote it about five times (3 × its size in Concat, 2 × in Gather).
        for pack in PACKS:
            copied, cache = step_copies(pack)
            with self.subTest(pack=os.path.basename(pack)):
                self.assertLess(copied, 2.2 * cache)

    def test_the_loop_copies_only_the_cache_part_it_grows(self):
        # sample_loop's step carries each layer's cache apart and reads the text's from outside
        # the Loop: nothing takes a cache apart, and each carried part is written once, grown.
        for pack in PACKS:
            with self.subTest(pack=os.path.basename(pack)):
                self.assertEqual(loop_cache_copies(pack), [])

    def test_kv_step_reads_the_callers_buffers_in_place(self):
        # kv_step's point: the caller's buffers are only read (no Concat grows them, nothing
        # takes them apart), so a step copies nothing of the cache.
        for pack in PACKS:
            with self.subTest(pack=os.path.basename(pack)):
                self.assertEqual(kv_step_cache_copies(pack), [])


# Ops that write their input's bytes elsewhere; a Transpose before a MatMul is fused away by
# onnxruntime, the past's keys are read transposed where they lie.
COPIES = {"Concat", "Split", "Gather", "Slice", "Expand", "Tile"}


def step_copies(pack):
    """(bytes a pack's step graph copies at one row and its last position, bytes of that row's cache)."""
    doc, cache, positions = pack_cache(pack)
    graph, sizes = value_bytes(os.path.join(pack, doc["generator"]["graphs"]["step"]),
                               {"B": 1, "P": positions - 1, "P_next": positions})
    return sum(sizes[out] for node in graph.node if node.op_type in COPIES for out in node.output if out), cache


# What may read a cache part inside the Loop without copying it (a Transpose before a MatMul
# is fused into it; Shape reads the position).
_READS_IN_PLACE = {"MatMul", "Transpose", "Shape"}


def loop_cache_copies(pack):
    """What copies a cache part in a pack's sample_loop Loop body, beyond the one Concat that
    grows each carried part: ["<part>: <op>", ...], empty when nothing does."""
    with open(os.path.join(pack, "manifest.json")) as f:
        doc = json.load(f)
    graph = onnx.load(os.path.join(pack, doc["generator"]["graphs"]["sample_loop"]), load_external_data=False).graph
    (loop,) = [node for node in graph.node if node.op_type == "Loop"]
    body = loop.attribute[0].g
    readers = {}
    for node in body.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    carried = [value.name for value in body.input[2:-1]]
    text = sorted({name for name in readers if name.startswith("text_")})
    if not carried or len(text) != len(carried):
        return [f"{len(carried)} carried parts and {len(text)} text parts"]
    copies = []
    for name in carried + text:
        grows = [node for node in readers[name] if node.op_type == "Concat"]
        if len(grows) != (1 if name in carried else 0):
            copies.append(f"{name}: {len(grows)} Concat")
        for node in readers[name]:
            if node.op_type == "Transpose" and any(r.op_type != "MatMul" for r in readers.get(node.output[0], [])):
                copies.append(f"{name}: Transpose not into a MatMul")
            elif node.op_type not in _READS_IN_PLACE | {"Concat"}:
                copies.append(f"{name}: {node.op_type}")
    return copies


def kv_step_cache_copies(pack):
    """What reads a pack's kv_step buffers other than in place: ["<input>: <op>", ...]."""
    with open(os.path.join(pack, "manifest.json")) as f:
        doc = json.load(f)
    graph = onnx.load(os.path.join(pack, doc["generator"]["graphs"]["kv_step"]), load_external_data=False).graph
    readers = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    buffers = [value.name for value in graph.input if value.name.startswith(("k_", "v_"))]
    if len(buffers) != 2 * doc["generator"]["layers"]:
        return [f"{len(buffers)} buffer inputs"]
    copies = []
    for name in buffers:
        for node in readers.get(name, []):
            if node.op_type == "Transpose" and any(r.op_type != "MatMul" for r in readers.get(node.output[0], [])):
                copies.append(f"{name}: Transpose not into a MatMul")
            elif node.op_type not in _READS_IN_PLACE:
                copies.append(f"{name}: {node.op_type}")
    return copies


def pack_cache(pack):
    """(manifest, bytes of one row's key/value cache at the last step, positions in all)."""
    with open(os.path.join(pack, "manifest.json")) as f:
        doc = json.load(f)
    g, gen = doc["geometry"], doc["generator"]
    positions = g["text_length"] + g["image_grid"][0] * g["image_grid"][1]
    return doc, gen["layers"] * 2 * (positions - 1) * gen["heads"] * gen["head_dim"] * 4, positions


if __name__ == "__main__":
    unittest.main()
