"""Store each constant matrix in the layout its consumer reads, so that onnxruntime folds nothing.

torch exports a Linear as `MatMul(x, Transpose(W))` (or `Gemm(x, W, transB=1)`), W as PyTorch keeps
it, [out, in]. onnxruntime folds that Transpose into a new [in, out] copy at session creation, once
per graph: in `sample_loop` once in the main graph (prefill) and once more in the Loop body (step),
each copy beside the initializer both share, so a session held about twice the weights (README, "At
full size on this machine"). Here W is stored transposed instead, as the initializer `W.T` ([in,
out]) that the MatMul reads directly (a Gemm loses its transB); the Transpose node goes, and so does
W unless something else reads it (a head tied to an embedding table keeps W for its Gather and gets
W.T beside it). sample_loop.build_model runs this on prefill and the Loop body's step before it
shares their initializers, so the main graph and the Loop body read one `W.T`. An older pack
gets the layout by exporting its generator graphs again (training.export.graphs).

The name records the layout: `P.T` is parameter P transposed (training/pack/weights.py turns it
back; an int8 pack's `P.T.int8` and `P.T.scale` follow from it, training/export/quantize.py).
An initializer in external data is transposed one tensor at a time into a file beside its own
(`<location>.T`), written once for every graph that points at the same bytes.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from training.pack.weights import TRANSPOSED


def parameter_of(name):
    """(parameter name, stored transposed?) of an initializer's name."""
    if name.endswith(TRANSPOSED):
        return name[:-len(TRANSPOSED)], True
    return name, False


def _subgraphs(node):
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        yield from attr.graphs


def _reads(graph, counts):
    """{value name: how many node inputs read it} over `graph` and its subgraphs, outputs included."""
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
        for sub in _subgraphs(node):
            _reads(sub, counts)
    for value in graph.output:
        counts[value.name] = counts.get(value.name, 0) + 1
    return counts


def _rename_inputs(graph, renames):
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        for sub in _subgraphs(node):
            _rename_inputs(sub, renames)


def _is_matrix_transpose(node, inits):
    if node.op_type != "Transpose" or node.input[0] not in inits or len(inits[node.input[0]].dims) != 2:
        return False
    perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), [1, 0])
    return perm == [1, 0]


def _transposed(init, base_dir):
    """A new TensorProto `init.name + .T` holding init's matrix transposed."""
    name = init.name + TRANSPOSED
    if init.data_location != TensorProto.EXTERNAL:
        out = numpy_helper.from_array(np.ascontiguousarray(numpy_helper.to_array(init).T), name)
    else:
        entries = {e.key: e.value for e in init.external_data}
        location = entries["location"] + TRANSPOSED
        path = os.path.join(base_dir, location)
        if not os.path.exists(path):
            matrix = numpy_helper.to_array(init, base_dir)
            with open(path, "wb") as f:
                f.write(np.ascontiguousarray(matrix.T).tobytes())
        out = TensorProto()
        out.name, out.data_type = name, init.data_type
        out.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", str(os.path.getsize(path)))):
            entry = out.external_data.add()
            entry.key, entry.value = key, value
    del out.dims[:]
    out.dims.extend(reversed(init.dims))
    out.doc_string = f"{init.name} transposed ([in, out], as the MatMul reads it)"
    return out


def _want(name, inits, wanted):
    """Notes that initializer `name` is wanted transposed; -> the transposed one's name."""
    if name + TRANSPOSED in inits:
        raise ValueError(f"{name}{TRANSPOSED} is already an initializer")
    wanted.append(name)
    return name + TRANSPOSED


def store_as_consumed(model, base_dir=None):
    """Rewrites `model`'s top-level graph in place (see the module's doc); -> how many matrices
    it now stores transposed. Idempotent: a graph already rewritten has nothing left to do.
    External data is read from and written under `base_dir`."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    outputs = {v.name for v in graph.output}
    wanted, renames, nodes = [], {}, []
    for node in graph.node:
        if _is_matrix_transpose(node, inits) and node.output[0] not in outputs:
            renames[node.output[0]] = _want(node.input[0], inits, wanted)
            continue
        trans_b = next((a for a in node.attribute if a.name == "transB"), None)
        if (node.op_type == "Gemm" and trans_b is not None and trans_b.i == 1 and node.input[1] in inits
                and len(inits[node.input[1]].dims) == 2):
            node.input[1] = _want(node.input[1], inits, wanted)
            node.attribute.remove(trans_b)
        nodes.append(node)
    if not wanted:
        return 0
    del graph.node[:]
    graph.node.extend(nodes)
    _rename_inputs(graph, renames)
    reads = _reads(graph, {})
    wanted = set(wanted)
    kept = []
    for init in graph.initializer:
        if init.name in wanted:
            transposed = _transposed(init, base_dir)
            # W stays only where something still reads it as it is (a tied embedding's Gather).
            kept += [init, transposed] if reads.get(init.name) else [transposed]
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return len(wanted)


def rewrite_files(paths):
    """store_as_consumed on graph files in place (their weights inside them); -> matrices per file."""
    counts = {}
    for path in paths:
        model = onnx.load(path, load_external_data=False)
        if any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer):
            raise SystemExit(f"{path} keeps its weights in external data: export the pack again instead")
        counts[path] = store_as_consumed(model)
        if counts[path]:
            onnx.save(model, path)
    return counts
