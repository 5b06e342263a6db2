"""Measure a pack's quality on the shapes world: CLIP zero-shot accuracy, and prompt
adherence of sampled images judged by the oracle, over all candidates and CLIP's top n.

Every group of prompts is asked twice, about the same scenes: in the training phrasing (the
world's canonical wording) and in a held-out phrasing (phrasings/heldout.json, never trained
on), so the difference measures generalisation to new wording rather than memory.

Usage: python3 -m training.eval.evaluate packs/demo-shapes [--prompts 8] [--candidates 512]
           [--phrasings training,heldout] [--out FILE]
       python3 -m training.eval.evaluate --merge A.json B.json --out FILE   (halves run in two processes)
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from training.model.configs import pad_text
from training.model.sampling import sample_images
from training.model.train import decode_codes
from training.pack.weights import load_pack
from training.world import oracle, phrasing
from training.world import shapes as world
from training.world.bpe import Tokenizer

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


class Prompt:
    """A prompt about a scene, and what the oracle checks: size always, place where stated."""

    def __init__(self, text, scene, position=(None, None)):
        self.text, self.scene, self.position = text, scene, position


def adherence(models, prompt, candidates, keep, seed):
    manifest, generator, vqvae, scorer, tokenizer = models
    text = torch.tensor([pad_text(tokenizer.encode(prompt.text), manifest["geometry"]["text_length"])] * candidates)
    n = generator.config.image_tokens
    uniforms = torch.rand(candidates, n, generator=torch.Generator().manual_seed(seed))
    defaults = manifest["generator"]["sampling_defaults"]
    tokens = sample_images(generator, text, uniforms, defaults["top_k"], defaults["temperature"],
                           defaults.get("top_p", 1.0))
    images = decode_codes(vqvae, tokens, "cpu")
    matches = np.array([oracle.judge(image, prompt.scene, position=prompt.position) for image in images])
    scores = (scorer.images(images) @ scorer.text([prompt.text]).t()).squeeze(1)
    top = scores.topk(keep).indices.numpy()
    return {"prompt": prompt.text, "all": float(matches.mean()), "top": float(matches[top].mean())}


def _objects(scene):
    return [phrasing.object_phrase(o.colour, o.shape, o.size) for o in scene.objects]


def training_prompt(scene, kind, i):
    if kind == "positions":
        h, v = world.position_of(scene.objects[0].cx, scene.objects[0].cy)
        stated = (h if h != "centre" or v == "middle" else None, v if v != "middle" or h == "centre" else None)
        return Prompt(f"{_objects(scene)[0]} {phrasing.canonical_position(h, v)}", scene, stated)
    return Prompt(world.canonical_caption(scene), scene)


def heldout_prompt(scene, kind, i):
    """The scene in a held-out phrasing, the i-th that fits it (in turn over the prompts)."""
    objects = _objects(scene)
    if kind == "positions":
        options = phrasing.heldout_position_templates(*world.position_of(scene.objects[0].cx, scene.objects[0].cy))
        template, h, v = options[i % len(options)]
        return Prompt(template.format(a=objects[0]), scene, (h, v))
    if len(objects) == 1:
        single = phrasing.HELDOUT["single"]
        return Prompt(single[i % len(single)].format(a=objects[0]), scene)
    pairs = phrasing.HELDOUT["pairs"]
    options = ([t.format(a=objects[0], b=objects[1]) for t in pairs[scene.relation]]
               + [t.format(a=objects[1], b=objects[0]) for t in pairs[world.INVERSE_RELATION[scene.relation]]])
    return Prompt(options[i % len(options)], scene)


PHRASINGS = {"training": training_prompt, "heldout": heldout_prompt}


GROUPS = ("single object", "two objects", "held-out pairs", "positions")


def prompt_groups(count, seed):
    rng = np.random.default_rng(seed)
    groups = {
        "single object": [world.sample_scene(rng, "train", 1) for _ in range(count)],
        "two objects": [world.sample_scene(rng, "train", 2) for _ in range(count)],
        "held-out pairs": [world.sample_scene(rng, "heldout", 1) for _ in range(count)],
    }
    # Drawn after the others, so adding them left pack 1.1's prompts as they were.
    groups["positions"] = [world.sample_scene(rng, "train", 1) for _ in range(count)]
    return groups


def evaluate(pack_dir, prompts, candidates, keep, phrasings=("training", "heldout"), zero_shot_count=240, groups=None):
    torch.set_num_threads(int(os.environ.get("EVAL_THREADS", "2")))
    began = time.time()
    manifest, generator, vqvae, clip, _ = load_pack(pack_dir)
    tokenizer = Tokenizer.load(os.path.join(pack_dir, manifest["generator"]["tokenizer"]))
    scorer = Scorer(clip, manifest, tokenizer)
    result = {"pack": manifest["name"], "candidates": candidates, "top": keep, "zero_shot": {}, "adherence": {}}
    if "training" in phrasings:
        result["zero_shot"] = {"held-out pairs": zero_shot(scorer, "heldout", zero_shot_count, EVAL_SEED),
                               "train pairs, new scenes": zero_shot(scorer, "train", zero_shot_count, EVAL_SEED + 1)}
    models = (manifest, generator, vqvae, scorer, tokenizer)
    for phrasing_name in phrasings:
        table = result["adherence"].setdefault(phrasing_name, {})
        for group, scenes in prompt_groups(prompts, EVAL_SEED + 2).items():
            if groups and group not in groups:
                continue
            asked = [PHRASINGS[phrasing_name](s, "positions" if group == "positions" else "objects", i)
                     for i, s in enumerate(scenes)]
            rows = [adherence(models, p, candidates, keep, EVAL_SEED + i) for i, p in enumerate(asked)]
            table[group] = {"all": float(np.mean([r["all"] for r in rows])),
                            "top": float(np.mean([r["top"] for r in rows])), "prompts": rows}
            print(json.dumps({"phrasing": phrasing_name, group: table[group]["all"], "top": table[group]["top"]}),
                  flush=True)
    result["minutes"] = round((time.time() - began) / 60, 1)
    return result


def merge(results):
    merged = dict(results[0])
    merged["zero_shot"] = {k: v for r in results for k, v in r["zero_shot"].items()}
    merged["adherence"] = {k: v for r in results for k, v in r["adherence"].items()}
    merged["minutes"] = max(r["minutes"] for r in results)
    return merged


def markdown(result):
    lines = ["| measure | value |", "| --- | --- |"]
    for split, acc in result["zero_shot"].items():
        lines.append(f"| CLIP zero-shot, colour + shape, {split} | {acc:.1%} |")
    names = list(result["adherence"])
    n, keep = result["candidates"], result["top"]
    header = " | ".join(f"{name}: all {n} | {name}: CLIP top {keep}" for name in names)
    lines += ["", f"| prompts | {header} |", "| --- |" + " --- | --- |" * len(names)]
    for group in result["adherence"][names[0]]:
        cells = " | ".join(f"{result['adherence'][name][group]['all']:.1%} | "
                           f"{result['adherence'][name][group]['top']:.1%}" for name in names)
        lines.append(f"| {group} ({len(result['adherence'][names[0]][group]['prompts'])} prompts) | {cells} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pack", nargs="?")
    parser.add_argument("--phrasings", default="training,heldout", help="comma-separated, from " + ", ".join(PHRASINGS))
    parser.add_argument("--merge", nargs="+", help="result files of separate runs, to merge into --out")
    parser.add_argument("--prompts", type=int, default=8, help="per group; the first 8 are always the same")
    parser.add_argument("--groups", help="comma-separated, from " + ", ".join(GROUPS) + "; default all")
    parser.add_argument("--candidates", type=int, default=512)
    parser.add_argument("--top", type=int, default=32)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.merge:
        results = []
        for path in args.merge:
            with open(path) as f:
                results.append(json.load(f))
        result = merge(results)
    else:
        result = evaluate(args.pack, args.prompts, args.candidates, args.top, args.phrasings.split(","),
                          groups=args.groups and args.groups.split(","))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    print(markdown(result))


if __name__ == "__main__":
    main()
