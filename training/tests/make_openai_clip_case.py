"""A small OpenAI-layout CLIP checkpoint, exported into a pack, with PyTorch's answers.

Writes into OUT: `ViT-T-16.pt` (a TorchScript archive with the parameter names and extra
entries of OpenAI's downloads, random weights), `bpe.txt.gz` (merges in OpenAI's file format,
learned from a few sentences), two packs from training.export.openai_clip_pack
(`packs/tiny-openai-clip` onto the base pack, `packs/tiny-openai-clip-only` alone, by the command
line), `case.json` (their names) and `reference.json` (training.eval.openai_clip_reference on the
CLIP-only pack: OpenAI's token ids, PyTorch's embeddings).
test/training/openai-clip.test.ts runs this, then checks the service against it.

    /usr/bin/python3 -m training.tests.make_openai_clip_case OUT [--base packs/demo-shapes]
    /usr/bin/python3 -m training.tests.make_openai_clip_case OUT --checkpoint-only   # the first two files

With --checkpoint-only it is the CLIP for reranking beside make_upstream_checkpoints' minDALL-E.
"""
import argparse
import collections
import gzip
import json
import os
import subprocess
import sys

import regex
import torch
import torch.nn as nn

from training.export import openai_clip_pack
from training.upstream import openai_clip as oc
from training.world.bpe import bytes_to_unicode

PACK_NAME = "tiny-openai-clip"
CLIP_ONLY_PACK_NAME = "tiny-openai-clip-only"
CORPUS = """a photo of a cat. a photo of a dog on the grass. itap of a red car.
the quick brown fox jumps over the lazy dog. a bad photo of the small bird.
art of the large mountain at sunset, 1984. a origami crane in a video game!"""
MERGES = 300


def learn_merges(text, count):
    """A few byte-level BPE merges in OpenAI's word-final `</w>` form, most frequent pair first."""
    byte_map = bytes_to_unicode()
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
        model.logit_scale.fill_(float(torch.log(torch.tensor(100.0))))
    return model.eval()


def write_checkpoint(out):
    """ViT-T-16.pt and bpe.txt.gz into `out` -> their paths."""
    os.makedirs(out, exist_ok=True)
    merges = learn_merges(CORPUS, MERGES)
    bpe = os.path.join(out, "bpe.txt.gz")
    with gzip.open(bpe, "wt", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    model = random_model(len(oc.vocabulary(merges)))
    checkpoint = os.path.join(out, "ViT-T-16.pt")
    torch.jit.trace(Archive(model), torch.zeros(1, 3, 64, 64)).save(checkpoint)
    return checkpoint, bpe


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--base", default="packs/demo-shapes")
    parser.add_argument("--checkpoint-only", action="store_true", help="write the checkpoint and merges alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint, bpe = write_checkpoint(args.out)
    if args.checkpoint_only:
        return
    openai_clip_pack.export_pack(checkpoint, bpe, os.path.join(args.out, "packs", PACK_NAME), base=args.base,
                                 name=PACK_NAME)
    # The CLIP-only pack and PyTorch's answers through the command line, as a user runs it.
    clip_only = os.path.join(args.out, "packs", CLIP_ONLY_PACK_NAME)
    subprocess.run([sys.executable, "-m", "training.export.openai_clip_pack", "--checkpoint", checkpoint, "--bpe", bpe,
                    "--out", clip_only, "--name", CLIP_ONLY_PACK_NAME], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "training.eval.openai_clip_reference", "--checkpoint", checkpoint,
                    "--bpe", bpe, "--pack", clip_only, "--out", os.path.join(args.out, "reference.json")], check=True)
    with open(os.path.join(args.out, "case.json"), "w") as f:
        json.dump({"pack": PACK_NAME, "clip_only_pack": CLIP_ONLY_PACK_NAME}, f)


if __name__ == "__main__":
    main()
