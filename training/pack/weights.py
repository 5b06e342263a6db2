"""Rebuild a pack's PyTorch models from the weights inside its ONNX graphs.

The graphs are exported unfolded, so each initializer carries its parameter's name, or `P.T` for
a matrix stored transposed as its MatMul reads it (training/export/weight_layout.py). The
exporter stores identical tensors once; a parameter missing by name therefore equals one
kept under another name, which in practice only happens for untouched initial values
(ones, zeros), so models start from the same seeded init as a random pack's before loading.

An int8 pack (training.quantize) holds each Linear's weight as `W.T.int8` and `W.T.scale`: its
models get `Int8Linear`s that run the graphs' arithmetic (training/pack/int8.py), and the
dequantized weight stands in the state.

`python3 -m training.pack.weights packs/P OUT.pt` saves the rebuilt models' state, so that a
machine without the onnx package (a GPU box with only PyTorch) can load them: training/pack/state.py.
"""
import argparse
import dataclasses
import json
import math
import os

import onnx
import torch
from onnx import numpy_helper

from training.model import configs
from training.model.models import CLIP, build_models
from training.pack.int8 import Int8Linear, int8_logits

# `P.T`: parameter P stored transposed, [in, out], as its MatMul reads it (training/export/weight_layout.py).
TRANSPOSED = ".T"

INT8, SCALE = ".T.int8", ".T.scale"


def read_initializers(path, prefix=""):
    """{name: tensor} of the graph's weights under `prefix`; an int8 weight as its float value,
    and its (int8, scales) under `int8[name]`."""
    arrays = {init.name[len(prefix):]: numpy_helper.to_array(init).copy()
              for init in onnx.load(path).graph.initializer if init.name.startswith(prefix)}
    weights = {}
    for name, a in arrays.items():
        if name.endswith(TRANSPOSED):
            weights[name[:-len(TRANSPOSED)]] = torch.from_numpy(a.T.copy())
        elif not name.endswith((INT8, SCALE)):
            weights.setdefault(name, torch.from_numpy(a))
    weights["int8"] = {}
    for name, q in arrays.items():
        if name.endswith(INT8):
            base = name[:-len(INT8)]
            scale = arrays[base + SCALE]
            weights["int8"][base] = (q, scale)
            weights.setdefault(base, torch.from_numpy((q.astype("float32") * scale).T.copy()))
    return weights


def _int8(module, int8, prefix=""):
    """Each nn.Linear whose weight the graph holds as int8 becomes an Int8Linear."""
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.Linear) and f"{prefix}{name}.weight" in int8:
            setattr(module, name, Int8Linear(*int8[f"{prefix}{name}.weight"], child.bias))
        else:
            _int8(child, int8, f"{prefix}{name}.")


def _load(module, weights):
    own = module.state_dict()
    int8 = weights.pop("int8", {})
    for name, value in weights.items():
        if name not in own:
            continue
        if own[name].shape != value.shape:
            # Loading around it would leave the initial value in place and a wrong model.
            raise ValueError(f"{name}: the graph holds {tuple(value.shape)}, the model {tuple(own[name].shape)}")
        own[name] = value
    module.load_state_dict(own)
    _int8(module, int8)
    return sorted(set(own) - set(weights))


def load_pack(pack_dir):
    """-> (manifest, generator, vqvae, clip, names not found in the graphs)."""
    with open(os.path.join(pack_dir, "manifest.json")) as f:
        manifest = json.load(f)
    # An int8 pack has the architecture of the pack it was quantized from.
    generator, vqvae, clip = build_models(configs.BY_PACK[manifest.get("weights", {}).get("source", manifest["name"])])

    def path(name):
        return os.path.join(pack_dir, name)

    graphs = manifest["generator"]["graphs"]
    gen_weights = read_initializers(path(graphs["step"]), "generator.")
    prefill_weights = read_initializers(path(graphs["prefill"]), "generator.")
    gen_weights["int8"].update(prefill_weights.pop("int8"))
    gen_weights.update(prefill_weights)
    head = gen_weights["int8"].pop("image_embed.weight", None)
    missing = ["generator." + n for n in _load(generator, gen_weights)]
    if head is not None:
        generator.image_logits = int8_logits(generator, *head)
    vq_weights = read_initializers(path(manifest["decoder"]["graph"]), "vqvae.")
    if "encoder" in manifest:
        vq_weights.update(read_initializers(path(manifest["encoder"]["graph"]), "vqvae."))
    # A pack without an encoder graph holds no encoder weights; the EMA state is training's alone.
    missing += ["vqvae." + n for n in _load(vqvae, vq_weights)
                if not (n.startswith("encoder.") and "encoder" not in manifest) and not n.startswith("ema_")]
    image_weights = read_initializers(path(manifest["clip"]["graphs"]["image"]))
    if clip.config.shape_mask_threshold and not any(n.startswith("stem.shape.") for n in image_weights):
        # A pack from before the shape stem (1.1.0 and earlier): colour went into its stem.
        clip = CLIP(dataclasses.replace(clip.config, shape_mask_threshold=0.0))
    missing += ["clip.visual." + n for n in _load(clip.visual, image_weights)]
    missing += ["clip.text." + n for n in _load(clip.text, read_initializers(path(manifest["clip"]["graphs"]["text"])))]
    with torch.no_grad():
        clip.log_scale.fill_(math.log(manifest["clip"]["logit_scale"]))
    for model in (generator, vqvae, clip):
        model.eval()
    return manifest, generator, vqvae, clip, missing


def main():
    parser = argparse.ArgumentParser(description="Save a pack's weights as a PyTorch state file.")
    parser.add_argument("pack")
    parser.add_argument("out")
    args = parser.parse_args()
    _, generator, vqvae, clip, _ = load_pack(args.pack)
    torch.save({"generator": generator.state_dict(), "vqvae": vqvae.state_dict(), "clip": clip.state_dict()}, args.out)


if __name__ == "__main__":
    main()
