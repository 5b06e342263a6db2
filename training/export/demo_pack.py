"""Export the demo pack from a training run (training/model/train.py): the trained models' graphs,
the tokenizer, and a manifest with the words they were trained on and example prompts.

Usage: python3 -m training.export.demo_pack --run training/runs/demo [--pack packs/demo-shapes]
           [--device cuda] [--profile cpu|cuda|smoke]
The run's models are loaded; a stage it has not finished is trained first, as training.model.train
would. The profile (by default the device's) names the model sizes and the pack.
"""
import argparse
import os

import torch

from training.export import graphs
from training.model import configs, train
from training.model.trainer import Log
from training.pack import manifest
from training.world import phrasing


def write_pack(models, pack_dir, profile_name, name="demo-shapes"):
    generator, vqvae, clip = (models[m].cpu() for m in ("generator", "vqvae", "clip"))
    cfg = configs.VARIANTS[name]
    os.makedirs(pack_dir, exist_ok=True)
    graphs.export_all(generator, vqvae, clip, pack_dir)
    machine = "a GPU (the cuda profile)" if profile_name == "cuda" else "a 2-core CPU"
    manifest.write(pack_dir, train.TOKENIZER, name=name, version="1.2.0",
                   description="DALL·E-style generator, VQ-VAE and CLIP trained on the synthetic shapes world "
                               f"(training/README.md), on {machine}.",
                   gpt=cfg["gpt"], vq=cfg["vq"], clip=cfg["clip"], logit_scale=clip.logit_scale().item(),
                   sampling_defaults=configs.SAMPLING_DEFAULTS, with_loop=True,
                   vocabulary=phrasing.vocabulary(), examples=phrasing.EXAMPLES)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="training/runs/demo")
    parser.add_argument("--pack", default="packs/demo-shapes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", choices=sorted(train.PROFILES), help="steps and batch sizes; default by device")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile_name = train.profile_for(args.device, args.profile)
    models = train.run(args.run, args.device, ["generator", "clip"], profile_name)
    write_pack(models, args.pack, profile_name, train.PROFILES[profile_name]["pack"])
    Log(args.run)(stage="pack", status="done", pack=args.pack)


if __name__ == "__main__":
    main()
