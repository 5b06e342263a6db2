"""An int8 copy of any pack: `python3 -m training.quantize SRC --out DST [--name NAME]`.

Every MatMul of the generator's and CLIP's graphs (sample_loop's Loop body included) whose B is
a constant (an initializer or Constant, directly or through a 2-D Transpose, in its own graph or
an enclosing one) becomes int8 weights with one scale per output column and activations
quantized per row at run time (training/pack/int8.py has the arithmetic):

    s = max(ReduceMax(|A|, last axis) × 1/127, 1e-30); A_q = Cast<uint8>(Round(A / s) + 128)
    Y = Cast<float>(MatMulInteger(A_q, B.int8, 128)) × s × B.scale

The decoder stays float32 (convolutions). The files are rewritten, the manifest gains
`weights: {format: "int8", source, graphs}` and new checksums; a pack too large for one
protobuf keeps its weights in `<graph>.weights` beside it.

Why this form. One minDALL-E MLP matrix (1536 × 6144), onnxruntime-node 1.30, 2 threads, this
host's Xeon (AVX-512 VNNI, AMX), best of 5 rounds, ms per call (float32 MatMul = 1×):

| form | rows 1 | rows 16 | rows 64 | rel. error |
| --- | --- | --- | --- | --- |
| float32 MatMul | 2.6 / 4.4 | 5.1 / 7.9 | 16.3 / 21.0 | 0 |
| DynamicQuantizeLinear + MatMulInteger, per-tensor | 2.7× / 3.1× | 4.1× / 5.3× | 6.5× / 6.3× | 0.9% |
| the same with a per-column b_zero_point (zeros) | 2.9× / 3.2× | 5.7× / 6.7× | 4.4× / 5.9× | 0.9% |
| per-row, uint8 with zero point 128 (this form) | 3.1× | 7.0× | 4.1× | 0.9% |
| the same with a per-column b_zero_point | 3.7× | 5.8× | 4.3× | 0.9% |
| MatMulNBits bits 8, block 128, accuracy_level 4 | 3.2× / 3.2× | 1.8× / 2.4× | 2.1× / 1.3× | 0.7% |
| MatMulNBits bits 4, block 128, accuracy_level 4 | 4.9× / 5.6× | 2.3× / 2.4× | 1.8× / 1.5× | 12% |
| MatMulNBits bits 8 or 4, accuracy_level 0 | 0.05–2.2× | 0.1–1.0× | 0.2–1.3× | |

(two runs where two figures are given, on a shared host; ratios are against the float32 MatMul
of the same run). MatMulInteger is 3–7× float32 at every row count; MatMulNBits wins only at one
row with 4 bits, at 12% error, and falls behind from 16 rows, where the sampler runs. Per-row
activations cost about what per-tensor DynamicQuantizeLinear does and keep rows independent; the
zero b_zero_point changed nothing measurable, so the weights are symmetric without one.
"""
import argparse
import json
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.pack.int8 import INV_127, MIN_SCALE, quantize_matrix
from training.pack.manifest import file_entry, with_weights, write_manifest

# The graphs rewritten, by manifest key: the decoder is convolutions and stays float32.
GRAPHS = (("generator", "prefill"), ("generator", "step"), ("generator", "sample_loop"),
          ("generator", "kv_step"), ("clip", "image"), ("clip", "text"))
GRAPH_NAMES = {("generator", "prefill"): "prefill", ("generator", "step"): "step",
               ("generator", "sample_loop"): "sample_loop", ("generator", "kv_step"): "kv_step",
               ("clip", "image"): "clip_image", ("clip", "text"): "clip_text"}
# Protobuf's limit is 2 GB; past this the weights go to an external data file.
INLINE_LIMIT = 1_800_000_000
SHARED = "int8/"  # prefix of the constants every rewritten MatMul shares


class Scope:
    """One graph's names: initializers, Constant outputs, node outputs, inputs."""

    def __init__(self, graph, parent):
        self.graph, self.parent = graph, parent
        self.initializers = {t.name: t for t in graph.initializer}
        self.producers = {o: n for n in graph.node for o in n.output}
        self.inputs = {i.name for i in graph.input}
        self.activations = {}  # A's name -> (A_q, s), once per graph

    def constant(self, name):
        """(array, owning scope, source name) when `name` is a constant here or above, else None."""
        scope = self
        while scope:
            if name in scope.initializers:
                return numpy_helper.to_array(scope.initializers[name]), scope, name
            node = scope.producers.get(name)
            if node is not None:
                if node.op_type == "Constant" and node.attribute[0].name == "value":
                    return numpy_helper.to_array(node.attribute[0].t), scope, name
                return None
            if name in scope.inputs:
                return None
            scope = scope.parent
        return None

    def root(self):
        return self if self.parent is None else self.parent.root()


def _weight(scope, name):
    """B of a MatMul as a constant matrix: (B [K, N], owning scope, key) or None."""
    node = scope.producers.get(name)
    if node is not None and node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), [1, 0])
        found = scope.constant(node.input[0])
        if found is not None and found[0].ndim == 2 and perm == [1, 0]:
            return found[0].T, found[1], found[2] + ".T"
        return None
    found = scope.constant(name)
    if found is not None and found[0].ndim == 2:
        return found
    return None


class Rewriter:
    def __init__(self, model):
        self.model = model
        self.opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        self.done = {}  # (owning scope id, key) -> (int8 name, scale name)
        self.rewritten = 0
        self.counter = 0

    def run(self):
        root = Scope(self.model.graph, None)
        shared = {"inv127": np.array(INV_127, np.float32), "min_scale": np.array(MIN_SCALE, np.float32),
                  "offset": np.array(128, np.float32), "zero_point": np.array(128, np.uint8),
                  "axes": np.array([-1], np.int64), "one": np.array([1], np.int64)}
        self.model.graph.initializer.extend(numpy_helper.from_array(v, SHARED + k) for k, v in shared.items())
        self._graph(root)
        _drop_unused(self.model.graph)
        return self.rewritten

    def _name(self, stem):
        self.counter += 1
        return f"{SHARED}{stem}_{self.counter}"

    def _graph(self, scope):
        nodes = []
        for node in scope.graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    self._graph(Scope(attr.g, scope))
                for g in attr.graphs:
                    self._graph(Scope(g, scope))
            found = _weight(scope, node.input[1]) if node.op_type == "MatMul" else None
            if found is None or found[0].dtype != np.float32:
                nodes.append(node)
                continue
            nodes += self._int8_matmul(scope, node, *found)
        del scope.graph.node[:]
        scope.graph.node.extend(nodes)

    def _int8_matmul(self, scope, node, b, owner, key):
        done = self.done.get((id(owner.graph), key))
        if done is None:
            q, scale = quantize_matrix(b)
            # `W.T.int8` is the int8 of W transposed (a PyTorch Linear's weight, as the MatMul reads it).
            done = (f"{key}.int8", f"{key}.scale")
            owner.graph.initializer.extend([numpy_helper.from_array(q, done[0]),
                                            numpy_helper.from_array(scale, done[1])])
            self.done[(id(owner.graph), key)] = done
        nodes = []
        a = node.input[0]
        if a not in scope.activations:
            n = self._name
            absolute, reduced, rows, row_shape, peak, raw, s, scaled, rounded, shifted, a_q = (
                n("abs"), n("reduced"), n("rows"), n("row_shape"), n("max"), n("raw_scale"), n("scale"),
                n("scaled"), n("round"), n("shift"), n("a_q"))
            reduce = (helper.make_node("ReduceMax", [absolute, SHARED + "axes"], [reduced], keepdims=1)
                      if self.opset >= 18
                      else helper.make_node("ReduceMax", [absolute], [reduced], axes=[-1], keepdims=1))
            # onnxruntime reduces an empty tensor (zero rows: kv_step's idle half) to its own
            # shape, not [..., 1]; the Reshape, a no-op otherwise, gives it the row shape.
            nodes += [helper.make_node("Abs", [a], [absolute]), reduce,
                      helper.make_node("Shape", [a], [rows], end=-1),
                      helper.make_node("Concat", [rows, SHARED + "one"], [row_shape], axis=0),
                      helper.make_node("Reshape", [reduced, row_shape], [peak]),
                      helper.make_node("Mul", [peak, SHARED + "inv127"], [raw]),
                      helper.make_node("Max", [raw, SHARED + "min_scale"], [s]),
                      helper.make_node("Div", [a, s], [scaled]),
                      helper.make_node("Round", [scaled], [rounded]),
                      helper.make_node("Add", [rounded, SHARED + "offset"], [shifted]),
                      helper.make_node("Cast", [shifted], [a_q], to=TensorProto.UINT8)]
            scope.activations[a] = (a_q, s)
        a_q, s = scope.activations[a]
        acc, accf, rows = self._name("acc"), self._name("acc_float"), self._name("row_scaled")
        nodes += [helper.make_node("MatMulInteger", [a_q, done[0], SHARED + "zero_point"], [acc]),
                  helper.make_node("Cast", [acc], [accf], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [accf, s], [rows]),
                  helper.make_node("Mul", [rows, done[1]], [node.output[0]])]
        self.rewritten += 1
        return nodes


def _used_names(graph, used):
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _used_names(attr.g, used)
            for g in attr.graphs:
                _used_names(g, used)
    used.update(o.name for o in graph.output)
    return used


def _drop_unused(graph):
    """Transposes and float weights nothing reads any more, in every graph, until none is left."""
    while True:
        used = _used_names(graph, set())
        removed = _drop_in(graph, used)
        if not removed:
            return


def _drop_in(graph, used):
    removed = 0
    keep = [n for n in graph.node if n.op_type not in ("Transpose", "Constant") or any(o in used for o in n.output)]
    removed += len(graph.node) - len(keep)
    if removed:
        del graph.node[:]
        graph.node.extend(keep)
    # Deleted in place: rebuilding the list would copy every tensor kept (at minDALL-E's size,
    # 1.4 GB of int8 and embeddings, beside the 5 GB of float32 weights still held).
    for i in reversed(range(len(graph.initializer))):
        if graph.initializer[i].name not in used:
            del graph.initializer[i]
            removed += 1
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                removed += _drop_in(attr.g, used)
            for g in attr.graphs:
                removed += _drop_in(g, used)
    return removed


def quantize_model(model):
    """Rewrites `model` in place; -> the number of MatMuls now int8."""
    return Rewriter(model).run()


def _external_files(path):
    model = onnx.load(path, load_external_data=False)
    found = set()

    def visit(graph):
        for t in graph.initializer:
            if t.data_location == TensorProto.EXTERNAL:
                found.update(e.value for e in t.external_data if e.key == "location")
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for g in attr.graphs:
                    visit(g)

    visit(model.graph)
    return found


def _quantize_file(path):
    """Rewrites one graph file, its weights loaded from external data too; -> MatMuls now int8.
    The graph is freed before the next one loads: at minDALL-E's size each of the generator's
    graphs holds all 5 GB of the pack's shared generator.weights once loaded."""
    model = onnx.load(path)
    count = quantize_model(model)
    if model.ByteSize() > INLINE_LIMIT:
        onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=os.path.splitext(os.path.basename(path))[0] + ".weights", size_threshold=1024)
    else:
        onnx.save(model, path)
    return count


def quantize_pack(src, dst, name=None):
    """Writes the int8 copy of the pack in `src` to `dst` (a new folder); -> its manifest."""
    if os.path.exists(dst) and os.listdir(dst):
        raise SystemExit(f"{dst} exists and is not empty")
    with open(os.path.join(src, "manifest.json")) as f:
        doc = json.load(f)
    if doc.get("weights", {}).get("format", "float32") != "float32":
        raise SystemExit(f"{src}: the weights are already {doc['weights']['format']}")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    graphs = []
    for section, key in GRAPHS:
        file = doc.get(section, {}).get("graphs", {}).get(key)
        if file is None:
            continue
        count = _quantize_file(os.path.join(dst, file))
        print(json.dumps({"graph": file, "matmuls_int8": count}), flush=True)
        graphs.append(GRAPH_NAMES[(section, key)])
    source = doc["name"]
    doc["name"] = name or f"{source}-int8"
    named = {doc["clip"]["tokenizer"], *doc["clip"]["graphs"].values()}
    if "generator" in doc:
        named |= {doc["generator"]["tokenizer"], doc["decoder"]["graph"], *doc["generator"]["graphs"].values()}
    if "encoder" in doc:
        # Image completion's encoder stays float32, as the decoder: it runs once per request.
        named.add(doc["encoder"]["graph"])
    needed = set(named)
    for file in named:
        if file.endswith(".onnx"):
            needed |= _external_files(os.path.join(dst, file))
    for file in set(doc["files"]) - needed:
        os.remove(os.path.join(dst, file))
    files = {n: file_entry(os.path.join(dst, n)) for n in sorted(needed)}
    doc.pop("files")
    doc = with_weights(doc, "int8", source=source, graphs=graphs)
    doc["files"] = files
    write_manifest(dst, doc)
    return doc


def main():
    parser = argparse.ArgumentParser(description="Write an int8 copy of a pack (its generator's and CLIP's MatMuls).")
    parser.add_argument("src", help="the pack folder (float32 weights)")
    parser.add_argument("--out", required=True, help="a new folder for the int8 pack")
    parser.add_argument("--name", help="the int8 pack's name (default: SRC's name with -int8)")
    args = parser.parse_args()
    doc = quantize_pack(args.src, args.out, args.name)
    print(json.dumps({"pack": doc["name"], "files": {n: e["bytes"] for n, e in doc["files"].items()}}))


if __name__ == "__main__":
    main()
