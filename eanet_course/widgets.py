"""Interactive explorers (ipywidgets): controls on top, a picture from :mod:`eanet_course.viz` below.

Each explorer is an ``ipywidgets.VBox`` (display it, or leave it as a cell's value) whose
``render()`` redraws the picture from the current control values and returns the Figure. The
controls call ``render()`` when they change, so a test drives an explorer without a browser by
setting a control's ``value`` and reading ``explorer.picture.value`` (the PNG bytes shown).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import ipywidgets as widgets
import keras
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from eanet_course import reference, viz
from eanet_course.models import attention_model
from eanet_course.validation import positive_int

__all__ = [
    "AttentionExplorer",
    "PatchExplorer",
    "NormalizationExplorer",
    "attention_explorer",
    "patch_explorer",
    "normalization_explorer",
]

DPI = 80


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


class _Explorer(widgets.VBox):
    """Rows of controls, a caption and a picture; every control change redraws the picture.

    A subclass sets its controls up, then calls this ``__init__``, and defines ``draw()``.
    """

    def __init__(self, rows: Sequence[Sequence[widgets.Widget]]):
        self.caption = widgets.HTML()
        # At its own size (the VBox would stretch it to the output's full width), or narrower
        # on a narrow screen; rows of controls wrap there instead of running off it.
        self.picture = widgets.Image(format="png", layout=widgets.Layout(
            align_self="flex-start", max_width="100%", height="auto"))
        self.figure: Figure | None = None
        super().__init__([*(widgets.HBox(list(row), layout=widgets.Layout(flex_flow="row wrap"))
                            for row in rows), self.caption, self.picture],
                         layout=widgets.Layout(max_width="100%"))
        for row in rows:
            for control in row:
                control.layout.max_width = "100%"  # on a narrow screen, as wide as the screen
                control.observe(lambda _change: self.render(), names="value")
        self.render()

    def render(self) -> Figure:
        """Redraw from the current control values; the Figure is also kept in ``self.figure``."""
        self.figure, self.caption.value = self.draw()
        self.picture.value = _png(self.figure)
        return self.figure

    def draw(self) -> tuple[Figure, str]:
        """The Figure for the current control values, and the caption's HTML."""
        raise NotImplementedError(f"{type(self).__name__} must define draw().")


def _checked_labels(model: keras.Model, count: int, labels: ArrayLike | None,
                    class_names: Sequence[str] | None
                    ) -> tuple[np.ndarray | None, Sequence[str] | None]:
    """``labels`` as class indices ``(B,)``, one per image, and ``class_names``, one per class
    of ``model``; refused here, before a dropdown indexes past their end."""
    num_classes = model.output_shape[-1]
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but the model predicts {num_classes} "
            "classes; pass one name per class, e.g. datasets.class_names.")
    if labels is None:
        return None, class_names
    indices = viz.class_indices(labels)
    if len(indices) != count:
        raise ValueError(f"Got {count} images but {len(indices)} labels; pass one label per "
                         "image, e.g. labels=y_test[:16] for images x_test[:16].")
    if len(indices) and (indices.min() < 0 or indices.max() >= num_classes):
        raise ValueError(f"Labels run from {indices.min()} to {indices.max()}, but the model "
                         f"predicts classes 0 .. {num_classes - 1}; pass this data set's labels.")
    return indices, class_names


class AttentionExplorer(_Explorer):
    """Where a model's attention falls on an image: per block, head and memory unit.

    Args:
        model: an EANet from :func:`eanet_course.models.build_eanet` (trained or fresh, or loaded
            from ``best.keras``), or a ViT from ``build_vit``.
        images: model inputs ``(B, H, W, C)`` (normalized, as the model was trained on).
        labels: optional true labels, ints ``(B,)`` or one-hot ``(B, K)``.
        class_names: optional names of the classes, for the image picker and caption.
        patch_size: ``P``; read from the model's ``"patches"`` layer when ``None``.
        top_k: how many memory units the "top memory units" mode shows.

    Controls: ``image`` (which image), ``block``, ``head``, ``unit`` (a memory unit, or a query
    patch for a ViT) and ``mode`` ("one memory unit" or "top memory units": the ``top_k`` units
    that take most of this image's attention in this block and head).
    """

    ONE, TOP = "one memory unit", "top memory units"

    def __init__(self, model: keras.Model, images: ArrayLike, labels: ArrayLike | None = None,
                 class_names: Sequence[str] | None = None, patch_size: int | None = None,
                 top_k: int = 8):
        images = np.asarray(images)
        expected = tuple(model.input_shape[1:])
        if images.ndim != 4 or images.shape[1:] != expected or not len(images):
            raise ValueError(
                f"images must be a batch of model inputs (B, {', '.join(map(str, expected))}), "
                f"got shape {images.shape}; pass normalized images, e.g. "
                "datasets.normalize(x_test[:16])."
            )
        self.labels, self.class_names = _checked_labels(model, len(images), labels, class_names)
        self.top_k = positive_int("AttentionExplorer", "top_k", top_k)
        attention = attention_model(model)
        self.kind = next(layer.attention_type for layer in model.layers
                         if hasattr(layer, "attention_type"))
        self.patch_size = (model.get_layer("patches").patch_size if patch_size is None
                           else positive_int("AttentionExplorer", "patch_size", patch_size))
        self.images = images
        scores = attention.predict(images, verbose=0)
        self.scores = [np.asarray(s) for s in (scores if isinstance(scores, list) else [scores])]
        self.predicted = model.predict(images, verbose=0).argmax(axis=-1)
        heads, _, width = self.scores[0].shape[1:]
        self.image = widgets.Dropdown(
            options=[(self._describe(i), i) for i in range(len(images))], value=0,
            description="image")
        self.block = widgets.Dropdown(
            options=[(f"block {b}", b) for b in range(len(self.scores))], value=0,
            description="block")
        self.head = widgets.IntSlider(value=0, min=0, max=heads - 1, description="head",
                                      continuous_update=False)
        self.unit = widgets.IntSlider(
            value=0, min=0, max=width - 1, continuous_update=False,
            description="memory unit" if self.kind == "external" else "query patch",
            style={"description_width": "initial"})
        self.mode = widgets.ToggleButtons(options=[self.ONE, self.TOP], value=self.ONE,
                                          disabled=self.kind != "external")
        super().__init__([[self.image, self.block], [self.head, self.unit, self.mode]])

    def _name(self, label: int) -> str:
        return self.class_names[label] if self.class_names is not None else str(label)

    def _describe(self, index: int) -> str:
        predicted = f"predicted {self._name(int(self.predicted[index]))}"
        if self.labels is None:
            return f"{index}: {predicted}"
        return f"{index}: {self._name(int(self.labels[index]))} ({predicted})"

    def current_scores(self) -> np.ndarray:
        """The map shown: ``(N, S)`` (or ``(N, N)``) for the chosen image, block and head."""
        return self.scores[self.block.value][self.image.value, self.head.value]

    def draw(self) -> tuple[Figure, str]:
        image = self.images[self.image.value]
        scores = self.current_scores()
        where = f"{self._describe(self.image.value)} &middot; block {self.block.value}, " \
                f"head {self.head.value}"
        self.unit.disabled = self.mode.value == self.TOP
        if self.kind == "self":
            query = self.unit.value
            figure = viz.plot_self_attention_rows(image, scores, self.patch_size, [query])
            return figure, f"{where} &middot; where query patch {query} looks"
        if self.mode.value == self.TOP:
            units = viz.top_units(scores, self.top_k)
            figure = viz.plot_memory_units(image, scores, self.patch_size, units=units)
            return figure, f"{where} &middot; the {len(units)} memory units with most attention"
        unit = self.unit.value
        share = scores[:, unit].sum() / scores.sum()
        figure = viz.plot_attention_overlay(image, scores[:, unit], self.patch_size)
        return figure, (f"{where} &middot; memory unit {unit} takes {100 * share:.1f}% of this "
                        f"image's attention (uniform: {100 / scores.shape[1]:.1f}%)")


class PatchExplorer(_Explorer):
    """Cut one image ``(H, W[, C])`` into patches; a slider picks the patch size ``P``.

    The sizes offered divide the image side and give at most 256 patches.
    """

    def __init__(self, image: ArrayLike):
        self.source = np.asarray(image)
        if self.source.ndim not in (2, 3) or self.source.shape[1] != self.source.shape[0]:
            raise ValueError(
                f"patch_explorer takes one square image (H, H[, C]), got shape "
                f"{self.source.shape}; pass images[i], not the batch."
            )
        side = self.source.shape[0]
        sizes = [p for p in range(1, side + 1) if side % p == 0 and (side // p) ** 2 <= 256]
        self.patch_size = widgets.SelectionSlider(
            options=sizes, value=sizes[(len(sizes) - 1) // 2], description="patch size P",
            continuous_update=False, style={"description_width": "initial"})
        super().__init__([[self.patch_size]])

    def draw(self) -> tuple[Figure, str]:
        p = self.patch_size.value
        side = self.source.shape[0]
        channels = self.source.shape[2] if self.source.ndim == 3 else 1
        caption = (f"P = {p}: N = ({side}/{p})&sup2; = <b>{(side // p) ** 2}</b> patches of "
                   f"{p}&middot;{p}&middot;{channels} = {p * p * channels} values each")
        return viz.show_patches(self.source, p), caption


class NormalizationExplorer(_Explorer):
    """Scale the same logits ``(N, S)`` and compare a plain softmax with the double normalization.

    ``seed`` draws the logits (``N = 8`` patches, ``S = 6`` memory units, standard normal).
    """

    def __init__(self, seed: int = 0, num_patches: int = 8, memory_units: int = 6):
        owner = "NormalizationExplorer"
        shape = (positive_int(owner, "num_patches", num_patches),
                 positive_int(owner, "memory_units", memory_units))
        seed = positive_int(owner, "seed", seed, minimum=0)
        self.logits = np.random.default_rng(seed).normal(size=shape)
        self.scale = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.1,
                                            description="scale", continuous_update=False)
        super().__init__([[self.scale]])

    def draw(self) -> tuple[Figure, str]:
        logits = self.scale.value * self.logits
        plain = reference.softmax(logits, axis=-1).max(axis=-1).mean()
        double = reference.double_normalization(logits).max(axis=-1).mean()
        caption = (f"logits &times; {self.scale.value:.2f}: a patch's largest weight is "
                   f"{plain:.2f} on average with a plain softmax, {double:.2f} with the double "
                   f"normalization (uniform: {1 / logits.shape[1]:.2f})")
        return viz.plot_normalizations(logits), caption


def attention_explorer(model: keras.Model, images: ArrayLike, labels: ArrayLike | None = None,
                       class_names: Sequence[str] | None = None,
                       patch_size: int | None = None) -> AttentionExplorer:
    """An :class:`AttentionExplorer` of ``model`` on ``images`` (model inputs ``(B, H, W, C)``)."""
    return AttentionExplorer(model, images, labels, class_names, patch_size)


def patch_explorer(image: ArrayLike) -> PatchExplorer:
    """A :class:`PatchExplorer` of one image ``(H, W[, C])``."""
    return PatchExplorer(image)


def normalization_explorer(seed: int = 0) -> NormalizationExplorer:
    """A :class:`NormalizationExplorer` of random logits drawn with ``seed``."""
    return NormalizationExplorer(seed)
