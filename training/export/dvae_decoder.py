"""Export OpenAI's dVAE decoder (DALL·E 1's image decoder, `decoder.pkl`) as a pack's decoder graph.

    /usr/bin/python3 -m training.export.dvae_decoder --checkpoint decoder.pkl --out decoder.onnx
    /usr/bin/python3 -m training.export.dvae_decoder --checkpoint decoder.pkl [--encoder-checkpoint encoder.pkl] \\
        --base packs/micro-dalle1 --out packs/micro-dalle1-dvae

The decoder is training/upstream/dvae.py's: codebook indices [B, 1024] in, as the contract says,
uint8 NHWC pixels out, its weights read from the pickle without running any of its code.

With `--base`, the new pack keeps the base pack's generator and CLIP and takes this decoder: the
base must have DALL·E 1's image geometry (32×32 grid, 8,192 codes, 256×256 pixels), as
`packs/micro-dalle1` has. With `--encoder-checkpoint` it also takes OpenAI's dVAE encoder
(training/export/dvae_encoder.py) as its `encoder` graph, and completes images; without it the new
pack has no encoder (a base pack's encoder gives the codes of its own decoder, not this one's).
"""
import argparse
import json
import os
import shutil

import torch

from training.export import dvae_encoder
from training.export.opset import OPSET, torchscript_exporter
from training.pack.manifest import GRAPH_FILES, SCHEMA_VERSION, file_entry, with_encoder, write_manifest
from training.upstream.dvae import DALLE1_GRID, DALLE1_PIXELS, load_decoder, load_encoder

LICENSE = "dVAE decoder: Modified MIT (OpenAI)"
LICENSE_WITH_ENCODER = "dVAE decoder and encoder: Modified MIT (OpenAI)"


def export_graph(model, path):
    tokens = torch.zeros(2, model.grid ** 2, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(model, (tokens,), path, input_names=["image_tokens"], output_names=["pixels"],
                          dynamic_axes={"image_tokens": {0: "B"}, "pixels": {0: "B"}}, opset_version=OPSET,
                          **torchscript_exporter())


def onto_base(model, base, out, encoder=None):
    """A pack at `out`: `base` with this decoder in place of its own, and `encoder` (a DVAEEncoder)
    as its encoder if given."""
    with open(os.path.join(base, "manifest.json")) as f:
        manifest = json.load(f)
    g = manifest.get("geometry")
    dalle1 = (DALLE1_GRID, model.vocab_size, DALLE1_PIXELS)
    if g is None or (g["image_grid"], g["codebook_size"], g["image_size"]) != dalle1:
        raise SystemExit(f"{base}: the dVAE decoder needs a generator on DALL·E 1's geometry (grid {DALLE1_GRID}, "
                         f"{model.vocab_size} codes, {DALLE1_PIXELS} pixels)")
    if encoder is not None and ([encoder.grid] * 2, encoder.vocab_size, [encoder.image_size] * 2) != dalle1:
        raise SystemExit(f"the dVAE encoder gives a {encoder.grid}×{encoder.grid} grid of {encoder.vocab_size} codes "
                         f"from {encoder.image_size} px; the decoder takes {DALLE1_GRID} of {model.vocab_size}")
    replaced = {manifest["decoder"]["graph"], *([manifest["encoder"]["graph"]] if "encoder" in manifest else [])}
    os.makedirs(out)
    for name in manifest["files"]:
        if name not in replaced:
            shutil.copyfile(os.path.join(base, name), os.path.join(out, name))
    for name in replaced:
        del manifest["files"][name]
    manifest.pop("encoder", None)
    manifest["decoder"]["graph"] = GRAPH_FILES["decoder"]
    export_graph(model, os.path.join(out, GRAPH_FILES["decoder"]))
    written = [GRAPH_FILES["decoder"]]
    if encoder is not None:
        dvae_encoder.export_graph(encoder, os.path.join(out, GRAPH_FILES["encoder"]))
        manifest = with_encoder(manifest, GRAPH_FILES["encoder"])
        written.append(GRAPH_FILES["encoder"])
    for name in written:
        manifest["files"][name] = file_entry(os.path.join(out, name))
    manifest["files"] = dict(sorted(manifest["files"].items()))
    manifest["name"] = f"{manifest['name']}-dvae"[:64]
    manifest["version"] = f"{manifest['version']}+dvae"[:64]
    dvae = "decoder" if encoder is None else "decoder, and its encoder for image completion"
    manifest["description"] = (f"The generator and CLIP of {os.path.basename(base.rstrip('/'))}, "
                               f"decoded by OpenAI's dVAE {dvae}.")
    manifest["schema_version"] = max(manifest["schema_version"], SCHEMA_VERSION)
    stated = LICENSE if encoder is None else LICENSE_WITH_ENCODER
    manifest["license"] = "; ".join(filter(None, [manifest.get("license"), stated]))[:200]
    write_manifest(out, manifest)
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="OpenAI's decoder.pkl (or a state dict with its names)")
    parser.add_argument("--out", required=True, help="decoder.onnx to write, or with --base a new pack folder")
    parser.add_argument("--base", help="a pack on DALL·E 1's geometry whose generator and CLIP the new pack keeps")
    parser.add_argument("--grid", type=int, default=DALLE1_GRID[0], help="tokens per side (DALL·E 1: 32)")
    parser.add_argument("--encoder-checkpoint",
                        help="with --base: OpenAI's encoder.pkl, so that the new pack completes images")
    args = parser.parse_args()
    if os.path.exists(args.out):
        raise SystemExit(f"{args.out} exists; choose a new path")
    if args.encoder_checkpoint and not args.base:
        raise SystemExit("--encoder-checkpoint goes into a pack (--base); "
                         "an encoder graph alone: python3 -m training.export.dvae_encoder")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = load_decoder(args.checkpoint)
    model.grid = args.grid
    if args.base:
        encoder = load_encoder(args.encoder_checkpoint) if args.encoder_checkpoint else None
        onto_base(model, args.base, args.out, encoder)
    else:
        export_graph(model, args.out)
    print(json.dumps({"out": args.out, "codes": model.vocab_size,
                      "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
