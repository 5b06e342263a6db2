"""Choose CLIP's caption mix without looking at the held-out colour-shape pairs.

The pack's promise on pairs never seen in training is measured on the held-out pairs, so a
recipe picked on them would be tuned on the test. This trains CLIP as the recipe does but
with four more pairs, all from the train split, taken out of its data (VALIDATION_PAIRS), and
every few hundred steps measures zero-shot on single-object scenes of those pairs: the same
question, asked of pairs the final recipe does see, so choosing on it leaks nothing.

Usage: python3 -m training.eval.clip_validation --data training/runs/demo --out DIR
           [--plain-rate 0.5] [--partial-rate 0.3] [--recolour-rate 0.25] [--decoded-rate 0.5] [--shape-mask 0.8]
           [--steps 4000] [--every 500]
"""
import argparse
import dataclasses
import json
import os

import numpy as np
import torch

from training.eval.evaluate import LABELS, Scorer
from training.model import configs, train
from training.model.trainer import Log
from training.world import phrasing
from training.world import shapes as world
from training.world.bpe import Tokenizer

# One per shape, none a held-out pair's colour-shape twin: every colour and every shape keeps
# at least two partners in what CLIP still sees.
VALIDATION_PAIRS = [("green", "circle"), ("purple", "square"), ("cyan", "triangle"), ("red", "cross")]


def object_pairs(rows):
    """[N, 2] indices into LABELS of each scene's objects (-1 where there is no second)."""
    pairs = np.full((len(rows), 2), -1)
    for j in range(2):
        present = rows[:, 0] > j
        colour, shape = rows[:, 1 + 3 * j], rows[:, 2 + 3 * j]
        pairs[present, j] = (colour * len(world.SHAPES) + shape)[present]
    return pairs


def two_object_probe(vqvae, count=240, seed=4242):
    """Two-object train scenes without a validation pair, decoded by the image tokenizer,
    with each of their objects alone, decoded too, and their canonical captions."""
    rng = np.random.default_rng(seed)
    scenes = []
    while len(scenes) < count:
        scene = world.sample_scene(rng, "train", 2)
        if not any((o.colour, o.shape) in VALIDATION_PAIRS for o in scene.objects):
            scenes.append(scene)

    def decoded(chosen):
        rendered = np.stack([world.render(s) for s in chosen])
        with torch.no_grad():
            codes = vqvae.encode(train.to_pixels(rendered, "cpu")).numpy()
        return train.decode_codes(vqvae, codes, "cpu")

    alone = [decoded([world.Scene((s.objects[j],), None) for s in scenes]) for j in range(2)]
    return decoded(scenes), alone, [world.canonical_caption(s) for s in scenes]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="training/runs/demo",
                        help="a run folder with data.npz and the image tokenizer (trained there if missing)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--plain-rate", type=float, default=phrasing.PLAIN_RATE)
    parser.add_argument("--partial-rate", type=float, default=train.CLIP_PARTIAL_RATE)
    parser.add_argument("--recolour-rate", type=float, default=train.CLIP_RECOLOUR_RATE)
    parser.add_argument("--decoded-rate", type=float, default=train.CLIP_DECODED_RATE)
    parser.add_argument("--steps", type=int, default=train.PROFILES["cpu"]["clip_steps"])
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--shape-mask", type=float, default=configs.SHAPE_MASK_THRESHOLD,
                        help="the image tower's shape_mask_threshold (0: its convolutions see colour)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    phrasing.PLAIN_RATE = args.plain_rate
    os.makedirs(args.out, exist_ok=True)
    log = Log(args.out)
    profile = dict(train.PROFILES["cpu"], clip_steps=args.steps)
    images, rows = train.load_data(args.data, profile["scenes"], log)
    vqvae = train.train_vqvae(images, profile, "cpu", args.data, log)  # the run's, if it has one
    decoded = train.decode_codes(vqvae, train.encode_codes(vqvae, images, "cpu", args.data, log), "cpu")

    held = [LABELS.index(f"{c} {s}") for c, s in VALIDATION_PAIRS]
    pairs = object_pairs(rows)
    shows_validation = np.isin(pairs, held).any(1)
    seen = np.flatnonzero(~shows_validation)
    probe = np.flatnonzero(shows_validation & (rows[:, 0] == 1))[:240]
    seen_probe = seen[rows[seen, 0] == 1][:240]
    log(stage="validation", training_scenes=len(seen), probe_scenes=len(probe))

    manifest = {"clip": {"preprocess": {"size": 64, "interpolation": "bilinear", "mean": configs.PIXEL_MEAN,
                                        "std": configs.PIXEL_STD},
                         "context_length": train.sizes(profile)["clip"].context_length, "templates": configs.TEMPLATES}}
    tokenizer = Tokenizer.load(train.TOKENIZER)
    pairs_full, pairs_alone, pair_captions = two_object_probe(vqvae)

    def measure(model):
        """Zero-shot over all 24 colour-shape labels on both probes, rendered and decoded; the
        validation pairs' shape alone ("a circle" against "a square", ...): whether the image
        tower sees the shape; and how often a decoded two-object scene scores higher against its
        caption than either of its objects alone, decoded: what reranking samples needs."""
        model.eval()
        scorer = Scorer(model, manifest, tokenizer)
        pair_labels, shape_labels = scorer.label_embeddings(LABELS), scorer.label_embeddings(world.SHAPES)
        probe_images, seen_images = scorer.images(images[probe]), scorer.images(images[seen_probe])
        probe_decoded = scorer.images(decoded[probe])
        captions = scorer.text(pair_captions)
        full = (scorer.images(pairs_full) * captions).sum(-1)
        alone = torch.stack([(scorer.images(x) * captions).sum(-1) for x in pairs_alone])
        model.train()

        def accuracy(embedded, labels, truth):
            return float(((embedded @ labels.t()).argmax(-1).numpy() == truth).mean())

        return {"validation_pairs": accuracy(probe_images, pair_labels, pairs[probe, 0]),
                "seen_pairs": accuracy(seen_images, pair_labels, pairs[seen_probe, 0]),
                "validation_shapes": accuracy(probe_images, shape_labels, rows[probe, 2]),
                "validation_pairs_decoded": accuracy(probe_decoded, pair_labels, pairs[probe, 0]),
                "decoded_two_beat_one": float((full > alone).all(0).float().mean())}

    def every(step, model):
        if (step + 1) % args.every == 0:
            log(stage="validation", step=step + 1, **measure(model))

    config = dataclasses.replace(train.sizes(profile)["clip"], shape_mask_threshold=args.shape_mask)
    model = train.train_clip(images[seen], lambda: decoded[seen], rows[seen], profile, "cpu", args.out, log,
                             partial_rate=args.partial_rate, recolour_rate=args.recolour_rate,
                             decoded_rate=args.decoded_rate, after_step=every, config=config)
    result = {"plain_rate": args.plain_rate, "partial_rate": args.partial_rate, "recolour_rate": args.recolour_rate,
              "decoded_rate": args.decoded_rate, "shape_mask": args.shape_mask, "steps": args.steps, **measure(model)}
    with open(os.path.join(args.out, "validation.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
