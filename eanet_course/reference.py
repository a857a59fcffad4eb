"""The maths of the course in plain NumPy: the ground truth for layers, checkers and tests.

Every function here is written for reading, not speed. Shapes use the paper's letters:
``B`` batch, ``N`` patches, ``d`` width, ``S`` memory units, ``H`` heads, ``P`` patch size.
The Keras layers in :mod:`eanet_course.layers` compute the same numbers (tests check it to 1e-5).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "extract_patches",
    "softmax",
    "double_normalization",
    "external_attention",
    "split_heads",
    "merge_heads",
    "multi_head_external_attention",
    "scaled_dot_product_attention",
    "multi_head_self_attention",
]

EPSILON = 1e-9  # added to the l1 denominator, as in the Keras example


def extract_patches(images: np.ndarray, patch_size: int) -> np.ndarray:
    """Cut images into non-overlapping square patches, each flattened.

    Args:
        images: ``(B, H, W, C)``, with ``H`` and ``W`` divisible by ``patch_size``.
        patch_size: ``P``, the side of a patch in pixels.

    Returns:
        ``(B, N, P*P*C)`` with ``N = (H/P) * (W/P)``. Patches run row by row over the image;
        inside a patch, pixels run row by row and each pixel keeps its ``C`` channels together
        (the order of ``keras.ops.image.extract_patches``).
    """
    b, h, w, c = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"Image size {h}x{w} is not divisible by patch_size={p}.")
    grid = images.reshape(b, h // p, p, w // p, p, c)  # (B, rows, P, cols, P, C)
    grid = grid.transpose(0, 1, 3, 2, 4, 5)  # (B, rows, cols, P, P, C)
    return grid.reshape(b, (h // p) * (w // p), p * p * c)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax of ``x`` along ``axis`` (any shape)."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def double_normalization(logits: np.ndarray) -> np.ndarray:
    """EANet's double normalization of attention logits.

    Args:
        logits: ``(..., N, S)``, patch ``i``'s affinity to memory unit ``j``.

    Returns:
        ``(..., N, S)``: first a softmax over the **patch axis N** (each memory unit's column
        sums to 1), then an l1 normalization over the **memory axis S** (each patch's row sums
        to 1). The first step makes the map insensitive to the scale of the features that one
        memory unit sees; the second makes each patch a convex mix of memory rows.
    """
    over_patches = softmax(logits, axis=-2)
    return over_patches / (EPSILON + np.sum(over_patches, axis=-1, keepdims=True))


def external_attention(
    features: np.ndarray,
    m_k: np.ndarray,
    m_v: np.ndarray,
    b_k: np.ndarray | None = None,
    b_v: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Single-head external attention: ``A = DoubleNorm(F M_k^T)``, ``F_out = A M_v``.

    Args:
        features: ``F``, ``(..., N, d)``.
        m_k: the key memory ``M_k``, ``(S, d)``.
        m_v: the value memory ``M_v``, ``(S, d_out)``.
        b_k: optional bias ``(S,)`` added to the logits (the Keras ``Dense`` that holds ``M_k``).
        b_v: optional bias ``(d_out,)`` added to the output (the ``Dense`` that holds ``M_v``).

    Returns:
        ``(output, attention)``: ``(..., N, d_out)`` and ``(..., N, S)``.
    """
    logits = features @ m_k.T
    if b_k is not None:
        logits = logits + b_k
    attention = double_normalization(logits)
    output = attention @ m_v
    if b_v is not None:
        output = output + b_v
    return output, attention


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """``(B, N, H*dh)`` to ``(B, H, N, dh)``: the channel axis is cut into ``H`` blocks."""
    b, n, width = x.shape
    if width % num_heads:
        raise ValueError(f"Width {width} is not divisible by num_heads={num_heads}.")
    return x.reshape(b, n, num_heads, width // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """``(B, H, N, dh)`` to ``(B, N, H*dh)``: the inverse of :func:`split_heads`."""
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * dh)


def multi_head_external_attention(
    x: np.ndarray,
    w_in: np.ndarray,
    b_in: np.ndarray,
    m_k: np.ndarray,
    b_k: np.ndarray,
    m_v: np.ndarray,
    b_v: np.ndarray,
    w_out: np.ndarray,
    b_out: np.ndarray,
    num_heads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The Keras example's multi-head external attention, weight for weight.

    Args:
        x: ``(B, N, d)``.
        w_in, b_in: ``(d, d*c)``, ``(d*c,)``: widen to ``d * dim_coefficient`` channels.
        m_k, b_k: ``(S, dh)``, ``(S,)``: the key memory shared by every head.
        m_v, b_v: ``(S, dh)``, ``(dh,)``: the value memory shared by every head.
        w_out, b_out: ``(d*c, d)``, ``(d,)``: back to ``d`` channels.
        num_heads: ``H``, the total number of heads (the example's ``num_heads * dim_coefficient``),
            so that ``dh = d*c / H``.

    Returns:
        ``(output, scores)``: ``(B, N, d)`` and ``(B, H, N, S)``.
    """
    heads = split_heads(x @ w_in + b_in, num_heads)  # (B, H, N, dh)
    out, scores = external_attention(heads, m_k, m_v, b_k, b_v)  # (B, H, N, dh), (B, H, N, S)
    return merge_heads(out) @ w_out + b_out, scores


def scaled_dot_product_attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(Q K^T / sqrt(d_k)) V``.

    Args:
        q: ``(..., N_q, d_k)``; k: ``(..., N_k, d_k)``; v: ``(..., N_k, d_v)``.

    Returns:
        ``(output, weights)``: ``(..., N_q, d_v)`` and ``(..., N_q, N_k)``; each row of
        ``weights`` sums to 1 over the keys.
    """
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    weights = softmax(logits, axis=-1)
    return weights @ v, weights


def multi_head_self_attention(
    x: np.ndarray,
    w_q: np.ndarray,
    b_q: np.ndarray,
    w_k: np.ndarray,
    b_k: np.ndarray,
    w_v: np.ndarray,
    b_v: np.ndarray,
    w_out: np.ndarray,
    b_out: np.ndarray,
    num_heads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head self-attention, the baseline external attention replaces.

    Args:
        x: ``(B, N, d)``.
        w_q, w_k, w_v: ``(d, H*dk)`` with biases ``(H*dk,)``.
        w_out, b_out: ``(H*dk, d)``, ``(d,)``.
        num_heads: ``H``.

    Returns:
        ``(output, scores)``: ``(B, N, d)`` and ``(B, H, N, N)``.
    """
    q, k, v = (split_heads(x @ w + b, num_heads) for w, b in ((w_q, b_q), (w_k, b_k), (w_v, b_v)))
    out, scores = scaled_dot_product_attention(q, k, v)
    return merge_heads(out) @ w_out + b_out, scores
