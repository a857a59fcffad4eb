"""How much each input patch moves each output patch: the blocks of the Jacobian, patch by patch.

For a function ``f`` that maps one input of N patches to N output patches of width ``d``,
``patch_influence`` returns the ``(N_out, N)`` matrix whose entry ``[i, j]`` is the Frobenius norm
of the Jacobian block ``d f(x)_i / d x_j``: how strongly patch ``j`` of the input can move patch
``i`` of the output. The diagonal is each patch's effect on itself; everything off the diagonal
is patches talking to each other. An exact 0 off the diagonal means no path at all between two
patches (notebook 04 shows it for external attention with a plain softmax over S).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import contextlib
import logging

import numpy as np
import tensorflow as tf

from eanet_course.reference import extract_patches

__all__ = ["patch_influence", "cross_patch_share"]


def patch_influence(
    function: Callable,
    x: np.ndarray,
    patch_size: int | None = None,
    outputs: Sequence[int] | None = None,
) -> np.ndarray:
    """Norms of the Jacobian blocks ``d function(x)[0, i] / d x[0, j]``, one per pair of patches.

    Args:
        function: maps ``x`` to ``(1, N, d_out)`` (a layer, or a model cut before its pooling).
        x: one input, either tokens ``(1, N, d_in)`` (``patch_size=None``) or an image
            ``(1, H, W, C)`` whose ``P x P`` patches (``patch_size=P``) are the input patches.
        patch_size: ``P`` when ``x`` is an image, else ``None``.
        outputs: the output patches ``i`` to differentiate (default: all of them). The cost is
            one backward pass per output value, ``len(outputs) * d_out`` of them.

    Returns:
        ``(len(outputs), N)`` float64: entry ``[a, j]`` is ``||d out_{outputs[a]} / d x_j||``.
    """
    x = np.asarray(x, dtype=np.float32)
    expected = 3 if patch_size is None else 4
    if x.ndim != expected or x.shape[0] != 1:
        layout = "(1, N, d)" if patch_size is None else "(1, H, W, C)"
        raise ValueError(f"patch_influence: x must be one input of shape {layout}, got {x.shape}; "
                         "pass patch_size=P for an image, None for tokens.")
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = function(inputs)
        if len(out.shape) != 3 or out.shape[0] != 1:
            raise ValueError(f"patch_influence: function must return (1, N, d), got {out.shape}.")
        chosen = list(range(out.shape[1])) if outputs is None else list(outputs)
        picked = tf.gather(out[0], chosen)  # (k, d_out)
    with _quiet_retracing():
        jacobian = tape.jacobian(picked, inputs).numpy().astype(np.float64)  # (k, d_out, *x.shape)
    k, d_out = jacobian.shape[:2]
    if patch_size is None:
        blocks = jacobian.reshape(k, d_out, x.shape[1], x.shape[2])  # (k, d_out, N, d_in)
    else:
        per_row = extract_patches(jacobian.reshape(k * d_out, *x.shape[1:]), patch_size)
        blocks = per_row.reshape(k, d_out, *per_row.shape[1:])  # (k, d_out, N, P*P*C)
    return np.sqrt((blocks**2).sum(axis=(1, 3)))


@contextlib.contextmanager
def _quiet_retracing():
    """Silence TensorFlow's retracing warning: ``tape.jacobian`` traces a new function per call."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def cross_patch_share(influence: np.ndarray, outputs: Sequence[int] | None = None) -> np.ndarray:
    """For each output patch, the share of its squared influence that comes from other patches.

    Args:
        influence: ``(k, N)`` from :func:`patch_influence`.
        outputs: the output patches of its rows (default ``range(k)``, a square matrix).

    Returns:
        ``(k,)``: ``sum_{j != i} I[i, j]^2 / sum_j I[i, j]^2``, 0 when patches never talk.
    """
    rows = np.arange(len(influence)) if outputs is None else np.asarray(outputs)
    squared = np.asarray(influence, dtype=np.float64) ** 2
    own = squared[np.arange(len(rows)), rows]
    total = squared.sum(axis=1)
    return (total - own) / total
