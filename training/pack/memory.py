"""What one candidate row of a pack holds while it is generated, read from its graphs.

The service's memory budget divides by these figures (packs/CONTRACT.md, "Memory"):
- `sample_row_bytes`: the generator's step graph at one row and its last position, the values
  alive together at its peak: the key/value cache it is given, the one it returns, and what
  the graph builds in between (each layer's cache apart, read where it lies: about two caches
  in all);
- `decode_image_bytes`: the decoder graph at one image, likewise (its full-resolution feature
  maps dominate: 134 MB for minDALL-E's 256×256 VQGAN decoder).
Each is the peak of a walk over the graph in its node order with every shape inferred, a value
freed after its last reader (the inputs held throughout: the caller owns them); onnxruntime's
planner reuses memory the same way. Weights are not counted: they are the pack's fixed cost.

    python3 -m training.pack.manifest PACK --memory   # writes them into PACK/manifest.json
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

_ITEM_BYTES = {
    TensorProto.FLOAT: 4, TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2, TensorProto.DOUBLE: 8,
    TensorProto.INT64: 8, TensorProto.INT32: 4, TensorProto.INT16: 2, TensorProto.INT8: 1,
    TensorProto.UINT8: 1, TensorProto.BOOL: 1,
}


def _fix_dims(values, dims, graph_path):
    for value in values:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                continue
            size = dims.get(dim.dim_param)
            if size is None:
                raise ValueError(f"{graph_path}: {value.name}'s dimension {dim.dim_param!r} is not given")
            dim.Clear()
            dim.dim_value = size


def _attribute(node, name, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _evaluate(node, values, shapes):
    """The value of a small shape computation (an exporter's Shape → Gather → Concat → Reshape
    chains), or None when it is not one or its inputs are not known yet."""
    op = node.op_type
    if op == "Shape":
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        return np.array(shape[_attribute(node, "start", 0):_attribute(node, "end", len(shape))], dtype=np.int64)
    if op == "Constant":
        tensor = _attribute(node, "value")
        return numpy_helper.to_array(tensor) if tensor is not None else None
    args = [values.get(name) if name else None for name in node.input]
    if op not in _SHAPE_OPS or any(arg is None for arg, name in zip(args, node.input) if name):
        return None
    if op == "Gather":
        return np.take(args[0], args[1], axis=_attribute(node, "axis", 0))
    if op == "Unsqueeze":
        axes = args[1] if len(args) > 1 else _attribute(node, "axes")
        return np.expand_dims(args[0], tuple(int(a) for a in axes))
    if op == "Squeeze":
        axes = args[1] if len(args) > 1 else _attribute(node, "axes")
        return np.squeeze(args[0], None if axes is None else tuple(int(a) for a in axes))
    if op == "Concat":
        return np.concatenate([np.atleast_1d(a) for a in args], axis=_attribute(node, "axis"))
    if op == "Slice":
        data, starts, ends = args[:3]
        axes = args[3] if len(args) > 3 else range(len(starts))
        steps = args[4] if len(args) > 4 else [1] * len(starts)
        index = [slice(None)] * data.ndim
        for axis, begin, stop, step in zip(axes, starts, ends, steps):
            index[int(axis)] = slice(int(begin), int(stop), int(step))
        return data[tuple(index)]
    if op == "Cast":
        return args[0].astype(onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[_attribute(node, "to")])
    if op == "Div" and np.issubdtype(args[0].dtype, np.integer):
        return args[0] // args[1]
    return _SHAPE_OPS[op](*args)


_SHAPE_OPS = {"Gather": None, "Unsqueeze": None, "Squeeze": None, "Concat": None, "Slice": None, "Cast": None,
              "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Equal": np.equal,
              "Where": np.where, "ReduceProd": lambda a, *_: np.prod(a, keepdims=True)}


def _inferred(model):
    """`model`'s graph with every shape inferred: onnx's inference (this onnx's data propagation
    misses some) alternated with folding the small shape computations it could not see through
    into constants, until nothing more folds."""
    while True:
        graph = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True).graph
        shapes = {}
        for value in [*graph.input, *graph.value_info, *graph.output]:
            dims = value.type.tensor_type.shape.dim
            if value.type.tensor_type.HasField("shape") and all(dim.HasField("dim_value") for dim in dims):
                shapes[value.name] = [dim.dim_value for dim in dims]
        values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer
                  if init.data_type == TensorProto.INT64 and init.data_location != TensorProto.EXTERNAL}
        folded = []
        for node in model.graph.node:
            value = _evaluate(node, values, shapes)
            if value is not None and value.size <= _FOLD_LIMIT:
                values[node.output[0]] = np.asarray(value)
                folded.append(node)
        if not folded:
            return graph
        for node in folded:
            model.graph.node.remove(node)
            model.graph.initializer.append(numpy_helper.from_array(values[node.output[0]], node.output[0]))


# Shape computations hold a few numbers; anything larger is the model's own arithmetic.
_FOLD_LIMIT = 64


def value_bytes(graph_path, dims):
    """(the graph with every shape inferred, {value name: bytes} of its inputs and every value its
    nodes make), its inputs' and outputs' named dimensions set from `dims` (the contract names the
    batch `B`, the step's past `P` and `P_next`). Raises when a value's shape cannot be inferred."""
    model = onnx.load(graph_path, load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    _fix_dims([value for value in model.graph.input if value.name not in weights], dims, graph_path)
    _fix_dims(model.graph.output, dims, graph_path)
    graph = _inferred(model)
    weights = {init.name for init in graph.initializer}
    sizes = {}
    inputs = [value for value in graph.input if value.name not in weights]
    for value in [*graph.value_info, *graph.output, *inputs]:
        tensor = value.type.tensor_type
        if not tensor.HasField("shape") or not all(dim.HasField("dim_value") for dim in tensor.shape.dim):
            raise ValueError(f"{graph_path}: the shape of {value.name} could not be inferred")
        count = 1
        for dim in tensor.shape.dim:
            count *= dim.dim_value
        sizes[value.name] = count * _ITEM_BYTES.get(tensor.elem_type, 4)
    missing = [out for node in graph.node for out in node.output if out and out not in sizes]
    if missing:
        raise ValueError(f"{graph_path}: the shapes of {len(missing)} values could not be inferred "
                         f"({missing[0]}, …)")
    return graph, sizes


def peak_live_bytes(graph_path, dims):
    """Peak bytes of the values a graph holds at once when run in node order (`dims` as for
    value_bytes). A value whose shape cannot be inferred raises: a peak that left it out would
    be low."""
    graph, sizes = value_bytes(graph_path, dims)
    weights = {init.name for init in graph.initializer}
    inputs = [value.name for value in graph.input if value.name not in weights]
    # A value is held in a buffer; an alias op's output is its input's buffer seen in another
    # shape (onnxruntime copies nothing), and a buffer is freed after the last reader of any
    # value it holds.
    buffer = {name: name for name in inputs}
    last_use = {name: -1 for name in inputs}
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name in buffer:
                last_use[buffer[name]] = index
        source = node.input[0] if node.input else ""
        for out in node.output:
            if not out:
                continue
            if node.op_type in _ALIASES and source in weights:
                weights.add(out)
            elif node.op_type in _ALIASES and source in buffer:
                buffer[out] = buffer[source]
            else:
                buffer[out] = out
                last_use[out] = index
    # The caller holds the inputs for the whole run (a Loop its carried cache), the outputs after.
    kept = {buffer[name] for name in [*inputs, *(value.name for value in graph.output)]}
    live = sum(sizes[name] for name in inputs)
    peak = live
    for index, node in enumerate(graph.node):
        live += sum(sizes[out] for out in node.output if out and buffer.get(out) == out)
        peak = max(peak, live)
        touched = {buffer[name] for name in [*node.input, *node.output] if name in buffer}
        for name in touched:
            if last_use[name] == index and name not in kept:
                live -= sizes[name]
    return peak


# Ops whose output is their first input's buffer in onnxruntime.
_ALIASES = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}


def memory_figures(pack_dir, doc):
    """The manifest's `memory` section for a generating pack whose graphs are in `pack_dir`."""
    geometry = doc["geometry"]
    positions = geometry["text_length"] + geometry["image_grid"][0] * geometry["image_grid"][1]
    step = os.path.join(pack_dir, doc["generator"]["graphs"]["step"])
    decoder = os.path.join(pack_dir, doc["decoder"]["graph"])
    return {
        # The last step reads every earlier position.
        "sample_row_bytes": peak_live_bytes(step, {"B": 1, "P": positions - 1, "P_next": positions}),
        "decode_image_bytes": peak_live_bytes(decoder, {"B": 1}),
    }


def with_memory(pack_dir, doc):
    """`doc` with its `memory` section measured on the graphs in `pack_dir`, placed before
    `files`; as it is while its graphs are not all there to measure (or it does not generate)."""
    graphs = [doc.get("generator", {}).get("graphs", {}).get("step"), doc.get("decoder", {}).get("graph")]
    if not all(graph and os.path.exists(os.path.join(pack_dir, graph)) for graph in graphs):
        return doc
    figures = memory_figures(pack_dir, doc)
    out = {key: value for key, value in doc.items() if key not in ("memory", "files")}
    out["memory"] = figures
    if "files" in doc:
        out["files"] = doc["files"]
    return out
