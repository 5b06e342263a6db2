"""Reads a shapes-world image back into objects, and judges whether it shows a scene.

Each pixel is explained as a blend of the background and one palette colour (the one whose
blend line it lies closest to), so anti-aliased edges keep their object's colour. Pixels
more than half covered form objects: connected components per colour, specks ignored.
Shape comes from matching the object's box, scaled to a fixed grid, against templates
rendered by the world itself; size from the box's extent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from training.world import shapes as world

MIN_AREA = 24  # pixels; smaller blobs are noise (the smallest object covers about 70)
FOREGROUND_ALPHA = 0.5  # how much of a pixel's colour must come from the palette colour
SIZE_THRESHOLD = (world.SIZE_EXTENT["small"][1] + world.SIZE_EXTENT["large"][0]) / 2
RELATION_MARGIN = 4.0  # pixels the centres must differ by along the relation's axis
GRID = 8  # shape templates are compared on a GRID x GRID resampling of the object's box

_COLOUR_NAMES = list(world.COLOURS)
_PALETTE = np.array([world.COLOURS[c] for c in _COLOUR_NAMES], dtype=np.float32)


@dataclass(frozen=True)
class ObjRead:
    shape: str
    colour: str
    size: str
    cx: float
    cy: float


def _background(image: np.ndarray) -> np.ndarray:
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]).astype(np.float32)
    return np.median(border, axis=0)


def _unmix(image: np.ndarray) -> np.ndarray:
    """Per pixel: the index of the palette colour that explains it as a blend with the
    background holding at least FOREGROUND_ALPHA of that colour (the blend line it lies
    closest to), or -1 for background."""
    pixels = image.reshape(-1, 3).astype(np.float32)
    bg = _background(image)
    ink = _PALETTE - bg  # [K, 3]
    offset = pixels - bg  # [P, 3]
    labels = np.full(len(pixels), -1, dtype=np.int64)
    # A pixel holding alpha of a colour is at least alpha * |ink| from the background; only
    # those near enough to matter are unmixed (0.8: room for rounding).
    reach = FOREGROUND_ALPHA * np.sqrt((ink * ink).sum(axis=1)).min()
    candidates = np.nonzero((offset * offset).sum(axis=1) >= reach * reach * 0.8)[0]
    if len(candidates):
        off = offset[candidates]
        alpha = np.clip(off @ ink.T / (ink * ink).sum(axis=1), 0.0, 1.0)  # [P, K]
        residual = ((off[:, None, :] - alpha[:, :, None] * ink[None]) ** 2).sum(axis=2)
        best = residual.argmin(axis=1)
        strong = alpha[np.arange(len(best)), best] >= FOREGROUND_ALPHA
        labels[candidates[strong]] = best[strong]
    return labels.reshape(image.shape[:2])


def _runs(labels: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Horizontal runs of one non-background label: (row, start, end, label), end exclusive."""
    runs = []
    for row, values in enumerate(labels):
        edges = np.nonzero(np.diff(values))[0] + 1
        starts = np.concatenate(([0], edges))
        ends = np.concatenate((edges, [len(values)]))
        for start, end in zip(starts.tolist(), ends.tolist()):
            if values[start] >= 0:
                runs.append((row, start, end, int(values[start])))
    return runs


def _components(labels: np.ndarray) -> list[tuple[int, list[tuple[int, int, int]]]]:
    """8-connected components of equal labels: (label, its runs as (row, start, end))."""
    runs = _runs(labels)
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_row: dict[int, list[int]] = {}
    for i, (row, start, end, label) in enumerate(runs):
        for j in by_row.get(row - 1, []):
            _, s2, e2, label2 = runs[j]
            if label2 == label and start <= e2 and s2 <= end:  # touching, diagonals included
                parent[root(i)] = root(j)
        by_row.setdefault(row, []).append(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(runs)):
        groups.setdefault(root(i), []).append(i)
    return [(runs[g[0]][3], [runs[i][:3] for i in g]) for g in groups.values()]


def _box_profile(mask: np.ndarray) -> np.ndarray:
    """The mask cropped to its bounding box and resampled to GRID x GRID (area average)."""
    crop = Image.fromarray(mask.astype(np.float32), mode="F")
    return np.asarray(crop.resize((GRID, GRID), Image.BOX), dtype=np.float32)


def _blur(cover: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with a margin around the object, so blurred edges are not cut off."""
    cover = np.pad(cover, 4)
    if sigma == 0:
        return cover
    taps = np.arange(-4, 5)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    rows = np.apply_along_axis(np.convolve, 1, cover, kernel, mode="same")
    return np.apply_along_axis(np.convolve, 0, rows, kernel, mode="same")


def _templates() -> list[tuple[str, np.ndarray]]:
    """Each shape at many extents and sub-pixel offsets, sharp and blurred, since generated
    images are softer than renders."""
    templates = []
    for shape in world.SHAPES:
        for extent in np.arange(10.0, 30.0, 1.5):
            for offset in (0.0, 0.25, 0.5):
                obj = world.Obj(shape, "red", "small", 32 + offset, 32 + offset, float(extent))
                _, _, cover = world.coverage(obj)
                for sigma in (0.0, 0.8, 1.3):
                    mask = _blur(cover, sigma) >= FOREGROUND_ALPHA
                    rows, cols = np.nonzero(mask)
                    box = mask[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
                    templates.append((shape, _box_profile(box)))
    return templates


_TEMPLATES = _templates()
_TEMPLATE_STACK = np.stack([t for _, t in _TEMPLATES])


def _classify_shape(box: np.ndarray) -> str:
    distances = ((_TEMPLATE_STACK - _box_profile(box)) ** 2).sum(axis=(1, 2))
    return _TEMPLATES[int(distances.argmin())][0]


def read_objects(image: np.ndarray) -> list[ObjRead]:
    """The objects in an RGB uint8 image [H, W, 3], largest first."""
    found = []
    for k, runs in _components(_unmix(image)):
        area = sum(end - start for _, start, end in runs)
        if area < MIN_AREA:
            continue
        r0, r1 = min(r for r, _, _ in runs), max(r for r, _, _ in runs) + 1
        c0, c1 = min(s for _, s, _ in runs), max(e for _, _, e in runs)
        box = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        for row, start, end in runs:
            box[row - r0, start - c0: end - c0] = True
        read = ObjRead(
            shape=_classify_shape(box),
            colour=_COLOUR_NAMES[k],
            size="large" if max(r1 - r0, c1 - c0) >= SIZE_THRESHOLD else "small",
            cx=(c0 + c1) / 2,
            cy=(r0 + r1) / 2,
        )
        found.append((area, read))
    found.sort(key=lambda item: -item[0])
    return [read for _, read in found]


def relation_holds(relation: str, first: ObjRead | world.Obj, second: ObjRead | world.Obj) -> bool:
    """Whether `first` is `relation` `second`: the centres differ by RELATION_MARGIN along the
    relation's axis, and by more along it than across it."""
    dx, dy = second.cx - first.cx, second.cy - first.cy
    along, across = {
        "left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx),
    }[relation]
    return along >= RELATION_MARGIN and along > abs(across)


def _matches(read: ObjRead, obj: world.Obj, check_size: bool) -> bool:
    return read.colour == obj.colour and read.shape == obj.shape and (not check_size or read.size == obj.size)


def position_holds(read: ObjRead, h: str | None, v: str | None) -> bool:
    """Whether the object is in the stated place (None: that axis is not stated)."""
    at_h, at_v = world.position_of(read.cx, read.cy)
    return h in (None, at_h) and v in (None, at_v)


def judge(image: np.ndarray, scene: world.Scene, check_size: bool = True,
          position: tuple[str | None, str | None] = (None, None)) -> bool:
    """Whether the image shows the scene: as many objects, each with the scene's colour and
    shape (and size, when check_size; captions that leave size out should pass False), for
    two objects the scene's relation between them, and for one the stated position."""
    reads = read_objects(image)
    if len(reads) != len(scene.objects):
        return False
    if len(reads) == 1:
        return _matches(reads[0], scene.objects[0], check_size) and position_holds(reads[0], *position)
    first, second = scene.objects
    for a, b in ((reads[0], reads[1]), (reads[1], reads[0])):
        if _matches(a, first, check_size) and _matches(b, second, check_size) and relation_holds(scene.relation, a, b):
            return True
    return False
