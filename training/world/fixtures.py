"""Writes the fixtures the TypeScript tests read:

- test/fixtures/tokenizer-parity.json: texts and the ids this package's encoder gives them
  with the committed shapes tokenizer; the JS library must give the same ids.
- test/fixtures/scenes/: single-object renders (train pairs and held-out pairs) with their
  colour + shape labels, for zero-shot classification tests.

    python3 -m training.world.fixtures
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from training.world import shapes as world
from training.world.bpe import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = "training/tokenizer/shapes-bpe.json"
PARITY_FIXTURE = ROOT / "test/fixtures/tokenizer-parity.json"
SCENES_DIR = ROOT / "test/fixtures/scenes"
SCENES_PER_SPLIT = 12
SEED = 2024

# Texts outside the captions' comfortable ground: case, spacing, control characters,
# punctuation, digits, accents (composed and decomposed), other scripts, emoji, special-token
# look-alikes, and one very long prompt.
HOSTILE_TEXTS = [
    "",
    " ",
    "A RED CIRCLE",
    "A Small Blue Square To The Left Of A Large Green Triangle",
    "  a red circle",
    "a red circle   ",
    "a  red   circle",
    "\ta red\tcircle\n",
    "a red circle\r\nabove a blue square",
    "a red circle,above a blue square!!!",
    "(a red circle) [a blue square] {a cross} <a triangle>",
    "it's a circle; they're squares; we've crosses, i'm sure you'll see, he'd agree",
    "it’s curly",
    "3 red circles, 12 blue squares and 1.5 crosses at 100%",
    "x² ½ ① ٣",
    "café crème brûlée",
    "cafe\u0301 cre\u0300me",
    "ÉCOLE Ünïcödé ÅNGSTRÖM",
    "ΣΑΣ σας İstanbul straße",
    "красный круг",
    "一个红色的圆圈在蓝色正方形的左边",
    "赤い円と青い四角",
    "빨간 원",
    "دائرة حمراء",
    "लाल वृत्त",
    "🔴 red circle 🟦 blue square",
    "👩‍🔬🏳️‍🌈👍🏽",
    "a\u00a0red\u2003circle\u3000here",
    "zero\u200bwidth joiner\u200d",
    "<|pad|>",
    "<|bos|>a red circle<|eos|>",
    "<|PAD|>",
    "a <|eos|> b <|unknown|>",
    "$$$ ### @@@ ~~~ ___",
    "' 's 'S ''s",
    " ".join(["a small red circle to the left of a large blue square"] * 30),
]


def parity_cases(tokenizer: Tokenizer) -> list[dict]:
    rng = np.random.default_rng(SEED)
    captions = []
    for split in world.SPLITS:
        for _ in range(6):
            scene = world.sample_scene(rng, split)
            captions += [world.caption(scene, rng), world.canonical_caption(scene)]
    texts = list(dict.fromkeys(captions + HOSTILE_TEXTS))  # unique, in order
    return [{"text": text, "ids": tokenizer.encode(text)} for text in texts]


def write_parity_fixture() -> None:
    tokenizer = Tokenizer.load(ROOT / TOKENIZER)
    # One case per line keeps the file short and its diffs readable.
    cases = ",\n  ".join(json.dumps(case, ensure_ascii=False) for case in parity_cases(tokenizer))
    text = f'{{\n "tokenizer": {json.dumps(TOKENIZER)},\n "cases": [\n  {cases}\n ]\n}}\n'
    PARITY_FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    PARITY_FIXTURE.write_text(text, encoding="utf-8")


def _fixture_scenes(rng: np.random.Generator, split: str) -> list[world.Scene]:
    """SCENES_PER_SPLIT one-object scenes, labels spread evenly: all different for train,
    each held-out pair equally often for heldout."""
    per_label = 1 if split == "train" else SCENES_PER_SPLIT // len(world.HELDOUT_PAIRS)
    scenes: list[world.Scene] = []
    while len(scenes) < SCENES_PER_SPLIT:
        scene = world.sample_scene(rng, split, n_objects=1)
        if sum(world.label(s.objects[0]) == world.label(scene.objects[0]) for s in scenes) < per_label:
            scenes.append(scene)
    return scenes


def scene_fixtures() -> list[tuple[str, str, world.Scene]]:
    """(file name, split, scene) of every scene fixture."""
    rng = np.random.default_rng(SEED)
    return [
        (f"{split}-{i:02d}.png", split, scene)
        for split in world.SPLITS
        for i, scene in enumerate(_fixture_scenes(rng, split))
    ]


def write_scene_fixtures() -> None:
    SCENES_DIR.mkdir(parents=True, exist_ok=True)
    labels = []
    for name, split, scene in scene_fixtures():
        Image.fromarray(world.render(scene)).save(SCENES_DIR / name, optimize=True)
        labels.append({"file": name, "label": world.label(scene.objects[0]), "split": split})
    (SCENES_DIR / "labels.json").write_text(json.dumps(labels, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    argparse.ArgumentParser(description="Write the tokenizer-parity and scene fixtures.").parse_args()
    write_parity_fixture()
    write_scene_fixtures()
    print(f"wrote {PARITY_FIXTURE.relative_to(ROOT)} and {SCENES_DIR.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
