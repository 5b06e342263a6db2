"""A pack's PyTorch models from the state file training.pack.weights saved from its graphs, for a
machine without the onnx package to read graphs with (a GPU box with PyTorch alone)."""
import json
import os

import torch

from training.model import configs
from training.model.models import build_models


def load_state(pack_dir, state_path):
    """-> (manifest, generator, vqvae, clip), the weights from `state_path`."""
    with open(os.path.join(pack_dir, "manifest.json")) as f:
        manifest = json.load(f)
    generator, vqvae, clip = build_models(configs.BY_PACK[manifest["name"]])
    state = torch.load(state_path)
    for name, model in (("generator", generator), ("vqvae", vqvae), ("clip", clip)):
        model.load_state_dict(state[name])
        model.eval()
    return manifest, generator, vqvae, clip
