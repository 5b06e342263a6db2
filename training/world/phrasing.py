"""Captions in the common English ways of saying a scene, and the claim each makes.

A caption is a structure ("{p}{a} {r} {b}", "{r} {b} there is {a}", ...) filled with words
for the relation or position ("to the left of", "left of", "on the left side of", ...) and
then with object phrases (with or without an article, size stated or not, synonyms). The
structure filled with its relation or position words but not yet with objects is the
caption's *key*. The keys in phrasings/heldout.json are never drawn for training: the
evaluation asks for them to measure wording the pack never saw (every word in them is a
training word; only the combination is new).
"""
from __future__ import annotations

import itertools
import json
import os

import numpy as np

from training.world import shapes as world

ANY = -1
HELDOUT_FILE = os.path.join(os.path.dirname(__file__), "phrasings", "heldout.json")

PREFIXES = ["", "there is ", "an image of ", "a picture of ", "a drawing of ", "a photo of "]
SINGLE_STRUCTURES = ["{p}{a}", "{p}{a} on a plain background"]
PAIR_STRUCTURES = ["{p}{a} {r} {b}", "{a} is {r} {b}", "{r} {b} is {a}", "{r} {b} there is {a}"]
POSITION_STRUCTURES = ["{p}{a} {pos}", "{a} is {pos}", "{pos} there is {a}", "{pos} is {a}"]

RELATION_WORDS = {
    "left of": ["to the left of", "left of", "on the left of", "on the left side of"],
    "right of": ["to the right of", "right of", "on the right of", "on the right side of"],
    "above": ["above", "over", "on top of"],
    "below": ["below", "under", "beneath", "underneath"],
}
# Phrases that state only the horizontal or only the vertical place, both at the centre, or a corner.
SIDE_WORDS = {side: [f"on the {side}", f"at the {side}", f"on the {side} side", f"to the {side}"]
              for side in ("left", "right")}
END_WORDS = {"top": ["at the top", "near the top", "in the upper half"],
             "bottom": ["at the bottom", "near the bottom", "in the lower half"]}
CENTRE_WORDS = ["in the centre", "in the center", "in the middle"]
_UPPER = {"top": "upper", "bottom": "lower"}
SYNONYMS = {"small": ["small", "little"], "large": ["large", "big"], "purple": ["purple", "violet"]}
CANONICAL_RATE = 0.6  # how often an attribute with synonyms keeps the world's own word
ARTICLE_RATE = 0.8
SIZE_RATE = 0.5
POSITION_RATE = 0.5  # single objects: how often the caption says where the object is
# How often a caption is in the world's own plain wording (shapes.py's templates, which pack
# 1.1 was trained on alone): the many phrasings spread a small model's steps thin, and the
# plain wording is what most prompts look like, so half the captions keep it.
PLAIN_RATE = 0.5
PLAIN_SINGLE_KEYS = ["{a}", "there is {a}", "an image of {a}", "{a} on a plain background"]
PLAIN_PAIR_KEYS = ["{a} {r} {b}", "there is {a} {r} {b}", "an image of {a} {r} {b}"]
PLAIN_POSITION_KEYS = ["{a} {pos}", "there is {a} {pos}"]
# Partial captions (claims.py): one or two attributes of one object, for CLIP. Here, with the
# other wordings, so that vocabulary() can list their words.
PARTIAL_TEMPLATES = {
    "shape": ["a {shape}", "there is a {shape}"],
    "size shape": ["a {size} {shape}"],
    "colour": ["something {colour}", "a {colour} thing"],
}

# Scene and claim rows (claims.py): [objects, colour0, shape0, size0, colour1, shape1, size1,
# relation, hpos, vpos]; positions are stated for single objects only.
COLUMNS = 10
HPOS_COL, VPOS_COL = 8, 9


def corner_words(v: str, h: str) -> list[str]:
    return [f"in the {v} {h} corner", f"at the {v} {h}", f"in the {_UPPER[v]} {h}"]


def position_words(h: str, v: str) -> list[tuple[str, str | None, str | None]]:
    """Every phrase true of an object in place (h, v), with the horizontal and vertical place
    it states (None where it says nothing about that axis)."""
    out = []
    if h != "centre":
        out += [(w, h, None) for w in SIDE_WORDS[h]]
    if v != "middle":
        out += [(w, None, v) for w in END_WORDS[v]]
    if h != "centre" and v != "middle":
        out += [(w, h, v) for w in corner_words(v, h)]
    if h == "centre" and v == "middle":
        out += [(w, h, v) for w in CENTRE_WORDS]
    return out


def _fill(structure: str, **words) -> str:
    return structure.format(a="{a}", b="{b}", **words)


def single_keys() -> list[str]:
    return [_fill(s, p=p) for s in SINGLE_STRUCTURES for p in PREFIXES]


def pair_keys(relation: str) -> list[str]:
    return [_fill(s, p=p, r=r) for s in PAIR_STRUCTURES for p in (PREFIXES if "{p}" in s else [""])
            for r in RELATION_WORDS[relation]]


def position_keys(phrase: str) -> list[str]:
    return [_fill(s, p=p, pos=phrase) for s in POSITION_STRUCTURES for p in (PREFIXES if "{p}" in s else [""])]


def load_heldout(path: str = HELDOUT_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def heldout_keys(heldout: dict) -> set[str]:
    keys = set(heldout["single"])
    for group in ("pairs", "positions"):
        for templates in heldout[group].values():
            keys.update(templates)
    return keys


HELDOUT = load_heldout()
HELDOUT_KEYS = heldout_keys(HELDOUT)


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _word(rng: np.random.Generator, word: str) -> str:
    choices = SYNONYMS.get(word)
    if not choices or rng.random() < CANONICAL_RATE:
        return word
    return _pick(rng, choices[1:])


def object_phrase(colour: str, shape: str, size: str | None, rng: np.random.Generator | None = None) -> str:
    """'a small red circle'; with rng, the article, the size and synonyms are drawn."""
    if rng is None:
        return f"a {size} {colour} {shape}" if size else f"a {colour} {shape}"
    words = ([_word(rng, size)] if size else []) + [_word(rng, colour), shape]
    article = "a " if rng.random() < ARTICLE_RATE else ""
    return article + " ".join(words)


def _draw_key(rng: np.random.Generator, keys: list[str]) -> str:
    """A key outside the held-out set (every list offered here holds some)."""
    while True:
        key = _pick(rng, keys)
        if key not in HELDOUT_KEYS:
            return key


def _cell(row: np.ndarray) -> tuple[str, str]:
    return world.HPOS[row[HPOS_COL]], world.VPOS[row[VPOS_COL]]


def training_caption(row: np.ndarray, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A caption of the scene row in a training phrasing, and its claim (claims.py): sizes and
    position only where the caption states them."""
    claim = row.copy()
    claim[0] = 1 if row[0] == 1 else 2
    claim[HPOS_COL] = claim[VPOS_COL] = ANY
    plain = rng.random() < PLAIN_RATE
    objects = []
    for j in range(row[0]):
        colour, shape, size = row[1 + 3 * j:4 + 3 * j]
        sized = rng.random() < SIZE_RATE
        if not sized:
            claim[3 + 3 * j] = ANY
        objects.append(object_phrase(claims_colour(colour), world.SHAPES[shape],
                                     world.SIZES[size] if sized else None, None if plain else rng))
    if row[0] == 2:
        relation = world.RELATIONS[row[7]]
        if plain:
            return _plain_pair(rng, relation, objects), claim
        key = _draw_key(rng, pair_keys(relation))
        return key.format(a=objects[0], b=objects[1]), claim
    if row[HPOS_COL] != ANY and rng.random() < POSITION_RATE:
        phrase, h, v = _pick(rng, position_words(*_cell(row)))
        if plain:
            phrase = canonical_position(*_cell(row))
            h, v = next((h, v) for words, h, v in position_words(*_cell(row)) if words == phrase)
        claim[HPOS_COL] = ANY if h is None else world.HPOS.index(h)
        claim[VPOS_COL] = ANY if v is None else world.VPOS.index(v)
        keys = [k.replace("{pos}", phrase) for k in PLAIN_POSITION_KEYS] if plain else position_keys(phrase)
        return _draw_key(rng, keys).format(a=objects[0]), claim
    return _draw_key(rng, PLAIN_SINGLE_KEYS if plain else single_keys()).format(a=objects[0]), claim


def _plain_pair(rng: np.random.Generator, relation: str, objects: list[str]) -> str:
    """The world's plain pair wording: one of three templates, or the pair the other way round
    ("b right of a") as often as any one of them."""
    if rng.random() < 0.25:
        return f"{objects[1]} {world.RELATION_PHRASE[world.INVERSE_RELATION[relation]]} {objects[0]}"
    key = _pick(rng, PLAIN_PAIR_KEYS).replace("{r}", world.RELATION_PHRASE[relation])
    return key.format(a=objects[0], b=objects[1])


def claims_colour(index: int) -> str:
    return list(world.COLOURS)[index]


def canonical_position(h: str, v: str) -> str:
    """The one phrase the evaluation's training-phrasing prompts use for a place."""
    if h == "centre" and v == "middle":
        return "in the centre"
    if h != "centre" and v != "middle":
        return f"in the {v} {h} corner"
    return f"on the {h}" if h != "centre" else f"at the {v}"


def heldout_position_templates(h: str, v: str) -> list[tuple[str, str | None, str | None]]:
    """Held-out templates true of an object in place (h, v), with what each states."""
    out = []
    for name, templates in HELDOUT["positions"].items():
        parts = name.split(" ")
        if name == "centre":
            stated = ("centre", "middle")
        elif len(parts) == 2:
            stated = (parts[1], parts[0])
        elif parts[0] in ("left", "right"):
            stated = (parts[0], None)
        else:
            stated = (None, parts[0])
        if stated[0] in (None, h) and stated[1] in (None, v):
            out += [(t, *stated) for t in templates]
    return out


def all_training_keys() -> list[str]:
    keys = single_keys() + [k for r in world.RELATIONS for k in pair_keys(r)]
    for h, v in itertools.product(world.HPOS, world.VPOS):
        keys += [k for phrase, _, _ in position_words(h, v) for k in position_keys(phrase)]
    return [k for k in dict.fromkeys(keys) if k not in HELDOUT_KEYS]


def vocabulary() -> list[str]:
    """Every word a training caption (full or partial, claims.py) can contain."""
    words = set()
    for key in all_training_keys():
        words.update(key.replace("{a}", "").replace("{b}", "").split())
    words.update(["a"], world.SHAPES, world.COLOURS, world.SIZES, *SYNONYMS.values())
    for templates in PARTIAL_TEMPLATES.values():
        for t in templates:
            words.update(w for w in t.split() if not w.startswith("{"))
    return sorted(words)


EXAMPLES = [
    "a small red circle",
    "a large green square in the top left corner",
    "a purple triangle at the bottom",
    "a cyan cross in the centre",
    "a small yellow circle to the left of a large blue square",
    "a big red square above a little cyan triangle",
    "there is a green triangle under a purple circle",
    "a blue cross on the right side of a yellow triangle",
]
