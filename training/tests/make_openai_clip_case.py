"""A small OpenAI-layout CLIP checkpoint, exported into a pack, with PyTorch's answers.

Writes into OUT: `ViT-T-16.pt` (a TorchScript archive with the parameter names and extra
entries of OpenAI's downloads, random weights), `bpe.txt.gz` (merges in OpenAI's file format,
learned from a few sentences), two packs from training.openai_clip (`packs/tiny-openai-clip`
onto the base pack, `packs/tiny-openai-clip-only` alone) and `reference.json` (token ids by OpenAI's algorithm, raw text and image embeddings).
test/integration/models-openai-clip.test.ts runs this, then checks the service against it.

    /usr/bin/python3 -m training.tests.make_openai_clip_case OUT [--base packs/demo-shapes]
"""
import argparse
import collections
import gzip
import json
import os

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from training import openai_clip as oc

PACK_NAME = "tiny-openai-clip"
CLIP_ONLY_PACK_NAME = "tiny-openai-clip-only"
CORPUS = """a photo of a cat. a photo of a dog on the grass. itap of a red car.
the quick brown fox jumps over the lazy dog. a bad photo of the small bird.
art of the large mountain at sunset, 1984. a origami crane in a video game!"""
TEXTS = [
    "a photo of a cat",
    "A Photo   of a DOG\n\ton the grass",
    "itap of a red car.",
    "naïve café, crème brûlée — 東京 🚀",
    "numbers 1984 and 3.14 and 42nd",
    "don't won't they'll we've I'm she'd it's",
    "<|endoftext|> typed in a prompt stays text <|startoftext|>",
    "?!... ##  ~~~",
    " ".join(["long"] * 120),
    "",
]
MERGES = 300


def learn_merges(text, count):
    """A few byte-level BPE merges in OpenAI's word-final `</w>` form, most frequent pair first."""
    import regex

    byte_map = oc.bytes_to_unicode()
    words = collections.Counter()
    for word in regex.findall(oc.WORD_PATTERN, text.lower()):
        parts = [byte_map[b] for b in word.encode("utf-8")]
        parts[-1] += "</w>"
        words[tuple(parts)] += 1
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for parts, n in words.items():
            for pair in zip(parts, parts[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        merged_words = collections.Counter()
        for parts, n in words.items():
            merged_words[tuple(oc.merge_pair(list(parts), best))] += n
        words = merged_words
    return merges


class Archive(nn.Module):
    """OpenAI's CLIP module layout: `visual.*`, the text tower at the top level, the extras."""

    def __init__(self, model):
        super().__init__()
        self.visual = model.visual
        self.token_embedding = model.text.token_embedding
        self.positional_embedding = model.text.positional_embedding
        self.transformer = model.text.transformer
        self.ln_final = model.text.ln_final
        self.text_projection = model.text.text_projection
        self.logit_scale = model.logit_scale
        resolution = model.visual.conv1.kernel_size[0] * round((model.visual.positional_embedding.shape[0] - 1) ** 0.5)
        self.register_buffer("input_resolution", torch.tensor(resolution))
        self.register_buffer("context_length", torch.tensor(model.text.positional_embedding.shape[0]))
        self.register_buffer("vocab_size", torch.tensor(model.text.token_embedding.num_embeddings))

    def forward(self, pixel_values):
        return self.visual(pixel_values)


def random_model(vocab):
    torch.manual_seed(1234)
    model = oc.OpenAIClip(embed_dim=32, resolution=64, vision_layers=2, vision_width=64, patch=16,
                          context=77, vocab=vocab, text_width=64, text_heads=1, text_layers=2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln" in name or name.startswith(("visual.ln", "text.ln")):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
        model.logit_scale.fill_(float(np.log(100.0)))
    return model.eval()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--base", default="packs/demo-shapes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    merges = learn_merges(CORPUS, MERGES)
    bpe = os.path.join(args.out, "bpe.txt.gz")
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    model = random_model(len(oc.vocabulary(merges)))
    checkpoint = os.path.join(args.out, "ViT-T-16.pt")
    torch.jit.trace(Archive(model), torch.zeros(1, 3, 64, 64)).save(checkpoint)

    pack = os.path.join(args.out, "packs", PACK_NAME)
    manifest = oc.export_pack(checkpoint, bpe, pack, base=args.base, name=PACK_NAME)
    oc.export_pack(checkpoint, bpe, os.path.join(args.out, "packs", CLIP_ONLY_PACK_NAME), name=CLIP_ONLY_PACK_NAME)
    clip = manifest["clip"]

    rows = []
    for text in TEXTS:
        ids = oc.reference_encode(text, merges)
        framed = [clip["bos_id"]] + ids[: clip["context_length"] - 2] + [clip["eos_id"]]
        rows.append(framed + [clip["pad_id"]] * (clip["context_length"] - len(framed)))
    with torch.no_grad():
        text_embeds = model.text(torch.tensor(rows))

    # An image at the CLIP input size, so preprocessing is the normalisation alone.
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    image_path = os.path.join(args.out, "image.png")
    Image.fromarray(pixels).save(image_path)
    x = (torch.from_numpy(pixels).float() / 255 - torch.tensor(oc.MEAN)) / torch.tensor(oc.STD)
    with torch.no_grad():
        image_embeds = model.visual(x.permute(2, 0, 1).unsqueeze(0))

    reference = {
        "pack": PACK_NAME,
        "clip_only_pack": CLIP_ONLY_PACK_NAME,
        "texts": TEXTS,
        "token_ids": [oc.reference_encode(text, merges) for text in TEXTS],
        "text_embeds": text_embeds.tolist(),
        "image": image_path,
        "image_embeds": image_embeds.tolist(),
        "logit_scale": float(model.logit_scale.exp()),
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)


if __name__ == "__main__":
    main()
