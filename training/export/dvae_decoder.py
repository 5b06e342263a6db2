"""Export OpenAI's dVAE decoder (DALL·E 1's image decoder, `decoder.pkl`) as a pack's decoder graph.

    /usr/bin/python3 -m training.export.dvae_decoder --checkpoint decoder.pkl --out decoder.onnx
    /usr/bin/python3 -m training.export.dvae_decoder --checkpoint decoder.pkl \\
        --base packs/micro-dalle1 --out packs/micro-dalle1-dvae

The decoder is training/upstream/dvae.py's: codebook indices [B, 1024] in, as the contract says,
uint8 NHWC pixels out, its weights read from the pickle without running any of its code.

With `--base`, the new pack keeps the base pack's generator and CLIP and takes this decoder: the
base must have DALL·E 1's image geometry (32×32 grid, 8,192 codes, 256×256 pixels), as
`packs/micro-dalle1` has.
"""
import argparse
import json
import os
import shutil

import torch

from training.export.opset import OPSET, torchscript_exporter
from training.pack.manifest import GRAPH_FILES, SCHEMA_VERSION, file_entry, write_manifest
from training.upstream.dvae import DALLE1_GRID, DALLE1_PIXELS, load_decoder

LICENSE = "dVAE decoder: Modified MIT (OpenAI)"


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
    dalle1 = (DALLE1_GRID, model.vocab_size, DALLE1_PIXELS)
    if g is None or (g["image_grid"], g["codebook_size"], g["image_size"]) != dalle1:
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
    manifest["description"] = (f"The generator and CLIP of {os.path.basename(base.rstrip('/'))}, "
                               "decoded by OpenAI's dVAE decoder.")
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
