"""What a caption claims about a scene, so that contrastive training knows every true
(image, caption) pair in a batch, not only the diagonal.

CLIP's loss treats every other caption in a batch as wrong. In the shapes world many are
right: two scenes of a small red circle, or "a square" for any scene with a square in it.
Training CLIP on partial captions ("a square", "something yellow") with all true pairs as
positives teaches the two towers shape and colour apart from each other, which is what a
colour-shape pair never seen in training needs.

Scenes and claims are rows of small integers, so a batch's truth table is a few numpy ops.
"""
from __future__ import annotations

import numpy as np

from training.world import phrasing
from training.world import shapes as world

ANY = -1
COLOURS = list(world.COLOURS)
SHAPES, SIZES, RELATIONS = world.SHAPES, world.SIZES, world.RELATIONS
_INVERSE = {RELATIONS.index(r): RELATIONS.index(i) for r, i in world.INVERSE_RELATION.items()}

# Scene row: [objects, colour0, shape0, size0, colour1, shape1, size1, relation, hpos, vpos].
# Claim row: [kind, colour0, shape0, size0, colour1, shape1, size1, relation, hpos, vpos],
# ANY = unstated. The place (hpos, vpos) is a single object's only.
SOME_OBJECT, ONE_OBJECT, TWO_OBJECTS = 0, 1, 2
# A scene row's colour when its image shows it in another colour (CLIP's recoloured images):
# no palette colour is true of it.
NO_COLOUR = -2
COLUMNS, HPOS_COL, VPOS_COL = phrasing.COLUMNS, phrasing.HPOS_COL, phrasing.VPOS_COL


def scene_rows(scenes: list[world.Scene]) -> np.ndarray:
    rows = np.full((len(scenes), COLUMNS), ANY, dtype=np.int16)
    for i, scene in enumerate(scenes):
        rows[i, 0] = len(scene.objects)
        for j, obj in enumerate(scene.objects):
            rows[i, 1 + 3 * j:4 + 3 * j] = (COLOURS.index(obj.colour), SHAPES.index(obj.shape), SIZES.index(obj.size))
        if scene.relation is not None:
            rows[i, 7] = RELATIONS.index(scene.relation)
        else:
            h, v = world.position_of(scene.objects[0].cx, scene.objects[0].cy)
            rows[i, HPOS_COL], rows[i, VPOS_COL] = world.HPOS.index(h), world.VPOS.index(v)
    return rows


def full_caption(row: np.ndarray, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A caption of the whole scene in one of the training phrasings (phrasing.py), and its
    claim: sizes and place only where stated."""
    return phrasing.training_caption(row, rng)


def partial_caption(row: np.ndarray, rng: np.random.Generator, colourless: bool = False) -> tuple[str, np.ndarray]:
    """A caption that names one attribute or two of one of the scene's objects; colourless,
    never its colour (for an image that shows it in another colour)."""
    j = int(rng.integers(row[0]))
    colour, shape, size = row[1 + 3 * j:4 + 3 * j]
    kinds = [kind for kind in phrasing.PARTIAL_TEMPLATES if not (colourless and "colour" in kind)]
    kind = kinds[int(rng.integers(len(kinds)))]
    templates = phrasing.PARTIAL_TEMPLATES[kind]
    text = templates[int(rng.integers(len(templates)))].format(
        colour=COLOURS[colour], shape=SHAPES[shape], size=SIZES[size])
    claim = np.full(COLUMNS, ANY, dtype=np.int16)
    claim[0] = SOME_OBJECT
    claim[1:4] = (colour if "colour" in kind else ANY, shape if "shape" in kind else ANY,
                  size if "size" in kind else ANY)
    return text, claim


def _matches(claim_obj: np.ndarray, scene_obj: np.ndarray) -> np.ndarray:
    """[C, 3] stated attributes against [S, 3] object attributes -> [C, S]."""
    c, s = claim_obj[:, None, :], scene_obj[None, :, :]
    return ((c == ANY) | (c == s)).all(-1)


def truth(claims: np.ndarray, scenes: np.ndarray) -> np.ndarray:
    """[C, S] bool: whether claim c is true of scene s."""
    first, second = scenes[:, 1:4], scenes[:, 4:7]
    c_first, c_second = claims[:, 1:4], claims[:, 4:7]
    kind, count = claims[:, 0:1], scenes[None, :, 0]
    rel = claims[:, 7:8]
    inverse = np.array([_INVERSE.get(int(r), ANY) for r in scenes[:, 7]], dtype=np.int16)[None, :]
    place = _matches(claims[:, HPOS_COL:VPOS_COL + 1], scenes[:, HPOS_COL:VPOS_COL + 1])
    one = (count == 1) & _matches(c_first, first) & place
    two = (count == 2) & (
        (_matches(c_first, first) & _matches(c_second, second) & (rel == scenes[None, :, 7]))
        | (_matches(c_first, second) & _matches(c_second, first) & (rel == inverse)))
    some = _matches(c_first, first) | ((count == 2) & _matches(c_first, second))
    return np.where(kind == ONE_OBJECT, one, np.where(kind == TWO_OBJECTS, two, some))
