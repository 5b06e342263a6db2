"""Export OpenAI's dVAE encoder (DALL·E 1's image encoder, `encoder.pkl`) as a pack's encoder graph.

    /usr/bin/python3 -m training.export.dvae_encoder --checkpoint encoder.pkl --out encoder.onnx

The encoder is training/upstream/dvae.py's: uint8 NHWC pixels [B, 256, 256, 3] in, codebook indices
[B, 1024] out (the argmax of its logits per cell), as the contract's `encoder` graph says; its weights
are read from the pickle without running any of its code. A pack gets it beside the dVAE decoder
with `training.export.dvae_decoder --encoder-checkpoint encoder.pkl --base …`, so that the pack
completes images.
"""
import argparse
import json
import os

import torch

from training.export.opset import OPSET, torchscript_exporter
from training.upstream.dvae import DALLE1_PIXELS, load_encoder


def export_graph(model, path):
    pixels = torch.zeros(2, model.image_size, model.image_size, 3, dtype=torch.uint8)
    with torch.no_grad():
        torch.onnx.export(model, (pixels,), path, input_names=["pixels"], output_names=["image_tokens"],
                          dynamic_axes={"pixels": {0: "B"}, "image_tokens": {0: "B"}}, opset_version=OPSET,
                          **torchscript_exporter())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="OpenAI's encoder.pkl (or a state dict with its names)")
    parser.add_argument("--out", required=True, help="encoder.onnx to write")
    parser.add_argument("--size", type=int, default=DALLE1_PIXELS[0], help="pixels per side (DALL·E 1: 256)")
    args = parser.parse_args()
    if os.path.exists(args.out):
        raise SystemExit(f"{args.out} exists; choose a new path")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = load_encoder(args.checkpoint, args.size)
    export_graph(model, args.out)
    print(json.dumps({"out": args.out, "codes": model.vocab_size, "grid": [model.grid, model.grid],
                      "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
