"""Export a pack with random weights (the micro pack, or a placeholder at the demo geometry).

Usage: python3 -m training.export.random_pack {micro|demo} OUT_DIR TOKENIZER_JSON

The pack has no encoder, so it refuses completions: a random VQ-VAE's encoder was never trained
against its decoder, so the codes it gives an image are unrelated to what the decoder draws from
them, and a completion would "keep" cells that come back as other noise. Fitting an inverse to a
decoder that draws noise (as training.export.demo_encoder does for a trained one) would invert
nothing an image holds. packs/micro-dalle1 is also the committed pack that shows the refusal.
"""
import argparse

import torch

from training.export import graphs
from training.model import configs
from training.model.models import build_models
from training.pack import manifest

PACKS = {
    "micro": ("micro-dalle1", configs.MICRO,
              "Random weights at DALL·E 1's geometry (text 256 of 16384, 32x32 grid of 8192 codes, "
              "256x256 px) with a tiny width, for tests at real sizes. Its images are noise."),
    "demo": ("demo-shapes", configs.DEMO,
             "Placeholder with random weights at the demo geometry."),
}


def main(kind, out_dir, tokenizer_path, seed=0):
    name, cfg, description = PACKS[kind]
    generator, vqvae, clip = build_models(cfg, seed)
    graphs.export_all(generator, vqvae, clip, out_dir, with_encoder=False)
    manifest.write(out_dir, tokenizer_path, name=name, version="0.1.0-random", description=description,
                   gpt=cfg["gpt"], vq=cfg["vq"], clip=cfg["clip"], logit_scale=clip.logit_scale().item(),
                   sampling_defaults=configs.SAMPLING_DEFAULTS, with_loop=True, with_encoder_graph=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=sorted(PACKS))
    parser.add_argument("out_dir")
    parser.add_argument("tokenizer", help="the tokenizer.json the pack gets (training/tokenizer/shapes-bpe.json)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    main(args.kind, args.out_dir, args.tokenizer)
