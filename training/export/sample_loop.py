"""Build the contract's `sample_loop` graph: prefill, then an ONNX Loop around a step graph.

The Loop's step is not the contract's `step` but the same computation with each layer's cache
in parts (training.export.graphs.LoopStep): the text's, read from outside the Loop, and the
part the image grows, carried per layer. A step then copies only that part once (the grown
cache's Concat), where a stacked [L, 2, B, H, P, D] cache is taken apart and written again
whole on every step. So the graph is built from the generator's modules, not from a pack's
files: `python3 -m training.export.graphs PACK` builds it again.

Each iteration applies the contract's sampling rule to the step's logits with that token's
uniform, so the KV cache stays inside the execution provider for the whole image. A token the
row keeps (`keep` >= 0 at its position) replaces the sampled one before the next step reads it,
so what follows conditions on it; its uniform is drawn and left unused, so every other
position reads the uniform it always did.
Weights shared by prefill and the Loop's step are stored once (matched by content). Graphs may keep
their weights in external data (over 2 GB): their bytes are read one tensor at a time.
"""
import hashlib
import os

import onnx
from onnx import TensorProto, helper, numpy_helper

from training.export import weight_layout

SAMPLING_INPUTS = ["top_k", "temperature", "top_p"]


def _rename_graph(graph, prefix, input_map, weight_names):
    """Copy a graph's nodes with every value name prefixed, inputs mapped, weights shared."""
    def name(value):
        if value == "":
            return value
        if value in input_map:
            return input_map[value]
        if value in weight_names:
            return weight_names[value]
        return prefix + value

    nodes = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = prefix + (node.name or node.op_type)
        copy.input[:] = [name(v) for v in node.input]
        copy.output[:] = [name(v) for v in node.output]
        nodes.append(copy)
    outputs = {o.name: name(o.name) for o in graph.output}
    return nodes, outputs


def external_ref(init):
    """(location, offset, length) of an initializer kept in external data, else None."""
    if init.data_location != TensorProto.EXTERNAL:
        return None
    entries = {e.key: e.value for e in init.external_data}
    return entries["location"], int(entries.get("offset", 0)), int(entries.get("length", -1))


def tensor_bytes(init, base_dir=None):
    """An initializer's bytes; external data is read from its file under `base_dir`."""
    ref = external_ref(init)
    if ref is None:
        return init.raw_data or numpy_helper.to_array(init).tobytes()
    location, offset, length = ref
    with open(os.path.join(base_dir, location), "rb") as f:
        f.seek(offset)
        return f.read(length)


def set_external(init, location, offset, length):
    """Points `init` at `length` bytes of `location` from `offset`, dropping its own data."""
    dims, dtype, name = list(init.dims), init.data_type, init.name
    init.Clear()
    init.name, init.data_type = name, dtype
    init.dims.extend(dims)
    init.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = init.external_data.add()
        entry.key, entry.value = key, value


def content_key(init, raw):
    """One key per distinct tensor: its type, shape and the digest of its bytes (`raw`)."""
    return (init.data_type, tuple(init.dims), hashlib.sha256(raw).hexdigest())


def _shared_weights(graphs, prefixes, base_dir):
    """Map each graph's initializer names to one name per distinct tensor content."""
    by_content, initializers, maps = {}, [], []
    for graph, prefix in zip(graphs, prefixes):
        names = {}
        for init in graph.initializer:
            key = content_key(init, tensor_bytes(init, base_dir))
            if key not in by_content:
                shared = onnx.TensorProto()
                shared.CopyFrom(init)
                shared.name = "w/" + prefix + init.name
                by_content[key] = shared.name
                initializers.append(shared)
            names[init.name] = by_content[key]
        maps.append(names)
    return initializers, maps


def _const(name, value, dtype=TensorProto.INT64, dims=None):
    dims = [] if dims is None else dims
    values = value if isinstance(value, list) else [value]
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "_value", dtype, dims, values))


def sampling_nodes(prefix, logits, uniform, token):
    """The contract's sampling rule, per row: logits [B, K], uniform [B] -> token [B, 1].

    ONNX TopK takes one k, so it takes the batch's largest and masks each row to its own
    top_k before the softmax; temperature and top_p are [B] too, so rows of different jobs
    share one run.
    """
    p = prefix
    return [
        _const(p + "axes1", [1], dims=[1]),
        helper.make_node("Unsqueeze", ["temperature", p + "axes1"], [p + "temperature_col"]),
        helper.make_node("Unsqueeze", ["top_k", p + "axes1"], [p + "top_k_col"]),
        helper.make_node("Unsqueeze", ["top_p", p + "axes1"], [p + "top_p_col"]),
        helper.make_node("Div", [logits, p + "temperature_col"], [p + "scaled"]),
        helper.make_node("ReduceMax", ["top_k"], [p + "k_max"], keepdims=1),
        helper.make_node("TopK", [p + "scaled", p + "k_max"], [p + "values", p + "indices"],
                         axis=-1, largest=1, sorted=1),
        _const(p + "zero_int", 0),
        _const(p + "one_step", 1),
        helper.make_node("Squeeze", [p + "k_max"], [p + "k_max_scalar"]),
        helper.make_node("Range", [p + "zero_int", p + "k_max_scalar", p + "one_step"], [p + "positions"]),
        helper.make_node("Less", [p + "positions", p + "top_k_col"], [p + "in_k"]),
        _const(p + "minus_inf", float("-inf"), TensorProto.FLOAT),
        helper.make_node("Where", [p + "in_k", p + "values", p + "minus_inf"], [p + "values_k"]),
        helper.make_node("Softmax", [p + "values_k"], [p + "softmax"], axis=-1),
        _const(p + "zero", 0.0, TensorProto.FLOAT),
        helper.make_node("Where", [p + "in_k", p + "softmax", p + "zero"], [p + "probs"]),
        _const(p + "axis1", 1),
        helper.make_node("CumSum", [p + "probs", p + "axis1"], [p + "before"], exclusive=1),
        helper.make_node("Less", [p + "before", p + "top_p_col"], [p + "in_nucleus"]),
        _const(p + "one", 1.0, TensorProto.FLOAT, [1]),
        helper.make_node("GreaterOrEqual", [p + "top_p_col", p + "one"], [p + "no_nucleus"]),
        helper.make_node("Or", [p + "in_nucleus", p + "no_nucleus"], [p + "keep"]),
        helper.make_node("Where", [p + "keep", p + "probs", p + "zero"], [p + "kept"]),
        helper.make_node("CumSum", [p + "kept", p + "axis1"], [p + "cumulative"]),
        _const(p + "last", -1),
        helper.make_node("Gather", [p + "cumulative", p + "last"], [p + "total"], axis=1),
        helper.make_node("Mul", [uniform, p + "total"], [p + "threshold_flat"]),
        helper.make_node("Unsqueeze", [p + "threshold_flat", p + "axes1"], [p + "threshold"]),
        # cumulative is non-decreasing (flat past the row's own k), so the first j with
        # c_j > threshold is the count of positions with c_j <= threshold; Min keeps the
        # row's last position against rounding.
        helper.make_node("LessOrEqual", [p + "cumulative", p + "threshold"], [p + "below"]),
        helper.make_node("Cast", [p + "below"], [p + "below_int"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", [p + "below_int", p + "axes1"], [p + "count"], keepdims=1),
        _const(p + "one_int", 1, dims=[1]),
        helper.make_node("Sub", [p + "top_k_col", p + "one_int"], [p + "last_position"]),
        helper.make_node("Min", [p + "count", p + "last_position"], [p + "position"]),
        helper.make_node("GatherElements", [p + "indices", p + "position"], [token], axis=1),
    ]


def forced_nodes(prefix, sampled, position, token):
    """token [B, 1] = keep[:, position] where that is a code (>= 0), else `sampled` [B, 1]."""
    p = prefix
    return [
        helper.make_node("Gather", ["keep", position], [p + "kept"], axis=1),
        _const(p + "sample_here", 0),
        helper.make_node("GreaterOrEqual", [p + "kept", p + "sample_here"], [p + "is_kept"]),
        helper.make_node("Where", [p + "is_kept", p + "kept", sampled], [token]),
    ]


def loop_step_names(layers):
    """(inputs, outputs) of the Loop body's step graph (training.export.graphs.LoopStep): the
    token, each layer's text keys and values (all but the last text position), then its grown
    keys and values; logits and each layer's grown keys and values, a position longer."""
    def per_layer(prefix):
        return [f"{prefix}_{kv}_{layer}" for layer in range(layers) for kv in ("k", "v")]
    return ["image_token"] + per_layer("text") + per_layer("past"), ["logits"] + per_layer("present")


def _loop_body(body_graph, weight_names, layers):
    inputs, outputs = loop_step_names(layers)
    carried = [f"carried_{name}" for name in inputs[1 + 2 * layers:]]
    # The text parts are the main graph's values, read from the outer scope; the rest is carried.
    input_map = {"image_token": "token_in", **{name: name for name in inputs[1:1 + 2 * layers]},
                 **dict(zip(inputs[1 + 2 * layers:], carried))}
    step_nodes, step_out = _rename_graph(body_graph, "step/", input_map, weight_names)
    grown = [f"grown_{name}" for name in outputs[1:]]
    nodes = step_nodes + [
        _const("uniform_offset", 1),
        helper.make_node("Add", ["iteration", "uniform_offset"], ["uniform_index"]),
        helper.make_node("Gather", ["uniforms", "uniform_index"], ["uniform"], axis=1),
        *sampling_nodes("sample/", step_out["logits"], "uniform", "sampled_out"),
        _const("keep_axes", [0], dims=[1]),
        helper.make_node("Unsqueeze", ["uniform_index", "keep_axes"], ["keep_index"]),
        *forced_nodes("force/", "sampled_out", "keep_index", "token_out"),
        helper.make_node("Identity", ["condition_in"], ["condition_out"]),
        *(helper.make_node("Identity", [step_out[name]], [out]) for name, out in zip(outputs[1:], grown)),
        helper.make_node("Identity", ["token_out"], ["token_scan"]),
    ]
    vi = helper.make_tensor_value_info
    body_inputs = ([vi("iteration", TensorProto.INT64, []), vi("condition_in", TensorProto.BOOL, [])]
                   + [vi(name, TensorProto.FLOAT, None) for name in carried]
                   + [vi("token_in", TensorProto.INT64, None)])
    body_outputs = ([vi("condition_out", TensorProto.BOOL, [])]
                    + [vi(name, TensorProto.FLOAT, None) for name in grown]
                    + [vi("token_out", TensorProto.INT64, None), vi("token_scan", TensorProto.INT64, None)])
    return helper.make_graph(nodes, "sample_step", body_inputs, body_outputs)


def _cache_parts(present_kv, layers, text_length):
    """Nodes that take the prefill's present_kv [L, 2, B, H, T, D] apart, once per image: each
    layer's keys and values [B, H, ., D], split at the last text position (loop_step_names)."""
    nodes = [_const("text_split", [text_length - 1, 1], dims=[2]),
             helper.make_node("Split", [present_kv, "text_split"], ["kv_text", "kv_last"], axis=4)]
    for layer in range(layers):
        nodes.append(_const(f"layer_{layer}", layer))
        for source, part in (("kv_text", "text"), ("kv_last", "past")):
            pair = f"{source}_{layer}"
            nodes.append(helper.make_node("Gather", [source, f"layer_{layer}"], [pair], axis=0))
            nodes += [helper.make_node("Gather", [pair, f"kv_index_{j}"], [f"{part}_{kv}_{layer}"], axis=0)
                      for j, kv in enumerate(("k", "v"))]
    return [_const("kv_index_0", 0), _const("kv_index_1", 1)] + nodes


def build(prefill_path, body_path, image_tokens, out_path):
    model = build_model(onnx.load(prefill_path), onnx.load(body_path), image_tokens)
    onnx.checker.check_model(model)
    onnx.save(model, out_path)


def build_model(prefill_model, body_model, image_tokens, base_dir=None):
    """The sample_loop ModelProto from the prefill's and the Loop body's (training.export.graphs
    .LoopStep) graphs, in memory, so that a caller can store weights outside the graphs before
    saving. Their external data, if any, is under `base_dir`, and the loop's initializers point
    at the same files."""
    for part in (prefill_model, body_model):  # rewritten in place: one initializer per matrix, no Transpose
        weight_layout.store_as_consumed(part, base_dir)
    prefill, body = prefill_model.graph, body_model.graph
    layers = (len(body.input) - 1) // 4
    text_length = prefill.input[0].type.tensor_type.shape.dim[1].dim_value
    initializers, (prefill_names, body_names) = _shared_weights([prefill, body], ["prefill/", "step/"], base_dir)
    prefill_nodes, prefill_out = _rename_graph(prefill, "prefill/", {"text_tokens": "text_tokens"}, prefill_names)
    body_inputs, _ = loop_step_names(layers)
    loop_body = _loop_body(body, body_names, layers)
    nodes = prefill_nodes + _cache_parts(prefill_out["present_kv"], layers, text_length) + [
        _const("first", 0),
        helper.make_node("Gather", ["uniforms", "first"], ["uniform_0"], axis=1),
        *sampling_nodes("sample0/", prefill_out["logits"], "uniform_0", "sampled_0"),
        _const("first_column", [0], dims=[1]),
        *forced_nodes("force0/", "sampled_0", "first_column", "token_0"),
        _const("steps", image_tokens - 1),
        _const("keep_going", True, TensorProto.BOOL),
        helper.make_node("Loop", ["steps", "keep_going", *body_inputs[1 + 2 * layers:], "token_0"],
                         [*(f"final_{name}" for name in body_inputs[1 + 2 * layers:]),
                          "token_final", "tokens_scanned"], body=loop_body),
        _const("scan_axes", [2], dims=[1]),
        helper.make_node("Squeeze", ["tokens_scanned", "scan_axes"], ["tokens_by_step"]),
        helper.make_node("Transpose", ["tokens_by_step"], ["tokens_rest"], perm=[1, 0]),
        helper.make_node("Concat", ["token_0", "tokens_rest"], ["image_tokens"], axis=1),
    ]
    vi = helper.make_tensor_value_info
    inputs = [vi("text_tokens", TensorProto.INT64, ["B", text_length]),
              vi("uniforms", TensorProto.FLOAT, ["B", image_tokens]),
              vi("top_k", TensorProto.INT64, ["B"]),
              vi("temperature", TensorProto.FLOAT, ["B"]),
              vi("top_p", TensorProto.FLOAT, ["B"]),
              vi("keep", TensorProto.INT64, ["B", image_tokens])]
    outputs = [vi("image_tokens", TensorProto.INT64, ["B", image_tokens])]
    graph = helper.make_graph(nodes, "sample_loop", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="dalle-serve-training")
    model.ir_version = 8
    return model
