"""OpenAI's dVAE (DALL·E 1's image tokenizer, `decoder.pkl` and `encoder.pkl`) rebuilt from its tensors.

Each file is a whole pickled module naming the `dall_e` package's classes; it is read for its
tensors only (training/upstream/safe_pickle.py), never by running that code. The decoder takes a one-hot
[B, 8192, 32, 32] input through a 1×1 convolution: here that convolution is a gather of one
column per code, so the model takes codebook indices [B, 1024] as the pack contract says and never
builds the one-hot tensor. Pixels: the first 3 of the 6 output channels, sigmoid, then
`(x − 0.1) / 0.8` clamped to [0, 1] (dall_e's unmap_pixels), as uint8 NHWC.

The encoder takes uint8 NHWC pixels, maps them as dall_e's `map_pixels` does (`0.8 x + 0.1` on the
0–1 scale), and gives the argmax of its logits over the codebook per cell, as DALL·E 1's usage
does (`argmax(enc(map_pixels(x)), axis=1)`), flattened row-major: [B, 1024].
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


def _blocks(state):
    """(group, block) numbers of dall_e's `blocks.group_G.block_B.` names, sorted."""
    return sorted({(int(g), int(b)) for g, b in
                   (re.match(r"blocks\.group_(\d+)\.block_(\d+)\.", k).groups() for k in state
                    if re.match(r"blocks\.group_\d+\.block_\d+\.", k))})


class Block(nn.Module):
    """dall_e's DecoderBlock and EncoderBlock alike: their kernels differ, read from the tensors."""

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
        blocks = _blocks(state)
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


class DVAEEncoder(nn.Module):
    """dall_e.encoder.Encoder from its tensors; uint8 NHWC in, codebook indices [B, N] out."""

    def __init__(self, state, image_size=DALLE1_PIXELS[0]):
        super().__init__()
        blocks = _blocks(state)
        groups = sorted({g for g, _ in blocks})
        post_gain = 1 / (len(blocks) ** 2)  # as the decoder's
        self.input = Conv(state["blocks.input.w"], state["blocks.input.b"])
        self.groups = nn.ModuleList(
            nn.ModuleList(Block(state, f"blocks.group_{g}.block_{b}.", post_gain) for gg, b in blocks if gg == g)
            for g in groups)
        self.output = Conv(state["blocks.output.conv.w"], state["blocks.output.conv.b"])
        # Every group but the last halves the size (max pooling): 256 px -> a 32×32 grid.
        self.image_size, self.grid = image_size, image_size // 2 ** (len(groups) - 1)

    @property
    def vocab_size(self):
        return self.output.w.shape[0]

    def logits(self, pixels):
        """uint8 [B, H, W, 3] -> logits over the codebook [B, K, H/8, W/8]."""
        x = pixels.permute(0, 3, 1, 2).to(self.input.w.dtype) / 255.0
        x = (1 - 2 * LOGIT_LAPLACE_EPS) * x + LOGIT_LAPLACE_EPS  # dall_e's map_pixels
        x = self.input(x)
        for i, group in enumerate(self.groups):
            for block in group:
                x = block(x)
            if i < len(self.groups) - 1:
                x = F.max_pool2d(x, 2)
        return self.output(F.relu(x))

    def forward(self, pixels):
        return self.logits(pixels).argmax(1).reshape(pixels.shape[0], self.grid ** 2)


def _dall_e_state(path, kind):
    """The tensors of a dall_e `kind` ("Encoder" or "Decoder") pickle; the other kind is refused
    by its shapes (both name `blocks.input` and `blocks.output.conv`)."""
    state = safe_pickle.load_state_dict(path, STAND_IN_PACKAGES)
    missing = [k for k in ("blocks.input.w", "blocks.input.b", "blocks.output.conv.w") if k not in state]
    if missing:
        raise SystemExit(f"{path}: not a dall_e {kind} (no {', '.join(missing)})")
    # An encoder's input convolution reads 3 pixel channels (7×7); a decoder's reads one channel per code (1×1).
    is_encoder = state["blocks.input.w"].shape[1] == 3 and state["blocks.input.w"].shape[-1] > 1
    if is_encoder != (kind == "Encoder"):
        found = "Encoder (encoder.pkl)" if is_encoder else "Decoder (decoder.pkl)"
        raise SystemExit(f"{path}: a dall_e {found}, not a {kind}")
    return state


def load_decoder(path):
    return DVAEDecoder(_dall_e_state(path, "Decoder")).eval()


def load_encoder(path, image_size=DALLE1_PIXELS[0]):
    return DVAEEncoder(_dall_e_state(path, "Encoder"), image_size).eval()
