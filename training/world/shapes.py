"""The shapes world: 64x64 scenes of one or two flat shapes on a plain background.

Everything is deterministic from a numpy Generator, and rendering is plain numpy (analytic
coverage on a 4x supersampled grid), so the same seed gives the same bytes on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 64
SHAPES: list[str] = ["circle", "square", "triangle", "cross"]
# Far apart in RGB and in their direction from the background, so that both the oracle and
# a blurry generator keep them distinct.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 170),
    "cyan": (30, 200, 220),
}
BACKGROUND: tuple[int, int, int] = (235, 235, 235)
SIZES: list[str] = ["small", "large"]
# Bounding-box extent in pixels; the gap between the ranges keeps size readable from pixels.
SIZE_EXTENT: dict[str, tuple[float, float]] = {"small": (12.0, 16.0), "large": (22.0, 26.0)}
RELATIONS: list[str] = ["left of", "right of", "above", "below"]
# Where a single object is: each axis in three bands with clear gaps between them, so that
# "on the left", "at the top" or "in the centre" is decidable from pixels.
HPOS: list[str] = ["left", "centre", "right"]
VPOS: list[str] = ["top", "middle", "bottom"]
BAND_FRACTION = 0.2  # each band's width as a fraction of the range the centre may take
CENTRE_BAND = 7.0  # pixels from the image centre that still count as the centre, per axis
# (colour, shape) pairs the train split never contains: one per shape, one per colour, so
# every colour and every shape is still seen in training.
HELDOUT_PAIRS: set[tuple[str, str]] = {
    ("red", "triangle"),
    ("green", "cross"),
    ("blue", "circle"),
    ("yellow", "square"),
}
SPLITS = ("train", "heldout")

CROSS_ARM = 0.36  # arm thickness as a fraction of the extent
EDGE_MARGIN = 2.0  # pixels between an object and the image border
RELATION_GAP = 4.0  # pixels between two objects' boxes along the relation's axis
SUPERSAMPLE = 4

RELATION_PHRASE = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}
INVERSE_RELATION: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
_ALL_PAIRS = [(c, s) for c in COLOURS for s in SHAPES]
_TRAIN_PAIRS = [p for p in _ALL_PAIRS if p not in HELDOUT_PAIRS]
_HELDOUT_LIST = sorted(HELDOUT_PAIRS)


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    cx: float  # centre of the bounding box, pixels
    cy: float
    extent: float = 0.0  # bounding-box side in pixels; 0 means the middle of the size's range

    @property
    def side(self) -> float:
        if self.extent > 0:
            return self.extent
        lo, hi = SIZE_EXTENT[self.size]
        return (lo + hi) / 2


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    relation: str | None  # relation of objects[0] to objects[1]; None for one object


def label(obj: Obj) -> str:
    return f"{obj.colour} {obj.shape}"


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _pairs_for(rng: np.random.Generator, split: str, n: int) -> list[tuple[str, str]]:
    if split == "train":
        first = _pick(rng, _TRAIN_PAIRS)
        if n == 1:
            return [first]
        second = _pick(rng, [p for p in _TRAIN_PAIRS if p != first])
        return [first, second]
    if split != "heldout":
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    held = _pick(rng, _HELDOUT_LIST)
    if n == 1:
        return [held]
    other = _pick(rng, [p for p in _ALL_PAIRS if p != held])
    return [held, other] if rng.random() < 0.5 else [other, held]


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * rng.random())


def _place_pair(rng: np.random.Generator, relation: str, s0: float, s1: float):
    """Centres for two objects so that objects[0] is `relation` objects[1] with a clear margin:
    their boxes are RELATION_GAP apart along the axis, and the offset across the axis is at
    most half the offset along it."""
    first, second = (s0, s1) if relation in ("left of", "above") else (s1, s0)
    lo_a, hi_b = first / 2 + EDGE_MARGIN, IMAGE_SIZE - second / 2 - EDGE_MARGIN
    need = (first + second) / 2 + RELATION_GAP
    a = _uniform(rng, lo_a, hi_b - need)
    b = _uniform(rng, a + need, hi_b)
    along = b - a
    pa = _uniform(rng, first / 2 + EDGE_MARGIN, IMAGE_SIZE - first / 2 - EDGE_MARGIN)
    lo_b = max(second / 2 + EDGE_MARGIN, pa - along / 2)
    hi_b2 = min(IMAGE_SIZE - second / 2 - EDGE_MARGIN, pa + along / 2)
    pb = _uniform(rng, lo_b, hi_b2)
    (c0, p0), (c1, p1) = ((a, pa), (b, pb)) if relation in ("left of", "above") else ((b, pb), (a, pa))
    if relation in ("left of", "right of"):
        return (c0, p0), (c1, p1)
    return (p0, c0), (p1, c1)


def _banded(u: float, half: float) -> float:
    """A centre coordinate in one of three bands (near the low edge, at the middle, near the
    high edge), the band and the place inside it both read from one uniform draw."""
    lo, hi = half, IMAGE_SIZE - half
    width = (hi - lo) * BAND_FRACTION
    band = min(int(u * 3), 2)
    start = (lo, IMAGE_SIZE / 2 - width / 2, hi - width)[band]
    return start + (u * 3 - band) * width


def position_of(cx: float, cy: float) -> tuple[str, str]:
    """The (horizontal, vertical) place of an object centred at (cx, cy)."""
    def band(offset: float, names: list[str]) -> str:
        return names[1] if abs(offset) < CENTRE_BAND else names[0 if offset < 0 else 2]

    return band(cx - IMAGE_SIZE / 2, HPOS), band(cy - IMAGE_SIZE / 2, VPOS)


def sample_scene(rng: np.random.Generator, split: str = "train", n_objects: int | None = None) -> Scene:
    n = int(rng.integers(1, 3)) if n_objects is None else n_objects
    if n not in (1, 2):
        raise ValueError(f"n_objects must be 1 or 2, got {n}")
    pairs = _pairs_for(rng, split, n)
    sizes = [_pick(rng, SIZES) for _ in range(n)]
    extents = [_uniform(rng, *SIZE_EXTENT[s]) for s in sizes]
    if n == 1:
        half = extents[0] / 2 + EDGE_MARGIN
        centres = [(_banded(float(rng.random()), half), _banded(float(rng.random()), half))]
        relation = None
    else:
        relation = _pick(rng, RELATIONS)
        centres = list(_place_pair(rng, relation, extents[0], extents[1]))
    objects = tuple(
        Obj(shape, colour, size, round(cx, 3), round(cy, 3), round(ext, 3))
        for (colour, shape), size, ext, (cx, cy) in zip(pairs, sizes, extents, centres)
    )
    return Scene(objects, relation)


def _inside(shape: str, dx: np.ndarray, dy: np.ndarray, half: float) -> np.ndarray:
    """Whether sample points at offsets (dx, dy) from the centre lie in the shape."""
    if shape == "circle":
        return dx * dx + dy * dy <= half * half
    if shape == "square":
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "triangle":  # apex up, base at the bottom of the box
        depth = (dy + half) / 2  # half-width grows from 0 at the apex to `half` at the base
        return (dy >= -half) & (dy <= half) & (np.abs(dx) <= depth)
    if shape == "cross":
        arm = half * CROSS_ARM
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= arm) & (ay <= half)) | ((ay <= arm) & (ax <= half))
    raise ValueError(f"unknown shape {shape!r}")


def coverage(obj: Obj) -> tuple[slice, slice, np.ndarray]:
    """The fraction of each pixel the object covers, over the pixels its box touches."""
    half = obj.side / 2
    x0, x1 = max(0, int(np.floor(obj.cx - half))), min(IMAGE_SIZE, int(np.ceil(obj.cx + half)))
    y0, y1 = max(0, int(np.floor(obj.cy - half))), min(IMAGE_SIZE, int(np.ceil(obj.cy + half)))
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = (np.arange(x0, x1)[:, None] + offsets).ravel() - obj.cx
    ys = (np.arange(y0, y1)[:, None] + offsets).ravel() - obj.cy
    inside = _inside(obj.shape, xs[None, :], ys[:, None], half)
    cover = inside.reshape(y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE).mean(axis=(1, 3))
    return slice(y0, y1), slice(x0, x1), cover


def render(scene: Scene) -> np.ndarray:
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float64)
    image[:] = BACKGROUND
    for obj in scene.objects:
        rows, cols, cover = coverage(obj)
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float64)
        patch = image[rows, cols]
        image[rows, cols] = patch + cover[:, :, None] * (colour - patch)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _phrase(obj: Obj, with_size: bool) -> str:
    return f"a {obj.size} {obj.colour} {obj.shape}" if with_size else f"a {obj.colour} {obj.shape}"


_SINGLE_TEMPLATES = ["{a}", "there is {a}", "an image of {a}", "{a} on a plain background"]
_PAIR_TEMPLATES = ["{a} {rel} {b}", "there is {a} {rel} {b}", "an image of {a} {rel} {b}", "{b} {inv} {a}"]


def describe(scene: Scene, rng: np.random.Generator) -> tuple[str, tuple[bool, ...]]:
    """A caption in a random template, and for each object whether it states its size (each
    object's size is stated or left out at random)."""
    sized = tuple(bool(rng.random() < 0.5) for _ in scene.objects)
    phrases = [_phrase(o, s) for o, s in zip(scene.objects, sized)]
    if scene.relation is None:
        return _pick(rng, _SINGLE_TEMPLATES).format(a=phrases[0]), sized
    return _pick(rng, _PAIR_TEMPLATES).format(
        a=phrases[0], b=phrases[1],
        rel=RELATION_PHRASE[scene.relation], inv=RELATION_PHRASE[INVERSE_RELATION[scene.relation]],
    ), sized


def caption(scene: Scene, rng: np.random.Generator) -> str:
    return describe(scene, rng)[0]


def canonical_caption(scene: Scene) -> str:
    """The evaluation prompt: one fixed template that states every attribute."""
    phrases = [_phrase(o, True) for o in scene.objects]
    if scene.relation is None:
        return phrases[0]
    return f"{phrases[0]} {RELATION_PHRASE[scene.relation]} {phrases[1]}"


def make_dataset(n: int, seed: int, split: str = "train") -> tuple[np.ndarray, list[str], list[Scene]]:
    rng = np.random.default_rng(seed)
    scenes, captions = [], []
    for _ in range(n):
        scene = sample_scene(rng, split)
        scenes.append(scene)
        captions.append(caption(scene, rng))
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for i, scene in enumerate(scenes):
        images[i] = render(scene)
    return images, captions, scenes
