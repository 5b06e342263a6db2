"""A layer's key/value cache in parts [(k, v), ...] along the positions, each [B, H, P_i, D]: the
contract's step holds one part, sample_loop's Loop two (the text's, read from outside the Loop,
and the part the image grows; training/export/sample_loop.py), kv_step one buffer the caller
holds, of which only the first positions are filled: the part (k, v, length), length [1] the
positions filled. Attention reads each part where it lies: concatenating them first would copy
the cache on every step."""
import torch

# What a score past a buffer's filled positions becomes: its softmax weight is exactly 0.
UNFILLED = float("-inf")


def part_positions(part):
    """[1]: the positions a part holds (a buffer: those filled)."""
    if len(part) == 3:
        return part[2]
    return torch._shape_as_tensor(part[0])[2:3]


def cached_positions(parts):
    """P [1], the positions a layer's cache parts [(k, v), ...] hold."""
    total = None
    for part in parts:
        length = part_positions(part)
        total = length if total is None else total + length
    if total.device != parts[0][0].device:  # on a GPU; exported on the CPU, so no op in the graph
        total = total.to(parts[0][0].device)
    return total


def part_scores(q, parts, scale=None):
    """q [B, H, 1, D] against each part's keys -> [B, H, 1, P_i] per part; a buffer's positions
    past those filled score UNFILLED (their keys are whatever the buffer holds there)."""
    scores = []
    for part in parts:
        s = q @ part[0].transpose(-1, -2)
        if scale is not None:
            s = s * scale
        if len(part) == 3:
            filled = torch.arange(part[0].shape[2], device=q.device) < part[2]
            s = s.masked_fill(~filled, UNFILLED)
        scores.append(s)
    return scores


def weights_over_parts(weights, parts):
    """Attention weights [B, H, 1, P + 1] applied to the cache's values in `parts` [(k, v), ...]
    (the last weight is the new position's own, left to the caller)."""
    y, start = None, 0
    for i, part in enumerate(parts):
        end = -1 if i == len(parts) - 1 else start + part[0].shape[2]
        piece = weights[..., start:end] @ part[1]
        y, start = (piece if y is None else y + piece), end
    return y


def step_on_stacked(step_layers, image_token, past_kv):
    """The contract's step from a generator's `step_layers`: past_kv [L, 2, B, H, P, D] taken apart
    once (one Split in onnxruntime), each layer's cache one part, and written once, grown by the
    new position (no per-layer concatenation) -> (logits [B, K], present [L, 2, B, H, P + 1, D])."""
    caches = past_kv.flatten(0, 1).unbind(0)
    layers = [[(caches[2 * i], caches[2 * i + 1])] for i in range(past_kv.shape[0])]
    logits, new = step_layers(image_token, layers)
    return logits, torch.cat([past_kv, torch.stack([torch.stack(kv) for kv in new])], 4)
