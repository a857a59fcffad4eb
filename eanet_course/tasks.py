"""Synthetic tasks built from digit tiles: what can patches learn about *each other*?

Each image is a ``g x g`` grid of 8x8 tiles from scikit-learn's digits
(:func:`eanet_course.data.load_digits`), so with ``patch_size=8`` every patch is one tile and
``N = g * g``. Images have two channels: channel 0 holds the digits, channel 1 a *marker*
(1.0 over a marked tile, 0.0 elsewhere; all zeros for tasks that mark nothing). Pixels are
``float32`` in ``[0, 1]``.

The tasks differ in what a model must combine across patches:

* ``count``: how many tiles show a 0 (label 0..3). A sum over patches of a per-patch fact:
  a per-patch network followed by the model's average pooling and linear classifier can do it.
  This is the control.
* ``repeat``: does some digit appear on two tiles (label 1) or are all tiles different digits
  (label 0)? Needs ``N <= 10``. A pair of patches must meet: averaged per-patch features have the
  same mean under both labels, so a linear classifier on them can do little better than chance.
* ``lookup``: the marked tile shows a digit ``p``; the label is the digit on the ``p``-th *other*
  tile in reading order (``p`` is a digit, so beyond ``N = 11`` only the first ten other tiles
  are ever addressed). The marked patch must address another one.
* ``relation``: two tiles are marked; are they the same digit (label 1) or not (label 0)? The
  other tiles are distractors. Any ``N >= 2``.

Tiles of the training images come from the digits' training split, tiles of the test images
from its test split (:func:`make_task` does it), so a model cannot pass a test by remembering
tile instances: only the rule carries over. Everything is deterministic given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eanet_course.validation import is_integer

__all__ = ["TASKS", "Task", "TaskData", "make_images", "make_task"]

TILE = 8  # pixels per side of a digit tile, and the patch size that makes one tile one patch
CLASSES = 10  # digits 0..9


@dataclass(frozen=True)
class Task:
    """A task's name, its number of labels, the largest ``N`` it accepts, and what it tests."""

    name: str
    num_classes: int
    max_patches: int | None
    needs: str

    @property
    def chance(self) -> float:
        """Accuracy of always guessing the most common label (labels are balanced)."""
        return 1.0 / self.num_classes


TASKS: dict[str, Task] = {
    "count": Task("count", 4, None,
                  "a sum of per-patch facts: per-patch features, average pooling, linear read-out"),
    "repeat": Task("repeat", 2, CLASSES,
                   "every pair of patches compared (does any digit occur twice?)"),
    "lookup": Task("lookup", CLASSES, None,
                   "one patch addresses another by position (content-to-position routing)"),
    "relation": Task("relation", 2, None,
                     "two marked patches compared, among distractors"),
}


@dataclass(frozen=True)
class TaskData:
    """Train and test arrays of one task: images ``(M, g*8, g*8, 2)`` float32, labels ``(M,)``."""

    task: Task
    grid: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_patches(self) -> int:
        """``N = grid * grid``."""
        return self.grid * self.grid


def _check(task: str, grid: int, size: int) -> Task:
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of {sorted(TASKS)}.")
    if not is_integer(grid) or grid < 2:
        raise ValueError(f"grid={grid!r} must be an integer >= 2 (N = grid * grid patches).")
    spec = TASKS[task]
    if spec.max_patches is not None and grid * grid > spec.max_patches:
        raise ValueError(
            f"Task {task!r} needs N = grid * grid <= {spec.max_patches} (there are only "
            f"{CLASSES} digits), got grid={grid} (N = {grid * grid}); use grid <= "
            f"{int(spec.max_patches ** 0.5)} or another task."
        )
    if not is_integer(size) or size < 1:
        raise ValueError(f"size={size!r} must be a positive integer (images to make).")
    return spec


def _layouts(task: str, n: int, size: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digit classes ``(size, n)``, marker flags ``(size, n)`` and labels ``(size,)``."""
    classes = np.empty((size, n), dtype=np.int64)
    marked = np.zeros((size, n), dtype=bool)
    labels = np.empty(size, dtype=np.int64)
    for i in range(size):
        if task == "count":
            k = int(rng.integers(0, min(3, n) + 1))
            row = np.concatenate([np.zeros(k, np.int64), rng.integers(1, CLASSES, n - k)])
            labels[i] = k
        elif task == "repeat":
            repeat = bool(rng.integers(0, 2))
            distinct = rng.permutation(CLASSES)[: n - repeat]
            row = np.concatenate([distinct, distinct[:1]]) if repeat else distinct
            labels[i] = int(repeat)
        elif task == "lookup":
            row = rng.integers(0, CLASSES, n)
            pointer = int(rng.integers(0, n))
            # among the other n - 1 tiles in reading order; a digit can address only ten
            target = int(rng.integers(0, min(n - 1, CLASSES)))
            row[pointer] = target
            marked[i, pointer] = True
            labels[i] = row[[j for j in range(n) if j != pointer][target]]
        else:  # relation
            first, second = rng.choice(n, 2, replace=False)
            row = rng.integers(0, CLASSES, n)
            same = bool(rng.integers(0, 2))
            a = int(rng.integers(0, CLASSES))
            b = a if same else int((a + rng.integers(1, CLASSES)) % CLASSES)
            row[first], row[second] = a, b
            marked[i, [first, second]] = True
            labels[i] = int(same)
        order = rng.permutation(n) if task in ("count", "repeat") else np.arange(n)
        classes[i], marked[i] = row[order], marked[i][order]
    return classes, marked, labels


def make_images(task: str, grid: int, size: int, tiles: np.ndarray, tile_labels: np.ndarray,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``size`` images of ``task`` on a ``grid x grid`` layout, drawn from the given tiles.

    Args:
        task: one of :data:`TASKS`.
        grid: ``g``; images are ``g*8`` pixels square and hold ``N = g*g`` tiles.
        size: how many images.
        tiles: digit tiles ``(T, 8, 8)`` or ``(T, 8, 8, 1)``, any numeric range (scaled to [0, 1]
            by their maximum).
        tile_labels: their digits ``(T,)``, every digit 0..9 present.
        seed: the images are a function of ``(task, grid, size, tiles, seed)``.

    Returns:
        ``images`` ``(size, g*8, g*8, 2)`` float32 (channel 1: the marker) and ``labels``
        ``(size,)`` int64 in ``range(TASKS[task].num_classes)``.
    """
    _check(task, grid, size)
    tiles = np.asarray(tiles, dtype=np.float32).reshape(-1, TILE, TILE)
    tile_labels = np.asarray(tile_labels)
    if tile_labels.shape != (len(tiles),):
        raise ValueError(f"tile_labels has shape {tile_labels.shape}; it needs one digit per tile, "
                         f"({len(tiles)},).")
    pools = [np.flatnonzero(tile_labels == c) for c in range(CLASSES)]
    if any(pool.size == 0 for pool in pools):
        raise ValueError("tiles must include every digit 0..9; pass the whole digits split.")
    scale = float(tiles.max()) or 1.0
    rng = np.random.default_rng(seed)
    n = grid * grid
    classes, marked, labels = _layouts(task, n, size, rng)
    picks = np.empty_like(classes)
    for c, pool in enumerate(pools):
        where = classes == c
        picks[where] = rng.choice(pool, int(where.sum()))
    digits = tiles[picks] / scale  # (size, n, 8, 8)
    marker = np.broadcast_to(marked[..., None, None], digits.shape).astype(np.float32)
    cells = np.stack([digits, marker], axis=-1)  # (size, n, 8, 8, 2)
    images = cells.reshape(size, grid, grid, TILE, TILE, 2).transpose(0, 1, 3, 2, 4, 5)
    return images.reshape(size, grid * TILE, grid * TILE, 2).astype(np.float32), labels


def make_task(task: str, grid: int, train_size: int, test_size: int, seed: int = 0) -> TaskData:
    """Train images from the digits' training tiles, test images from its test tiles.

    ``seed`` fixes both sets (they draw with seeds ``2 * seed`` and ``2 * seed + 1``, so no two
    seeds share a draw). See :func:`make_images`.
    """
    from eanet_course.data import load_digits

    spec = _check(task, grid, train_size)
    _check(task, grid, test_size)
    (tile_train, label_train), (tile_test, label_test) = load_digits()
    x_train, y_train = make_images(task, grid, train_size, tile_train, label_train, 2 * seed)
    x_test, y_test = make_images(task, grid, test_size, tile_test, label_test, 2 * seed + 1)
    return TaskData(spec, grid, x_train, y_train, x_test, y_test)
