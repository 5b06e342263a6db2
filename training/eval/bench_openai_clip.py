"""A real-size OpenAI CLIP pack for the benchmark, and PyTorch's speed on the same weights.

Usage: python3 -m training.eval.bench_openai_clip OUT [--threads 2] [--device cpu]
Builds ViT-B/32 with seeded random weights in OpenAI's checkpoint layout (no download: speed
does not depend on the values), exports it with training.export.openai_clip_pack as a CLIP-only pack in
OUT/packs/vit-b-32-random, then prints one JSON object: PyTorch's image-encoder images/s
and text-encoder texts/s by batch size (best of three rounds), for bench/clip.ts's ratios.
"""
import argparse
import gzip
import json
import os
import time

import torch

from training.eval.bench_reference import per_second
from training.export import openai_clip_pack
from training.upstream import openai_clip as oc
from training.world.bpe import bytes_to_unicode

PACK_NAME = "vit-b-32-random"
VIT_B_32 = dict(embed_dim=512, resolution=224, vision_layers=12, vision_width=768, patch=32,
                context=77, vocab=49408, text_width=512, text_heads=8, text_layers=12)
BATCHES = (1, 8, 32)


def random_checkpoint(path):
    torch.manual_seed(0)
    model = oc.OpenAIClip(**VIT_B_32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            layer_norm_weight = ".ln" in name and name.endswith("weight")
            p.copy_(torch.randn_like(p) * 0.02 + (1.0 if layer_norm_weight else 0.0))
        model.logit_scale.fill_(float(torch.log(torch.tensor(100.0))))
    torch.save(model.checkpoint_state(), path)


def full_merges(path):
    """OpenAI's number of merges, each joining two byte symbols: a vocabulary of 49408."""
    units = list(bytes_to_unicode().values())
    merges = [(a, b) for a in units for b in units][: oc.MAX_MERGES]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    checkpoint, bpe = os.path.join(args.out, "ViT-B-32.pt"), os.path.join(args.out, "bpe.txt.gz")
    random_checkpoint(checkpoint)
    full_merges(bpe)
    began = time.perf_counter()
    openai_clip_pack.export_pack(checkpoint, bpe, os.path.join(args.out, "packs", PACK_NAME), name=PACK_NAME)
    export_s = time.perf_counter() - began

    model = oc.load_model(checkpoint).to(args.device)
    ids = torch.zeros(max(BATCHES), VIT_B_32["context"], dtype=torch.long, device=args.device)
    ids[:, 0], ids[:, 1:9], ids[:, 9] = 49406, torch.arange(1, 9), 49407
    pixels = torch.randn(max(BATCHES), 3, 224, 224, device=args.device)
    result = {
        "pack": PACK_NAME,
        "torch": torch.__version__,
        "threads": args.threads,
        "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
        "export_s": round(export_s, 1),
        "images_per_s": {str(b): round(per_second(lambda: model.visual(pixels[:b]), b, args.device), 1)
                         for b in BATCHES},
        "texts_per_s": {str(b): round(per_second(lambda: model.text(ids[:b]), b, args.device), 1) for b in BATCHES},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
