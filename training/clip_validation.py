"""Choose CLIP's caption mix without looking at the held-out colour-shape pairs.

The pack's promise on pairs never seen in training is measured on the held-out pairs, so a
recipe picked on them would be tuned on the test. This trains CLIP as the recipe does but
with four more pairs, all from the train split, taken out of its data (VALIDATION_PAIRS), and
every few hundred steps measures zero-shot on single-object scenes of those pairs: the same
question, asked of pairs the final recipe does see, so choosing on it leaks nothing.

Usage: python3 -m training.clip_validation --data training/runs/demo --out DIR
           [--plain-rate 0.5] [--partial-rate 0.3] [--recolour-rate 0.25] [--steps 4000] [--every 500]
"""
import argparse
import json
import os

import numpy as np
import torch

from training import claims, phrasing, shapes_world as world, train
from training.bpe import Tokenizer
from training.evaluate import LABELS, Scorer
from training.models import CLIP
from training.pack import TEMPLATES
from training.trainer import Log

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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="training/runs/demo", help="a run folder with data.npz")
    parser.add_argument("--out", required=True)
    parser.add_argument("--plain-rate", type=float, default=phrasing.PLAIN_RATE)
    parser.add_argument("--partial-rate", type=float, default=train.CLIP_PARTIAL_RATE)
    parser.add_argument("--recolour-rate", type=float, default=train.CLIP_RECOLOUR_RATE)
    parser.add_argument("--steps", type=int, default=train.PROFILES["cpu"]["clip_steps"])
    parser.add_argument("--every", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    phrasing.PLAIN_RATE = args.plain_rate
    os.makedirs(args.out, exist_ok=True)
    log = Log(args.out)
    images, rows = train.load_data(args.data, train.PROFILES["cpu"]["scenes"], log)

    held = [LABELS.index(f"{c} {s}") for c, s in VALIDATION_PAIRS]
    pairs = object_pairs(rows)
    shows_validation = np.isin(pairs, held).any(1)
    seen = np.flatnonzero(~shows_validation)
    probe = np.flatnonzero(shows_validation & (rows[:, 0] == 1))[:240]
    seen_probe = seen[rows[seen, 0] == 1][:240]
    log(stage="validation", training_scenes=len(seen), probe_scenes=len(probe))

    profile = dict(train.PROFILES["cpu"], clip_steps=args.steps)
    manifest = {"clip": {"preprocess": {"size": 64, "interpolation": "bilinear", "mean": train.PIXEL_MEAN,
                                        "std": train.PIXEL_STD},
                         "context_length": train.sizes(profile)["clip"].context_length, "templates": TEMPLATES}}
    tokenizer = Tokenizer.load(train.TOKENIZER)

    def measure(model):
        """Zero-shot over all 24 colour-shape labels on both probes, and the validation pairs'
        shape alone ("a circle" against "a square", ...): whether the image tower sees the shape."""
        model.eval()
        scorer = Scorer(model, manifest, tokenizer)
        pair_labels, shape_labels = scorer.label_embeddings(LABELS), scorer.label_embeddings(world.SHAPES)
        probe_images, seen_images = scorer.images(images[probe]), scorer.images(images[seen_probe])
        model.train()

        def accuracy(embedded, labels, truth):
            return float(((embedded @ labels.t()).argmax(-1).numpy() == truth).mean())

        return {"validation_pairs": accuracy(probe_images, pair_labels, pairs[probe, 0]),
                "seen_pairs": accuracy(seen_images, pair_labels, pairs[seen_probe, 0]),
                "validation_shapes": accuracy(probe_images, shape_labels, rows[probe, 2])}

    def every(step, model):
        if (step + 1) % args.every == 0:
            log(stage="validation", step=step + 1, **measure(model))

    model = train.train_clip(images[seen], rows[seen], profile, "cpu", args.out, log,
                             partial_rate=args.partial_rate, recolour_rate=args.recolour_rate, after_step=every)
    result = {"plain_rate": args.plain_rate, "partial_rate": args.partial_rate, "recolour_rate": args.recolour_rate,
              "steps": args.steps, **measure(model)}
    with open(os.path.join(args.out, "validation.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
