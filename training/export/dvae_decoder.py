"""Export OpenAI's dVAE decoder (DALL·E 1's image decoder, `decoder.pkl`) as a pack's decoder graph.

    /usr/bin/python3 -m training.export.dvae_decoder --checkpoint decoder.pkl --out decoder.onnx
    /usr/bin/python3 -m training.export.dvae_decoder --checkpoint decoder.pkl \\
        --base packs/micro-dalle1 --out packs/micro-dalle1-dvae

`decoder.pkl` is a whole pickled module naming the `dall_e` package's classes; it is read for its
tensors only (training/upstream/safe_pickle.py), never by running that code. The decoder takes a one-hot
[B, 8192, 32, 32] input through a 1×1 convolution: here that convolution is a gather of one
column per code, so the graph takes codebook indices [B, 1024] as the contract says and never
builds the one-hot tensor. Pixels: the first 3 of the 6 output channels, sigmoid, then
`(x − 0.1) / 0.8` clamped to [0, 1] (dall_e's unmap_pixels), as uint8 NHWC.

With `--base`, the new pack keeps the base pack's generator and CLIP and takes this decoder: the
base must have DALL·E 1's image geometry (32×32 grid, 8,192 codes, 256×256 pixels), as
`packs/micro-dalle1` has.
"""
import argparse
import json
import os
import re
import shutil

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.export.graphs import OPSET, torchscript_exporter
from training.pack.manifest import GRAPH_FILES, SCHEMA_VERSION, file_entry, write_manifest
from training.upstream import safe_pickle

LOGIT_LAPLACE_EPS = 0.1
LICENSE = "dVAE decoder: Modified MIT (OpenAI)"
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
        conv = lambda name: Conv(state[f"{prefix}{name}.w"], state[f"{prefix}{name}.b"])
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


def export_graph(model, path):
    tokens = torch.zeros(2, model.grid ** 2, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(model, (tokens,), path, input_names=["image_tokens"], output_names=["pixels"],
                          dynamic_axes={"image_tokens": {0: "B"}, "pixels": {0: "B"}}, opset_version=OPSET,
                          **torchscript_exporter())


def onto_base(model, base, out):
    """A pack at `out`: `base` with this decoder in place of its own."""
    with open(os.path.join(base, "manifest.json")) as f:
        manifest = json.load(f)
    g = manifest.get("geometry")
    if g is None or (g["image_grid"], g["codebook_size"], g["image_size"]) != (DALLE1_GRID, model.vocab_size, DALLE1_PIXELS):
        raise SystemExit(f"{base}: the dVAE decoder needs a generator on DALL·E 1's geometry (grid {DALLE1_GRID}, "
                         f"{model.vocab_size} codes, {DALLE1_PIXELS} pixels)")
    os.makedirs(out)
    for name in manifest["files"]:
        if name != manifest["decoder"]["graph"]:
            shutil.copyfile(os.path.join(base, name), os.path.join(out, name))
    del manifest["files"][manifest["decoder"]["graph"]]
    manifest["decoder"]["graph"] = GRAPH_FILES["decoder"]
    export_graph(model, os.path.join(out, GRAPH_FILES["decoder"]))
    manifest["files"][GRAPH_FILES["decoder"]] = file_entry(os.path.join(out, GRAPH_FILES["decoder"]))
    manifest["name"] = f"{manifest['name']}-dvae"[:64]
    manifest["version"] = f"{manifest['version']}+dvae"[:64]
    manifest["description"] = f"The generator and CLIP of {os.path.basename(base.rstrip('/'))}, decoded by OpenAI's dVAE decoder."
    manifest["schema_version"] = max(manifest["schema_version"], SCHEMA_VERSION)
    manifest["license"] = "; ".join(filter(None, [manifest.get("license"), LICENSE]))[:200]
    write_manifest(out, manifest)
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="OpenAI's decoder.pkl (or a state dict with its names)")
    parser.add_argument("--out", required=True, help="decoder.onnx to write, or with --base a new pack folder")
    parser.add_argument("--base", help="a pack on DALL·E 1's geometry whose generator and CLIP the new pack keeps")
    parser.add_argument("--grid", type=int, default=DALLE1_GRID[0], help="tokens per side (DALL·E 1: 32)")
    args = parser.parse_args()
    if os.path.exists(args.out):
        raise SystemExit(f"{args.out} exists; choose a new path")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = load_decoder(args.checkpoint)
    model.grid = args.grid
    if args.base:
        onto_base(model, args.base, args.out)
    else:
        export_graph(model, args.out)
    print(json.dumps({"out": args.out, "codes": model.vocab_size,
                      "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
