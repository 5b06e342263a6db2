"""OpenAI's dVAE decoder (DALL·E 1's image decoder, `decoder.pkl`) rebuilt from its tensors.

`decoder.pkl` is a whole pickled module naming the `dall_e` package's classes; it is read for its
tensors only (training/upstream/safe_pickle.py), never by running that code. The decoder takes a one-hot
[B, 8192, 32, 32] input through a 1×1 convolution: here that convolution is a gather of one
column per code, so the model takes codebook indices [B, 1024] as the pack contract says and never
builds the one-hot tensor. Pixels: the first 3 of the 6 output channels, sigmoid, then
`(x − 0.1) / 0.8` clamped to [0, 1] (dall_e's unmap_pixels), as uint8 NHWC.
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.upstream import safe_pickle

LOGIT_LAPLACE_EPS = 0.1
# What a pickled dall_e Decoder names besides tensors: its own classes and torch.nn's.
STAND_IN_PACKAGES = ("dall_e", "torch.nn")
DALLE1_GRID, DALLE1_CODES, DALLE1_PIXELS = [32, 32], 8192, [256, 256]


class Conv(nn.Module):
    """dall_e.utils.Conv2d's parameters (`w`, `b`), 'same' padding."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)
        self.padding = (w.shape[-1] - 1) // 2

    def forward(self, x):
        return F.conv2d(x, self.w, self.b, padding=self.padding)


class Block(nn.Module):
    def __init__(self, state, prefix, post_gain):
        super().__init__()

        def conv(name):
            return Conv(state[f"{prefix}{name}.w"], state[f"{prefix}{name}.b"])

        self.id_path = conv("id_path") if f"{prefix}id_path.w" in state else nn.Identity()
        self.convs = nn.ModuleList(conv(f"res_path.conv_{i}") for i in range(1, 5))
        self.post_gain = post_gain

    def forward(self, x):
        h = x
        for conv in self.convs:
            h = conv(F.relu(h))
        return self.id_path(x) + self.post_gain * h


class DVAEDecoder(nn.Module):
    """dall_e.decoder.Decoder from its tensors; codebook indices in, uint8 NHWC out."""

    def __init__(self, state):
        super().__init__()
        blocks = sorted({(int(g), int(b)) for g, b in
                         (re.match(r"blocks\.group_(\d+)\.block_(\d+)\.", k).groups() for k in state
                          if re.match(r"blocks\.group_\d+\.block_\d+\.", k))})
        groups = sorted({g for g, _ in blocks})
        post_gain = 1 / (len(blocks) ** 2)  # dall_e: 1 / n_layers², n_layers = groups × blocks per group
        w = state["blocks.input.w"]
        # conv1x1(one_hot(code)) = w[:, code] + b: one row per code.
        self.codes = nn.Parameter(w[:, :, 0, 0].t().contiguous() + state["blocks.input.b"])
        self.groups = nn.ModuleList(
            nn.ModuleList(Block(state, f"blocks.group_{g}.block_{b}.", post_gain) for gg, b in blocks if gg == g)
            for g in groups)
        self.output = Conv(state["blocks.output.conv.w"], state["blocks.output.conv.b"])
        self.grid = DALLE1_GRID[0]  # tokens per side; the graph is exported for one grid

    @property
    def vocab_size(self):
        return self.codes.shape[0]

    def forward(self, image_tokens):
        x = F.embedding(image_tokens, self.codes)  # [B, N, C]
        x = x.transpose(1, 2).reshape(image_tokens.shape[0], -1, self.grid, self.grid)
        for i, group in enumerate(self.groups):
            for block in group:
                x = block(x)
            if i < len(self.groups) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.output(F.relu(x))
        pixels = torch.sigmoid(x[:, :3])
        pixels = ((pixels - LOGIT_LAPLACE_EPS) / (1 - 2 * LOGIT_LAPLACE_EPS)).clamp(0, 1)
        return (pixels * 255.0).round().clamp(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1)


def load_decoder(path):
    state = safe_pickle.load_state_dict(path, STAND_IN_PACKAGES)
    missing = [k for k in ("blocks.input.w", "blocks.input.b", "blocks.output.conv.w") if k not in state]
    if missing:
        raise SystemExit(f"{path}: not a dall_e Decoder (no {', '.join(missing)})")
    return DVAEDecoder(state).eval()
