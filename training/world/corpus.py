"""The text the shapes tokenizer is trained on: world captions, plus everyday words that
users type into prompts, so that text outside the world still gets sensible tokens."""
from __future__ import annotations

import numpy as np

from training.world import shapes as world

CAPTIONS_PER_SPLIT = 20000
EVERYDAY_REPEATS = 3  # enough for their merges to clear the trainer's minimum pair count

# Prompt words beyond the world: more colours, shapes, sizes, places and things, with the
# world's own words. Far rarer than captions, so their merges come after the world's.
EVERYDAY = """
orange pink brown black white grey gray gold silver violet magenta teal navy beige
star heart hexagon pentagon diamond rectangle oval ellipse ring line arrow dot spot cube
sphere cone pyramid cylinder tiny huge big little medium tall short wide narrow long round
bright dark light pale deep shiny glowing striped dotted wooden metal glass paper stone
top bottom middle center centre corner edge next beside behind under over between near far
two three four many several some one with and or on in at by from of the an this that
photo painting drawing picture sketch cartoon render illustration scene background plain
cat dog bird fish horse tree flower house car boat sun moon cloud mountain river sea sky
apple banana cup chair table book lamp clock door window road city forest garden beach
red green blue yellow purple cyan circle square triangle cross small large left right
above below there is to a
"""


def caption_corpus(n_per_split: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = []
    for split in world.SPLITS:
        for _ in range(n_per_split):
            scene = world.sample_scene(rng, split)
            texts.append(world.caption(scene, rng))
            texts.append(world.canonical_caption(scene))
    return texts


def tokenizer_corpus(seed: int) -> list[str]:
    return caption_corpus(CAPTIONS_PER_SPLIT, seed) + EVERYDAY.split("\n") * EVERYDAY_REPEATS
