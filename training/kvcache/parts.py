"""A layer's key/value cache in parts [(k, v), ...] along the positions, each [B, H, P_i, D]: the
contract's step holds one part, sample_loop's Loop two (the text's, read from outside the Loop,
and the part the image grows; training/export/sample_loop.py). Attention reads each part where
it lies: concatenating them first would copy the cache on every step."""
import torch


def cached_positions(parts):
    """P [1], the positions a layer's cache parts [(k, v), ...] hold, read from their shapes."""
    total = None
    for past_k, _ in parts:
        length = torch._shape_as_tensor(past_k)[2:3]
        total = length if total is None else total + length
    if total.device != parts[0][0].device:  # on a GPU; exported on the CPU, so no op in the graph
        total = total.to(parts[0][0].device)
    return total


def weights_over_parts(weights, parts):
    """Attention weights [B, H, 1, P + 1] applied to the cache's values in `parts` [(k, v), ...]
    (the last weight is the new position's own, left to the caller)."""
    y, start = None, 0
    for i, (past_k, past_v) in enumerate(parts):
        end = -1 if i == len(parts) - 1 else start + past_k.shape[2]
        part = weights[..., start:end] @ past_v
        y, start = (part if y is None else y + part), end
    return y


def step_on_stacked(step_layers, image_token, past_kv):
    """The contract's step from a generator's `step_layers`: past_kv [L, 2, B, H, P, D] taken apart
    once (one Split in onnxruntime), each layer's cache one part, and written once, grown by the
    new position (no per-layer concatenation) -> (logits [B, K], present [L, 2, B, H, P + 1, D])."""
    caches = past_kv.flatten(0, 1).unbind(0)
    layers = [[(caches[2 * i], caches[2 * i + 1])] for i in range(past_kv.shape[0])]
    logits, new = step_layers(image_token, layers)
    return logits, torch.cat([past_kv, torch.stack([torch.stack(kv) for kv in new])], 4)
