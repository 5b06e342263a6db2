"""Measure a pack's quality on the shapes world: CLIP zero-shot accuracy, and prompt
adherence of sampled images judged by the oracle, over all candidates and CLIP's top n.

Usage: python3 -m training.evaluate packs/demo-shapes [--prompts 8] [--candidates 512] [--out FILE]
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from training import oracle, shapes_world as world
from training.bpe import Tokenizer
from training.pack import pad_text
from training.pack_weights import load_pack
from training.sampling import sample_images

EVAL_SEED = 2024
LABELS = [f"{colour} {shape}" for colour in world.COLOURS for shape in world.SHAPES]


def preprocess(images, manifest):
    pre = manifest["clip"]["preprocess"]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != pre["size"]:
        x = F.interpolate(x, size=(pre["size"], pre["size"]), mode=pre["interpolation"], align_corners=False)
    mean, std = torch.tensor(pre["mean"]).view(1, 3, 1, 1), torch.tensor(pre["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


class Scorer:
    def __init__(self, clip, manifest, tokenizer):
        self.clip, self.manifest, self.tokenizer = clip, manifest, tokenizer

    @torch.no_grad()
    def text(self, texts):
        c = self.manifest["clip"]
        ids = [pad_text(self.tokenizer.encode(t), c["context_length"], bos_eos=True) for t in texts]
        return F.normalize(self.clip.text(torch.tensor(ids)), dim=-1)

    @torch.no_grad()
    def images(self, images):
        chunks = [self.clip.visual(preprocess(images[i:i + 256], self.manifest)) for i in range(0, len(images), 256)]
        return F.normalize(torch.cat(chunks), dim=-1)

    def label_embeddings(self, labels):
        """Zero-shot classifier: each label in every template, averaged, as the contract says."""
        per_template = [self.text([t.format(label) for label in labels]) for t in self.manifest["clip"]["templates"]]
        return F.normalize(torch.stack(per_template).mean(0), dim=-1)


def zero_shot(scorer, split, count, seed):
    rng = np.random.default_rng(seed)
    scenes = [world.sample_scene(rng, split, 1) for _ in range(count)]
    images = np.stack([world.render(s) for s in scenes])
    predicted = (scorer.images(images) @ scorer.label_embeddings(LABELS).t()).argmax(-1)
    truth = [LABELS.index(world.label(s.objects[0])) for s in scenes]
    return float((predicted.numpy() == np.array(truth)).mean())


def decode(vqvae, tokens):
    with torch.no_grad():
        chunks = [vqvae.decode(tokens[i:i + 256]) for i in range(0, len(tokens), 256)]
    x = torch.cat(chunks)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def adherence(models, scene, candidates, keep, seed):
    manifest, generator, vqvae, scorer, tokenizer = models
    prompt = world.canonical_caption(scene)
    text = torch.tensor([pad_text(tokenizer.encode(prompt), manifest["geometry"]["text_length"])] * candidates)
    n = generator.config.image_tokens
    uniforms = torch.rand(candidates, n, generator=torch.Generator().manual_seed(seed))
    defaults = manifest["generator"]["sampling_defaults"]
    tokens = sample_images(generator, text, uniforms, defaults["top_k"], defaults["temperature"],
                           defaults.get("top_p", 1.0))
    images = decode(vqvae, tokens)
    matches = np.array([oracle.judge(image, scene) for image in images])
    scores = (scorer.images(images) @ scorer.text([prompt]).t()).squeeze(1)
    top = scores.topk(keep).indices.numpy()
    return {"prompt": prompt, "all": float(matches.mean()), "top": float(matches[top].mean())}


def prompt_groups(count, seed):
    rng = np.random.default_rng(seed)
    return {
        "single object": [world.sample_scene(rng, "train", 1) for _ in range(count)],
        "two objects": [world.sample_scene(rng, "train", 2) for _ in range(count)],
        "held-out pairs": [world.sample_scene(rng, "heldout", 1) for _ in range(count)],
    }


def evaluate(pack_dir, prompts, candidates, keep, zero_shot_count=240):
    torch.set_num_threads(2)
    began = time.time()
    manifest, generator, vqvae, clip, _ = load_pack(pack_dir)
    tokenizer = Tokenizer.load(os.path.join(pack_dir, manifest["generator"]["tokenizer"]))
    scorer = Scorer(clip, manifest, tokenizer)
    result = {"pack": manifest["name"], "candidates": candidates, "top": keep,
              "zero_shot": {"held-out pairs": zero_shot(scorer, "heldout", zero_shot_count, EVAL_SEED),
                            "train pairs, new scenes": zero_shot(scorer, "train", zero_shot_count, EVAL_SEED + 1)},
              "adherence": {}}
    models = (manifest, generator, vqvae, scorer, tokenizer)
    for group, scenes in prompt_groups(prompts, EVAL_SEED + 2).items():
        rows = [adherence(models, s, candidates, keep, EVAL_SEED + i) for i, s in enumerate(scenes)]
        result["adherence"][group] = {"all": float(np.mean([r["all"] for r in rows])),
                                      "top": float(np.mean([r["top"] for r in rows])), "prompts": rows}
        print(json.dumps({group: result["adherence"][group]["all"], "top": result["adherence"][group]["top"]}), flush=True)
    result["minutes"] = round((time.time() - began) / 60, 1)
    return result


def markdown(result):
    lines = ["| measure | value |", "| --- | --- |"]
    for split, acc in result["zero_shot"].items():
        lines.append(f"| CLIP zero-shot, colour + shape, {split} | {acc:.1%} |")
    lines += ["", f"| prompts | match, all {result['candidates']} | match, CLIP top {result['top']} |",
              "| --- | --- | --- |"]
    for group, row in result["adherence"].items():
        lines.append(f"| {group} ({len(row['prompts'])} prompts) | {row['all']:.1%} | {row['top']:.1%} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pack")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=512)
    parser.add_argument("--top", type=int, default=32)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = evaluate(args.pack, args.prompts, args.candidates, args.top)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    print(markdown(result))


if __name__ == "__main__":
    main()
