"""The int8 weight format of a pack (packs/CONTRACT.md, "Weight formats"), its arithmetic once.

A matrix B [K, N] that a MatMul multiplies by is stored as `B.int8` (int8 [K, N]) and
`B.scale` (float32 [N], one per output column): B ≈ B.int8 × B.scale, symmetric, no zero point.
Activations are quantized at run time, each row (the last axis) on its own: s = max|a| × (1/127),
a_q = round(a / s) in −127…127, carried as uint8 with zero point 128 so that onnxruntime's u8×s8
kernels (VNNI, AMX) run it. Per row, not per tensor: a candidate's result never depends on
the other rows of its batch, so a generation's images stay the same alone or mixed, and
prefill (all text positions at once) and step (one position) quantize each position alike.

The graph rewrite is training/export/quantize.py; `Int8Linear` and `int8_logits` are the same
arithmetic in PyTorch, for the evaluation of an int8 pack (training.eval.evaluate).
"""
import numpy as np
import torch
from torch import nn

INV_127 = np.float32(1 / 127)
# The smallest row scale: an all-zero row quantizes to zeros instead of dividing by zero.
MIN_SCALE = np.float32(1e-30)


def quantize_matrix(b):
    """B [K, N] float32 -> (int8 [K, N], float32 scales [N]), per output column."""
    b = np.asarray(b, dtype=np.float32)
    scale = np.abs(b).max(axis=0) * INV_127
    scale = np.where(scale > 0, scale, np.float32(1)).astype(np.float32)
    q = np.clip(np.round(b / scale), -127, 127).astype(np.int8)
    return q, scale


def quantize_rows(x):
    """The activations as the graph quantizes them: (integer values as float, row scales)."""
    s = torch.clamp(x.abs().amax(-1, keepdim=True) * float(INV_127), min=float(MIN_SCALE))
    return torch.round(x / s), s


def int8_matmul(x, q, scale):
    """x [..., K] times the int8 matrix q [K, N] (as float) with its column scales [N]."""
    xq, s = quantize_rows(x)
    # Integers below 2^24 in magnitude: float32 sums them exactly, as the graph's int32 does.
    return (xq @ q) * s * scale


class Int8Linear(nn.Module):
    """nn.Linear with its weight as an int8 pack holds it, run as the int8 graph runs it."""

    def __init__(self, q, scale, bias):
        super().__init__()
        self.register_buffer("q", torch.from_numpy(q.astype(np.float32)))
        self.register_buffer("scale", torch.from_numpy(scale))
        self.bias = bias

    def forward(self, x):
        y = int8_matmul(x, self.q, self.scale)
        return y if self.bias is None else y + self.bias


def int8_logits(generator, q, scale):
    """The generator's tied head as its int8 graph runs it (the embedding itself stays float)."""
    qt, st = torch.from_numpy(q.astype(np.float32)), torch.from_numpy(scale)

    def image_logits(h):
        return int8_matmul(generator.ln_final(h), qt, st) + generator.head_bias

    return image_logits

