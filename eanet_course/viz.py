"""Pictures for the course: every function draws one idea and returns its matplotlib Figure.

A notebook calls each in one line (the Figure is its cell's output). Shapes use the paper's
letters: ``N`` patches, ``S`` memory units, ``P`` patch size, ``H x W x C`` an image. Images may be
``uint8`` or (normalized) floats: they are rescaled to ``[0, 1]`` for display, and one channel is
shown in grey. Attention over patches is drawn by upsampling the ``N`` patch scores to the image
(each score fills its ``P x P`` patch) and laying the heatmap over the picture with the patch grid.

Figures are closed in pyplot before they are returned, so a notebook shows each one exactly once
(as the value of its cell) and a loop of plots does not pile up open figures.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence

import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from eanet_course import reference
from eanet_course.validation import divisor_hint, is_integer, read_bounded

__all__ = [
    "show_images",
    "plot_class_balance",
    "show_patches",
    "plot_position_similarity",
    "plot_attention_matrix",
    "plot_normalizations",
    "plot_attention_overlay",
    "plot_memory_units",
    "plot_self_attention_rows",
    "plot_history",
    "plot_input_distributions",
    "plot_scaling",
    "top_units",
    "class_indices",
]

HEATMAP = "inferno"
# Signed or centred values (raw logits, cosine similarities, ratios to an average): blue below
# the centre, white at it, red above, the same distance on both sides.
DIVERGING = "RdBu_r"
# Panel titles in points for a figure at most GRID_WIDTH inches wide; a wider grid is shrunk to
# the page's width when shown, so its titles grow in proportion and stay readable.
TITLE_SIZE = 10
GRID_WIDTH = 8.0


# --------------------------------------------------------------------------- input checks


def _image(image) -> np.ndarray:
    """One image ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` as floats in ``[0, 1]``, ``(H, W[, 3])``."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(
            f"Expected one image (H, W), (H, W, 1) or (H, W, 3), got shape {array.shape}; "
            "pass images[i], not the whole batch."
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _imshow(ax: Axes, image: np.ndarray) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid_side(image: np.ndarray, patch_size: int) -> int:
    """Patches per row of ``image`` for ``patch_size`` (a square image that ``P`` divides)."""
    if not is_integer(patch_size) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}.")
    h, w = image.shape[:2]
    if h != w or h % patch_size:
        raise ValueError(
            f"Image {h}x{w} cannot be cut into {patch_size}x{patch_size} patches; use a square "
            f"image and a patch_size among {divisor_hint(h)}."
        )
    return h // patch_size


def _patch_grid(image, patch_size: int, num_patches: int) -> tuple[np.ndarray, int]:
    """``image`` as :func:`_image` gives it and its patches per row, checked to hold ``N``.

    ``num_patches`` is ``N``, the scores per map; call it before making a figure, so that a wrong
    ``patch_size`` leaves no half-drawn figure behind.
    """
    picture = _image(image)
    side = _grid_side(picture, patch_size)
    if num_patches != side * side:
        raise ValueError(
            f"Got {num_patches} scores for an image of {side}x{side} = {side * side} patches; "
            "pass one score per patch, e.g. scores[:, unit] of an (N, S) map, with the model's "
            "patch_size."
        )
    return picture, side


def _scores_2d(scores, name: str) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (N, S) or (N, N), got shape {array.shape}; pick one image and "
            "one head first, e.g. scores[block][image, head]."
        )
    return array


def _check_indices(indices: Sequence[int], size: int, what: str, of: str) -> None:
    if not len(indices):
        raise ValueError(f"No {what} to show; pass at least one index, e.g. [0].")
    for index in indices:
        if not is_integer(index):
            raise ValueError(f"{what} {index!r} is not an integer; pass integer indices.")
        if not 0 <= index < size:
            raise ValueError(f"{what} {index} is out of range: the map has {size} {of}.")


def _new_grid(count: int, ncols: int, size: float = 1.6) -> tuple[Figure, np.ndarray]:
    ncols = max(1, min(ncols, count))
    nrows = math.ceil(count / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3),
                             squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, axes


def _title_size(fig: Figure) -> float:
    """A panel title's font size that reads at :data:`TITLE_SIZE` once ``fig`` fits the page."""
    return TITLE_SIZE * max(1.0, fig.get_figwidth() / GRID_WIDTH)


def _centred(center: float) -> matplotlib.colors.CenteredNorm:
    """A colour scale with ``center`` in its middle, as far up as down (for :data:`DIVERGING`)."""
    return matplotlib.colors.CenteredNorm(vcenter=center)


def _done(fig: Figure) -> Figure:
    fig.tight_layout()
    plt.close(fig)
    return fig


def class_indices(labels) -> np.ndarray:
    """Integer labels ``(B,)`` from integer labels ``(B,)`` or one-hot labels ``(B, K)``."""
    array = np.asarray(labels)
    return array.argmax(axis=-1) if array.ndim == 2 else array.astype(int).reshape(-1)


def _class_labels(labels, class_names: Sequence[str] | None) -> np.ndarray:
    """:func:`class_indices` ``(B,)`` of ``labels``, checked to be classes ``0 .. K-1``."""
    indices = class_indices(labels)
    if not indices.size:
        raise ValueError("No labels given; pass one label per example.")
    high = len(class_names) if class_names is not None else None
    if indices.min() < 0 or (high is not None and indices.max() >= high):
        raise ValueError(
            f"Labels run from {indices.min()} to {indices.max()}, but classes are numbered "
            f"0 .. {'K-1' if high is None else high - 1}; pass class indices (or one-hot labels) "
            "and one class name per class."
        )
    return indices


# --------------------------------------------------------------------------- data


def show_images(images, labels=None, class_names: Sequence[str] | None = None,
                ncols: int = 8) -> Figure:
    """A grid of images, titled by their labels.

    ``images`` is ``(B, H, W)`` or ``(B, H, W, C)`` with ``C`` 1 or 3; ``labels`` ints ``(B,)`` or
    one-hot ``(B, K)``.
    """
    images = np.asarray(images)
    if (images.ndim not in (3, 4) or not len(images)
            or (images.ndim == 4 and images.shape[-1] not in (1, 3))):
        raise ValueError(f"images must be a batch (B, H, W) or (B, H, W, C) with C = 1 or 3, "
                         f"got shape {images.shape}.")
    if images.ndim == 3 and images.shape[-1] in (1, 3):
        raise ValueError(
            f"images of shape {images.shape} look like one image (H, W, C); show_images takes "
            "a batch: pass images[None], or several images."
        )
    names = None if labels is None else _class_labels(labels, class_names)
    if names is not None and len(names) != len(images):
        raise ValueError(f"Got {len(images)} images but {len(names)} labels; pass one per image.")
    fig, axes = _new_grid(len(images), ncols)
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        _imshow(ax, _image(image))
        if names is not None:
            label = int(names[i])
            ax.set_title(class_names[label] if class_names is not None else str(label),
                         fontsize=_title_size(fig))
    return _done(fig)


def plot_class_balance(labels, class_names: Sequence[str] | None = None) -> Figure:
    """Bar chart of how many examples each class has (labels ints ``(B,)`` or one-hot)."""
    indices = _class_labels(labels, class_names)
    num_classes = len(class_names) if class_names is not None else int(indices.max()) + 1
    counts = np.bincount(indices, minlength=num_classes)
    fig, ax = plt.subplots(figsize=(min(14.0, 2.0 + 0.3 * num_classes), 3.0))
    ax.bar(np.arange(num_classes), counts, color="tab:blue")
    ax.axhline(counts.mean(), color="black", linestyle="--", linewidth=1,
               label=f"mean {counts.mean():.1f} (min {counts.min()}, max {counts.max()})")
    if class_names is not None and num_classes <= 20:
        ax.set_xticks(np.arange(num_classes), class_names, rotation=45, ha="right")
    ax.set_xlabel("class")
    ax.set_ylabel("examples")
    ax.set_title(f"{len(indices)} examples in {num_classes} classes")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.08), fontsize=8, frameon=False)
    return _done(fig)


# --------------------------------------------------------------------------- patches


#: The colours of patch grids (thin lines) and of the gaps between pulled-apart patches: tints
#: that white, black and grey pixels (all of digits) never have.
GRID_COLOUR, GAP_COLOUR = "tab:orange", "lightsteelblue"


def _draw_patch_grid(ax: Axes, size: int, patch_size: int) -> None:
    """Lines between the patches of a ``size x size`` image shown with ``imshow``."""
    for k in range(patch_size, size, patch_size):
        ax.axhline(k - 0.5, color=GRID_COLOUR, linewidth=0.8)
        ax.axvline(k - 0.5, color=GRID_COLOUR, linewidth=0.8)


def _patch_mosaic(picture: np.ndarray, patch_size: int) -> np.ndarray:
    """The patches of ``picture`` laid out on their grid, gaps of :data:`GAP_COLOUR` between.

    Returns an RGB ``(H', W', 3)`` array (a grey picture is repeated over the three channels).
    """
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=-1)
    side = picture.shape[0] // patch_size
    gap = max(1, patch_size // 4)
    step = patch_size + gap
    mosaic = np.empty((side * step - gap, side * step - gap, 3), picture.dtype)
    mosaic[...] = matplotlib.colors.to_rgb(GAP_COLOUR)
    for row in range(side):
        for col in range(side):
            mosaic[row * step:row * step + patch_size, col * step:col * step + patch_size] = (
                picture[row * patch_size:(row + 1) * patch_size,
                        col * patch_size:(col + 1) * patch_size])
    return mosaic


def show_patches(image, patch_size: int) -> Figure:
    """An image with its patch grid and patch numbers, beside its patches pulled apart.

    ``image`` is ``(H, W[, C])``; patches are numbered row by row, the order of
    :func:`eanet_course.reference.extract_patches` (and of ``PatchExtract``).
    """
    picture = _image(image)
    side = _grid_side(picture, patch_size)
    n = side * side
    fig, (ax, apart) = plt.subplots(1, 2, figsize=(8.0, 4.2))
    _imshow(ax, picture)
    _draw_patch_grid(ax, picture.shape[0], patch_size)
    if n <= 64:
        for index in range(n):
            row, col = divmod(index, side)
            ax.text((col + 0.5) * patch_size - 0.5, (row + 0.5) * patch_size - 0.5, str(index),
                    color="white", ha="center", va="center", fontsize=7,
                    path_effects=[patheffects.withStroke(linewidth=2, foreground="black")])
    ax.set_title(f"{picture.shape[0]}x{picture.shape[1]} image, P = {patch_size}: "
                 f"N = {n} patches", fontsize=10)
    _imshow(apart, _patch_mosaic(picture, patch_size))
    apart.set_title(f"the {n} patches of {patch_size}x{patch_size} pixels, row by row",
                    fontsize=10)
    return _done(fig)


def plot_position_similarity(position_embeddings, grid_size: int) -> Figure:
    """Cosine similarity of each learned position embedding to every other, on the patch grid.

    ``position_embeddings`` is ``(N, D)`` with ``N = grid_size ** 2`` (e.g.
    ``model.get_layer("patch_embedding").position_embedding.embeddings``). Tile ``(r, c)`` shows
    how similar patch ``(r, c)``'s position vector is to every position: a trained model learns
    that nearby patches are alike.
    """
    emb = np.asarray(position_embeddings, dtype=np.float64)
    if (not is_integer(grid_size) or emb.ndim != 2
            or emb.shape[0] != grid_size * grid_size):
        raise ValueError(
            f"position_embeddings must be (N, D) with N = grid_size**2 = {grid_size ** 2}, got "
            f"shape {emb.shape}; pass position_embedding.embeddings and image_size // patch_size."
        )
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    similarity = (unit @ unit.T).reshape(grid_size, grid_size, grid_size, grid_size)
    # A mosaic: tile (r, c) is patch (r, c)'s similarity map, tiles separated by one blank pixel.
    step = grid_size + 1
    mosaic = np.full((grid_size * step - 1, grid_size * step - 1), np.nan)
    for r in range(grid_size):
        for c in range(grid_size):
            mosaic[r * step:r * step + grid_size, c * step:c * step + grid_size] = similarity[r, c]
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    shown = ax.imshow(mosaic, cmap=DIVERGING, vmin=-1.0, vmax=1.0)  # centred at 0
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("input patch column")
    ax.set_ylabel("input patch row")
    ax.set_title("cosine similarity of position embeddings")
    fig.colorbar(shown, ax=ax, label="cosine similarity")
    return _done(fig)


# --------------------------------------------------------------------------- attention maps


def plot_attention_matrix(scores, title: str | None = None,
                          xlabel: str = "memory unit (or key patch)",
                          ylabel: str = "patch (query)", center: float | None = None) -> Figure:
    """A 2-D attention map as a heatmap: ``(N, S)`` for external, ``(N, N)`` for self-attention.

    ``center``: for values read against a centre (ratios to an average: 1; differences: 0), a
    diverging colour map white at ``center``; by default a sequential one, for attention weights.
    """
    matrix = _scores_2d(scores, "scores")
    if center is not None and not np.isfinite(center):
        raise ValueError(f"center must be a finite number (e.g. 1.0 for ratios), got {center!r}")
    fig, ax = plt.subplots(figsize=(min(9.0, 2.5 + 0.12 * matrix.shape[1]),
                                    min(7.0, 2.0 + 0.1 * matrix.shape[0])))
    colours = ({"cmap": HEATMAP} if center is None
               else {"cmap": DIVERGING, "norm": _centred(float(center))})
    shown = ax.imshow(matrix, aspect="auto", interpolation="nearest", **colours)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"attention {matrix.shape[0]} x {matrix.shape[1]}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(shown, ax=ax)
    return _done(fig)


def plot_normalizations(logits) -> Figure:
    """Raw logits, a plain softmax over S, and EANet's double normalization, side by side.

    ``logits`` is ``(N, S)``.
    The plain softmax makes every row (patch) sum to 1 and follows the logits' scale; the double
    normalization (softmax over the patch axis N, then l1 over S) also makes each row sum to 1,
    but first lets every memory unit pick out its patches.
    """
    raw = _scores_2d(logits, "logits")
    panels = (  # the logits are signed: a diverging scale, white at 0
        (raw, "raw logits  F M_k^T", {"cmap": DIVERGING, "norm": _centred(0.0)}),
        (reference.softmax(raw, axis=-1), "plain softmax over S\n(rows sum to 1)",
         {"cmap": HEATMAP}),
        (reference.double_normalization(raw),
         "double normalization\nsoftmax over N, then l1 over S", {"cmap": HEATMAP}),
    )
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.8))
    for ax, (values, title, colours) in zip(axes, panels):
        shown = ax.imshow(values, aspect="auto", interpolation="nearest", **colours)
        ax.set_title(title, fontsize=_title_size(fig))
        ax.set_xlabel("memory unit (S)")
        fig.colorbar(shown, ax=ax)
    axes[0].set_ylabel("patch (N)")
    return _done(fig)


def plot_attention_overlay(image, unit_scores, patch_size: int, ax: Axes | None = None) -> Figure:
    """A heatmap over the image of ``N`` patch scores (a memory unit's column, or a query's row).

    Draws into ``ax`` when given (and returns its Figure), else into a new Figure with a colour
    bar. The colour scale starts at 0 (or the lowest score, if negative), so nearly equal scores
    look nearly equal rather than stretched over the whole colour map.
    """
    scores = np.asarray(unit_scores, dtype=np.float64).reshape(-1)
    picture, side = _patch_grid(image, patch_size, scores.size)
    heat = np.kron(scores.reshape(side, side), np.ones((patch_size, patch_size)))
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(4.6, 4.0))
    _imshow(ax, picture)
    shown = ax.imshow(heat, cmap=HEATMAP, alpha=0.55, interpolation="nearest",
                      vmin=min(0.0, scores.min()), vmax=scores.max())
    _draw_patch_grid(ax, picture.shape[0], patch_size)
    if own:
        fig.colorbar(shown, ax=ax, label="attention")
        return _done(fig)
    return ax.figure


def top_units(scores, k: int) -> np.ndarray:
    """The ``k`` memory units that take the most attention mass in an ``(N, S)`` map, largest first.

    A unit's mass is its column sum: how much of the image's patches it takes (rows sum to 1).
    """
    matrix = _scores_2d(scores, "scores")
    return np.argsort(-matrix.sum(axis=0), kind="stable")[: max(1, min(k, matrix.shape[1]))]


def plot_memory_units(image, scores, patch_size: int,
                      units: Sequence[int] | None = None) -> Figure:
    """One overlay per memory unit: where on the image each unit's attention falls.

    ``scores`` is one image's and one head's map ``(N, S)``; ``units`` picks the columns (default:
    every unit if ``S <= 16``, else the 16 with the most attention mass), each titled with its
    share of the image's attention.
    """
    matrix = _scores_2d(scores, "scores")
    chosen = list(range(matrix.shape[1])) if units is None and matrix.shape[1] <= 16 else (
        top_units(matrix, 16) if units is None else units)
    _check_indices(chosen, matrix.shape[1], "unit", "memory units")
    _patch_grid(image, patch_size, matrix.shape[0])
    mass = matrix.sum(axis=0) / max(matrix.sum(), 1e-12)
    fig, axes = _new_grid(len(chosen), min(4, len(chosen)), size=2.0)
    for ax, unit in zip(axes.flat, chosen):
        plot_attention_overlay(image, matrix[:, unit], patch_size, ax=ax)
        ax.set_title(f"unit {unit}: {100 * mass[unit]:.1f}%", fontsize=_title_size(fig))
    return _done(fig)


def plot_self_attention_rows(image, scores, patch_size: int, rows: Sequence[int]) -> Figure:
    """Where chosen query patches look: row ``i`` of a self-attention map ``(N, N)`` over the image.

    The query patch is outlined in cyan.
    """
    matrix = _scores_2d(scores, "scores")
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"A self-attention map is (N, N), got {matrix.shape}; for external attention "
            "(N, S) use plot_memory_units."
        )
    rows = list(rows)
    _check_indices(rows, matrix.shape[0], "row", "patches")
    _, side = _patch_grid(image, patch_size, matrix.shape[0])
    fig, axes = _new_grid(len(rows), min(4, len(rows)), size=2.0)
    for ax, row in zip(axes.flat, rows):
        plot_attention_overlay(image, matrix[row], patch_size, ax=ax)
        r, c = divmod(row, side)
        ax.add_patch(Rectangle((c * patch_size - 0.5, r * patch_size - 0.5), patch_size,
                               patch_size, fill=False, edgecolor="cyan", linewidth=2))
        ax.set_title(f"query patch {row}", fontsize=_title_size(fig))
    return _done(fig)


# --------------------------------------------------------------------------- training


#: The largest CSVLogger file read: it holds one short line per epoch.
HISTORY_LIMIT = 10_000_000


def _history_value(path, key: str, row: int, text) -> float:
    if text is None or text == "":
        raise ValueError(f"{path}: {key!r} in row {row} is missing; pass the CSV that "
                         "keras.callbacks.CSVLogger wrote (one row per epoch, every column).")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: {key!r} in row {row} is {text!r}, not a number; pass the "
                         "CSV that keras.callbacks.CSVLogger wrote.") from None


def _read_history(history_or_csv_path) -> dict[str, list[float]]:
    if isinstance(history_or_csv_path, (str, os.PathLike)):
        path = os.fspath(history_or_csv_path)
        text = read_bounded(path, HISTORY_LIMIT, "a CSVLogger file",
                            "pass the log.csv of a run (keras.callbacks.CSVLogger).")
        rows = list(csv.DictReader(io.StringIO(text.decode("utf-8", errors="replace"))))
        if not rows:
            raise ValueError(f"{path!r} has no epochs logged yet.")
        return {key: [_history_value(path, key, number, row.get(key))
                      for number, row in enumerate(rows, start=1)]
                for key in rows[0] if key not in ("epoch", None)}
    history = getattr(history_or_csv_path, "history", history_or_csv_path)
    if not isinstance(history, Mapping):
        raise TypeError(
            "plot_history takes a history dict (metric -> list), a keras History, or the path "
            f"of a CSVLogger file; got {type(history_or_csv_path).__name__}."
        )
    return {key: list(map(float, values)) for key, values in history.items()}


def plot_history(history_or_csv_path) -> Figure:
    """Learning curves: loss, and every accuracy metric, for training and validation."""
    history = _read_history(history_or_csv_path)
    if "loss" not in history:
        raise ValueError(f"No 'loss' in the history (keys: {sorted(history)}); is it a Keras log?")
    accuracies = [key for key in history if "accuracy" in key and not key.startswith("val_")]
    for key in ["loss", *accuracies]:
        if len(history.get(f"val_{key}", history[key])) != len(history[key]):
            raise ValueError(
                f"{len(history[key])} epochs of {key!r} but {len(history[f'val_{key}'])} of "
                f"'val_{key}'; plot_history needs validation every epoch (validation_freq=1)."
            )
    panels = [(["loss"], "loss")] + ([(accuracies, "accuracy")] if accuracies else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(10.0, 3.6), squeeze=False)
    for ax, (keys, ylabel) in zip(axes.flat, panels):
        for key, color in zip(keys, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
            epochs = np.arange(1, len(history[key]) + 1)
            ax.plot(epochs, history[key], color=color, label=f"train {key}")
            if f"val_{key}" in history:
                ax.plot(epochs, history[f"val_{key}"], color=color, linestyle="--",
                        label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _done(fig)


def plot_input_distributions(train_values, test_values) -> Figure:
    """Histograms of what the model sees in training and at test time, on the same bins.

    The augmentation trap: if the two differ (e.g. normalization applied before a clipping
    augmentation), the model is tested on inputs it never trained on.
    """
    train = np.asarray(train_values, dtype=np.float64).reshape(-1)
    test = np.asarray(test_values, dtype=np.float64).reshape(-1)
    if not train.size or not test.size:
        raise ValueError("train_values and test_values must both hold some numbers.")
    for values, name in ((train, "train_values"), (test, "test_values")):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds {np.count_nonzero(~np.isfinite(values))} NaN or "
                             "infinite values; find where they come from (e.g. a division by a "
                             "zero standard deviation) before plotting.")
    bins = np.histogram_bin_edges(np.concatenate([train, test]), bins=60)
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    for values, name, color in ((train, "training inputs", "tab:blue"),
                                (test, "test inputs", "tab:orange")):
        ax.hist(values, bins=bins, density=True, alpha=0.5, color=color,
                label=f"{name}: mean {values.mean():.2f}, std {values.std():.2f}")
    ax.set_xlabel("input value")
    ax.set_ylabel("density")
    ax.set_title("what the model sees: training vs test")
    ax.legend(fontsize=8)
    return _done(fig)


# --------------------------------------------------------------------------- benchmarks


def plot_scaling(results: Mapping) -> Figure:
    """Time and peak memory against N on log-log axes, one line per layer, slopes in the legend.

    ``results`` is the dict of :func:`eanet_course.bench.attention.run` (``rows`` and ``slopes``).
    A slope near 1 is linear in N (external attention), near 2 quadratic (self-attention); the
    legend names the range of N each was fitted over (the largest sizes: small N measure overheads).
    """
    if not isinstance(results, Mapping) or not results.get("rows"):
        raise ValueError("plot_scaling takes the dict returned by eanet_course.bench.attention.run "
                         "(or read from its attention.json), with 'rows' and 'slopes'.")
    slopes = results.get("slopes", {})
    layers = list(dict.fromkeys(row["layer"] for row in results["rows"]))
    has_memory = any(row.get("peak_mb") is not None for row in results["rows"])
    fig, axes = plt.subplots(1, 1 + has_memory, figsize=(11.0, 4.0), squeeze=False)
    for ax, key, metric, ylabel in ((axes[0, 0], "time_ms", "time", "time per step (ms)"),
                                    (axes[0, -1], "peak_mb", "memory", "peak memory (MB)")):
        if key == "peak_mb" and not has_memory:
            continue
        for layer in layers:
            points = sorted((row["N"], row[key]) for row in results["rows"]
                            if row["layer"] == layer and row.get(key) is not None)
            if not points:
                continue
            fitted = slopes.get(layer, {})
            label = layer if fitted.get(metric) is None else (
                f"{layer} (slope {fitted[metric]:.2f} over N in [{fitted['range'][0]}, "
                f"{fitted['range'][1]}])")
            ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sizes = sorted({row["N"] for row in results["rows"]})
        ax.set_xticks(sizes, [str(n) for n in sizes], minor=False)
        ax.minorticks_off()
        ax.set_xlabel("N (patches)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"{results.get('machine', '')}  (d = {results.get('embed_dim', '?')}, "
                 f"batch {results.get('batch_size', '?')})", fontsize=9)
    return _done(fig)
