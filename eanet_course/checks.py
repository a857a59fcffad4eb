"""Checkers for the exercises: friendly feedback that names the classic mistakes.

Each ``check_<name>(learner_function)`` calls the learner's function on several random inputs
of several shapes, compares with :mod:`eanet_course.reference`, and returns a
:class:`CheckResult`. A checker never raises on the learner's mistakes (an exception, a stub, a
wrong type or shape, NaN): it says what was expected, what came back, and a hint. When the
answer equals a known wrong answer (softmax over the wrong axis, no l1 step, patches in the
wrong order, heads split the wrong way, no ``1/sqrt(d_k)``...), the message names that mistake.
In a notebook, put the call last in a cell: the result shows itself as a coloured box.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eanet_course import reference as ref

__all__ = [
    "CheckResult",
    "check_extract_patches",
    "check_scaled_dot_product_attention",
    "check_external_attention",
    "check_double_normalization",
    "check_split_heads",
    "check_merge_heads",
    "check_transformer_block",
    "check_parameter_count",
    "check_learning_rate_schedule",
]

NOT_IMPLEMENTED = "not implemented yet"
_RTOL, _ATOL = 1e-4, 1e-5


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one checker: ``passed`` and the feedback ``message`` (plain text)."""

    passed: bool
    message: str

    @property
    def not_implemented(self) -> bool:
        """True when the learner's function is still the exercise's stub."""
        return not self.passed and NOT_IMPLEMENTED in self.message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.passed else "#9a6700" if self.not_implemented else "#b42318"
        return (f'<div style="border-left: 6px solid {colour}; padding: 0.4em 0.8em; '
                f'margin: 0.3em 0"><pre style="margin: 0; white-space: pre-wrap">'
                f"{html.escape(self.message)}</pre></div>")


class _Stub(Exception):
    """The learner's function raised ``NotImplementedError``."""


class _Mistake(Exception):
    """Feedback for the learner: what was expected, what came back, a hint."""


def _checker(hint: str) -> Callable:
    """Turn ``body(fn)`` (which returns a success note or raises) into a safe checker."""

    def decorate(body: Callable) -> Callable[[Callable], CheckResult]:
        name = body.__name__

        def check(fn: Callable) -> CheckResult:
            if not callable(fn):
                return CheckResult(False, f"✗ {name}: expected your function, got "
                                          f"{type(fn).__name__} {fn!r:.60}.\nPass the function "
                                          "itself, without calling it: "
                                          f"{name}(my_function).")
            try:
                note = body(fn)
            except _Stub:
                return CheckResult(False, f"… {name}: {NOT_IMPLEMENTED}. Replace the "
                                          f"`raise NotImplementedError(...)` with your code.\n"
                                          f"Hint: {hint}")
            except _Mistake as mistake:
                return CheckResult(False, f"✗ {name}: not right yet.\n{mistake}\nHint: {hint}")
            except Exception as e:  # noqa: BLE001 -- a checker never raises on learner code
                return CheckResult(False, f"✗ {name}: not right yet.\nYour function's result "
                                          f"could not be used: {type(e).__name__}: {e}\n"
                                          f"Hint: {hint}")
            return CheckResult(True, f"✓ {name}: correct. {note}")

        # Not functools.wraps: help() would show body's signature, which returns a str.
        check.__name__, check.__qualname__, check.__doc__ = name, body.__qualname__, body.__doc__
        return check

    return decorate


def _call(fn: Callable, *args, what: str):
    """``fn(*args)`` on copies of the arrays, turning the learner's exceptions into feedback."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]  # in-place edits stay
    try:
        with np.errstate(all="ignore"):  # overflow and 0/0 are reported as NaN feedback
            return fn(*args)
    except NotImplementedError:
        raise _Stub() from None
    except Exception as e:  # noqa: BLE001 -- any learner error becomes feedback
        raise _Mistake(f"Called with {what}, your function raised "
                       f"{type(e).__name__}: {e}") from None


def _array(value, label: str, what: str) -> np.ndarray:
    """``value`` as a float array, or feedback saying what came back instead."""
    if value is None:
        raise _Mistake(f"Called with {what}, your function returned None instead of {label}: "
                       "is the `return` missing?")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Mistake(f"Called with {what}, {label} should be an array but your function "
                       f"returned {type(value).__name__}: {value!r:.80}") from None


def _pair(value, names: tuple[str, str], what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _Mistake(f"Called with {what}, expected a pair ({names[0]}, {names[1]}) but your "
                       f"function returned {type(value).__name__}: {value!r:.80}\n"
                       f"End with `return {names[0]}, {names[1]}`.")
    return _array(value[0], names[0], what), _array(value[1], names[1], what)


def _preview(a: np.ndarray) -> str:
    return np.array2string(a.reshape(-1)[:6], precision=4, suppress_small=True)


def _compare(got: np.ndarray, expected: np.ndarray, label: str, what: str,
             mistakes: dict[str, np.ndarray] | None = None) -> None:
    """Raise feedback unless ``got`` matches ``expected``; name a known mistake it matches."""
    if got.shape == expected.shape and np.allclose(got, expected, rtol=_RTOL, atol=_ATOL):
        return
    for explanation, wrong in (mistakes or {}).items():
        if got.shape == wrong.shape and np.allclose(got, wrong, rtol=_RTOL, atol=_ATOL):
            raise _Mistake(f"Called with {what}, what your function returned as {label} "
                           "is a classic wrong answer.\n"
                           f"Likely mistake: {explanation}")
    lines = [f"Called with {what}:",
             f"  expected {label} of shape {expected.shape}, starting {_preview(expected)}",
             f"  got      {label} of shape {got.shape}, starting {_preview(got)}"]
    if got.shape != expected.shape:
        lines.append(f"The shapes differ: {got.shape} instead of {expected.shape}.")
    elif not np.all(np.isfinite(got)):
        lines.append("Your result contains NaN or inf. If you compute exp yourself, subtract "
                     "the maximum over the same axis first (a stable softmax), and never "
                     "divide by a sum that can be 0.")
    else:
        lines.append(f"The largest difference is {np.max(np.abs(got - expected)):.3g}.")
    raise _Mistake("\n".join(lines))


# ----------------------------------------------------------------------------------------------
# 01 patches


def _patch_mistakes(images: np.ndarray, p: int) -> dict[str, np.ndarray]:
    b, h, w, c = images.shape
    grid = images.reshape(b, h // p, p, w // p, p, c)  # (B, rows, P, cols, P, C)

    def flat(axes):
        return grid.transpose(axes).reshape(b, (h // p) * (w // p), p * p * c)

    return {
        "patches in the wrong order: yours run column by column over the image. They should "
        "run row by row: transpose the grid to (B, rows, cols, P, P, C), rows before cols.":
            flat((0, 3, 1, 2, 4, 5)),
        "channels interleaved wrongly: inside each patch yours come channel plane by channel "
        "plane (all of channel 0, then channel 1...). Keep each pixel's C channels together: "
        "the order inside a patch is (P, P, C).": flat((0, 1, 3, 5, 2, 4)),
        "pixels in the wrong order inside a patch: yours run column by column; they should run "
        "row by row, (P_row, P_col, C).": flat((0, 1, 3, 4, 2, 5)),
        "a plain reshape without the transpose: each of your 'patches' is a strip of consecutive "
        "pixels, not a P x P square. Reshape to (B, H/P, P, W/P, P, C), transpose to "
        "(B, H/P, W/P, P, P, C), then reshape to (B, N, P*P*C).":
            images.reshape(b, (h // p) * (w // p), p * p * c),
    }


@_checker("reshape to (B, H/P, P, W/P, P, C), transpose to (B, H/P, W/P, P, P, C), then reshape "
          "to (B, N, P*P*C). Patches run row by row; inside a patch pixels run row by row with "
          "their C channels together.")
def check_extract_patches(fn: Callable) -> str:
    """Check ``fn(images (B, H, W, C), patch_size) -> (B, N, P*P*C)``."""
    rng = np.random.default_rng(1)
    cases = [((2, 8, 8, 3), 2), ((1, 12, 8, 2), 4), ((3, 6, 9, 3), 3)]
    for shape, p in cases:
        images = rng.integers(0, 256, size=shape).astype(np.float32)
        what = f"images of shape {shape} and patch_size={p}"
        got = _array(_call(fn, images, p, what=what), "patches", what)
        _compare(got, ref.extract_patches(images, p), "patches", what,
                 _patch_mistakes(images, p))
    return f"Same patches as the reference on {len(cases)} random batches of different shapes."


# ----------------------------------------------------------------------------------------------
# 02 scaled dot-product attention


@_checker("logits = Q @ K^T / sqrt(d_k) with K^T = np.swapaxes(k, -1, -2); softmax over the keys "
          "(axis -1); output = weights @ V. Return (output, weights).")
def check_scaled_dot_product_attention(fn: Callable) -> str:
    """Check ``fn(q (..., Nq, dk), k (..., Nk, dk), v (..., Nk, dv)) -> (output, weights)``."""
    rng = np.random.default_rng(2)
    cases = [((5, 4), (7, 4), (7, 3)), ((2, 6, 8), (2, 6, 8), (2, 6, 5)),
             ((2, 3, 4, 6), (2, 3, 5, 6), (2, 3, 5, 2))]
    for shapes in cases:
        q, k, v = (2.0 * rng.normal(size=s) for s in shapes)
        what = "q, k, v of shapes " + ", ".join(map(str, shapes))
        out, weights = _pair(_call(fn, q, k, v, what=what), ("output", "weights"), what)
        logits = q @ np.swapaxes(k, -1, -2)
        d_k = q.shape[-1]
        expected_out, expected_weights = ref.scaled_dot_product_attention(q, k, v)
        _compare(weights, expected_weights, "weights", what, {
            "a missing scale factor: divide the logits Q K^T by sqrt(d_k) before the softmax.":
                ref.softmax(logits, axis=-1),
            "the wrong scale factor: divide by sqrt(d_k), not by d_k.":
                ref.softmax(logits / d_k, axis=-1),
            "softmax over the wrong axis: each query's weights must sum to 1 over the keys "
            "(axis -1); yours are normalized over the queries (axis -2).":
                ref.softmax(logits / math.sqrt(d_k), axis=-2),
        })
        _compare(out, expected_out, "output", what)
    return f"Output and weights match the reference on {len(cases)} random cases."


# ----------------------------------------------------------------------------------------------
# 03 external attention, 04 double normalization


def _normalization_mistakes(logits: np.ndarray) -> dict[str, np.ndarray]:
    """The classic wrong double normalizations of ``(..., N, S)`` logits."""
    def l1(a, axis):
        return a / np.sum(a, axis=axis, keepdims=True)

    mistakes = {
        "softmax over the wrong axis: yours runs over the memory axis S (axis -1). The first "
        "step is a softmax over the patch axis N (axis -2); the l1 step then runs over S.":
            ref.softmax(logits, axis=-1),
        "the l1 step is missing, or it runs over the wrong axis (N instead of S): every column "
        "sums to 1 but the rows do not. After the softmax over N, divide each row by its sum "
        "over the memory axis S (axis -1, keepdims=True).":
            ref.softmax(logits, axis=-2),
        "both axes swapped: softmax over S then l1 over N. It is the other way round: softmax "
        "over the patch axis N (axis -2), then l1 over the memory axis S (axis -1).":
            l1(ref.softmax(logits, axis=-1), -2),
    }
    if logits.ndim > 2:
        mistakes["fixed axes 0 and 1: they work for one (N, S) map but not with leading batch "
                 "or head axes. Use axis=-2 (N) and axis=-1 (S)."] = (
            l1(ref.softmax(logits, axis=0), 1))
    return mistakes


@_checker("first a softmax over the patch axis N (axis=-2), then divide by the sum over the "
          "memory axis S (axis=-1, keepdims=True): each patch's weights sum to 1.")
def check_double_normalization(fn: Callable) -> str:
    """Check ``fn(logits (..., N, S)) -> (..., N, S)``, the double normalization."""
    rng = np.random.default_rng(4)
    # The last case shifts every logit by 800: the answer is the same, but a softmax that does
    # not subtract the maximum overflows.
    cases = [((5, 3), 0.0), ((2, 7, 4), 0.0), ((2, 3, 6, 9), 0.0), ((3, 8, 5), 800.0)]
    for shape, shift in cases:
        logits = 2.0 * rng.normal(size=shape) + shift
        what = f"logits of shape {shape}" + (f" (values near {shift:.0f})" if shift else "")
        got = _array(_call(fn, logits, what=what), "attention", what)
        _compare(got, ref.double_normalization(logits), "attention", what,
                 _normalization_mistakes(logits))
    return (f"Matches the reference on {len(cases)} random inputs of shapes "
            + ", ".join(str(s) for s, _ in cases) + ", large logits included.")


@_checker("logits = F @ M_k.T (N, S); attention = softmax over N (axis -2), then l1 over S "
          "(axis -1); output = attention @ M_v. Return (output, attention).")
def check_external_attention(fn: Callable) -> str:
    """Check ``fn(features (..., N, d), m_k (S, d), m_v (S, dv)) -> (output, attention)``."""
    rng = np.random.default_rng(3)
    cases = [((6, 4), 3, 4), ((2, 5, 8), 6, 3), ((2, 3, 7, 4), 5, 4)]
    for f_shape, s, dv in cases:
        features = rng.normal(size=f_shape)
        m_k, m_v = rng.normal(size=(s, f_shape[-1])), rng.normal(size=(s, dv))
        what = f"features {f_shape}, m_k {m_k.shape}, m_v {m_v.shape}"
        out, attention = _pair(_call(fn, features, m_k, m_v, what=what),
                               ("output", "attention"), what)
        expected_out, expected_attention = ref.external_attention(features, m_k, m_v)
        _compare(attention, expected_attention, "attention", what,
                 _normalization_mistakes(features @ m_k.T))
        _compare(out, expected_out, "output", what, {
            "the output reads the wrong memory: multiply the attention by M_v, not M_k.":
                expected_attention @ m_k,
        })
    return f"Output and attention match the reference on {len(cases)} random cases."


# ----------------------------------------------------------------------------------------------
# 05 heads


@_checker("reshape (B, N, H*dh) to (B, N, H, dh): each head owns a block of dh consecutive "
          "channels; then transpose with axes (0, 2, 1, 3) to (B, H, N, dh).")
def check_split_heads(fn: Callable) -> str:
    """Check ``fn(x (B, N, H*dh), num_heads) -> (B, H, N, dh)``."""
    rng = np.random.default_rng(5)
    cases = [((2, 5, 12), 3), ((1, 4, 8), 2), ((3, 6, 24), 4)]
    for shape, h in cases:
        x = rng.normal(size=shape)
        b, n, width = shape
        dh = width // h
        what = f"x of shape {shape} and num_heads={h}"
        got = _array(_call(fn, x, h, what=what), "heads", what)
        _compare(got, ref.split_heads(x, h), "heads", what, {
            "the transpose is missing: you stopped at (B, N, H, dh). Transpose with axes "
            "(0, 2, 1, 3) to get (B, H, N, dh).": x.reshape(b, n, h, dh),
            "heads split in the wrong order: you reshaped straight to (B, H, N, dh), which "
            "mixes patches and channels. Reshape to (B, N, H, dh) first, then transpose.":
                x.reshape(b, h, n, dh),
            "heads split in the wrong order: a (dh, H) split sends channel c to head c % H. Each "
            "head must own a block of dh consecutive channels: reshape to (B, N, H, dh).":
                x.reshape(b, n, dh, h).transpose(0, 3, 1, 2),
        })
    return f"Matches the reference on {len(cases)} random inputs."


@_checker("transpose (B, H, N, dh) with axes (0, 2, 1, 3) to (B, N, H, dh), then reshape to "
          "(B, N, H*dh): the inverse of split_heads.")
def check_merge_heads(fn: Callable) -> str:
    """Check ``fn(x (B, H, N, dh)) -> (B, N, H*dh)``, the inverse of ``split_heads``."""
    rng = np.random.default_rng(6)
    cases = [(2, 3, 5, 4), (1, 2, 4, 4), (3, 4, 6, 2)]
    for shape in cases:
        x = rng.normal(size=shape)
        b, h, n, dh = shape
        what = f"x of shape {shape}"
        got = _array(_call(fn, x, what=what), "merged heads", what)
        _compare(got, ref.merge_heads(x), "merged heads", what, {
            "heads merged in the wrong order: a reshape straight to (B, N, H*dh) without the "
            "transpose mixes patches and heads. Transpose to (B, N, H, dh) first.":
                x.reshape(b, n, h * dh),
            "heads merged in the wrong order: your channels come as (dh, H), head by head "
            "interleaved. Transpose with axes (0, 2, 1, 3) to (B, N, H, dh), then reshape.":
                x.transpose(0, 2, 3, 1).reshape(b, n, dh * h),
        })
    return f"Matches the reference on {len(cases)} random inputs."


# ----------------------------------------------------------------------------------------------
# 06 the transformer block and the parameter count


@_checker("pre-norm: y = x + ExternalAttention(LayerNormalization(epsilon=1e-5)(x)); then "
          "y + MLP(LayerNormalization(epsilon=1e-5)(y)) with MLP = Dense(mlp_dim, gelu) then "
          "Dense(embed_dim). Return the output tensor.")
def check_transformer_block(fn: Callable) -> str:
    """Check ``fn(x, embed_dim, mlp_dim, num_heads, dim_coefficient) -> tensor`` (functional).

    ``x`` is a ``keras.Input`` of shape ``(N, embed_dim)``; the block must keep that shape,
    have the parameters of :class:`eanet_course.layers.TransformerBlock`, return its input
    unchanged when every weight is zero (both residual connections), and, given that block's
    random weights, compute the same ``(B, N, embed_dim)`` output.
    """
    import keras

    from eanet_course.layers import TransformerBlock

    rng = np.random.default_rng(7)
    cases = [(16, 32, 64, 2, 2), (9, 16, 24, 4, 2)]
    for n, d, mlp, heads, c in cases:
        what = f"x = keras.Input(({n}, {d})), embed_dim={d}, mlp_dim={mlp}, num_heads={heads}, " \
               f"dim_coefficient={c}"
        inputs = keras.Input((n, d))
        outputs = _call(fn, inputs, d, mlp, heads, c, what=what)
        if not isinstance(outputs, keras.KerasTensor):
            raise _Mistake(f"Called with {what}, expected the block's output tensor but your "
                           f"function returned {type(outputs).__name__}: {outputs!r:.80}\n"
                           "Apply the layers to x (functional API) and return the result.")
        if tuple(outputs.shape) != (None, n, d):
            raise _Mistake(f"Called with {what}, expected an output of shape (None, {n}, {d}); "
                           f"got {tuple(outputs.shape)}. The block must keep the shape of x.")
        try:
            model = keras.Model(inputs, outputs)
        except ValueError as e:
            raise _Mistake(f"Called with {what}, your output is not computed from x: {e}\n"
                           "Apply the layers to the x you are given.") from None
        block = TransformerBlock(d, mlp, heads, "external", c)
        block.build((None, n, d))
        expected, got = block.count_params(), model.count_params()
        if got != expected:
            raise _Mistake(f"Called with {what}, expected {expected:,} parameters (like "
                           f"eanet_course.layers.TransformerBlock); yours has {got:,}.\n"
                           + _block_difference(expected - got, block))
        x = rng.normal(size=(2, n, d)).astype("float32")
        model.set_weights([np.zeros(w.shape, "float32") for w in model.get_weights()])
        zeroed = np.asarray(keras.ops.convert_to_numpy(model(x)))
        if not np.allclose(zeroed, x, atol=1e-5):
            raise _Mistake(f"Called with {what}: with every weight set to zero, a pre-norm block "
                           "returns its input unchanged (x + 0, then + 0). Yours does not: a "
                           "residual connection is missing, or a norm comes after an addition.")
        values = [rng.normal(scale=0.3, size=w.shape).astype("float32")
                  for w in block.get_weights()]
        if [tuple(w.shape) for w in model.get_weights()] != [v.shape for v in values]:
            raise _Mistake(f"Called with {what}, your layers' weights do not come in "
                           "TransformerBlock's order: LayerNormalization, ExternalAttention, "
                           "LayerNormalization, Dense(mlp_dim), Dense(embed_dim). Is a layer "
                           "applied to the wrong tensor (the MLP's norm reads y, not x)?")
        block.set_weights(values)
        model.set_weights(values)
        expected = keras.ops.convert_to_numpy(block(x))
        block.attention_norm.epsilon = block.mlp_norm.epsilon = 1e-3  # Keras' default
        _compare(np.asarray(keras.ops.convert_to_numpy(model(x))), expected, "output",
                 f"{what} and TransformerBlock's weights (random)", {
                     "LayerNormalization's default epsilon (1e-3): pass epsilon=1e-5.":
                         keras.ops.convert_to_numpy(block(x))})
    return (f"Shapes, parameter counts, residual connections and outputs are right on "
            f"{len(cases)} block sizes.")


def _block_difference(missing: int, block) -> str:
    """Name the part of the block whose parameters are missing (or extra)."""
    d = block.embed_dim
    parts = {
        "one LayerNormalization (2 * embed_dim)": 2 * d,
        "both LayerNormalizations": 4 * d,
        "the external attention": block.attention.count_params(),
        "the MLP": block.mlp_hidden.count_params() + block.mlp_output.count_params(),
    }
    for part, size in parts.items():
        if abs(missing) == size:
            return f"Likely mistake: {'missing' if missing > 0 else 'an extra'} {part}."
    return f"You have {abs(missing):,} parameters {'too few' if missing > 0 else 'too many'}."


def _model_parts(config) -> tuple[int, dict[str, int]]:
    """``build_eanet(config)``'s parameter count and the sizes of the parts learners forget."""
    from eanet_course.layers import TransformerBlock
    from eanet_course.models import build_eanet

    model = build_eanet(config)
    weights = {w.path: int(np.prod(w.shape)) for w in model.weights}
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    k = len(blocks)
    parts = {
        "the position embedding (N * embed_dim) is not counted":
            model.get_layer("patch_embedding").position_embedding.count_params(),
        "the biases are not counted (a Dense from n to m has n*m + m parameters)":
            sum(n for path, n in weights.items() if path.endswith("/bias")),
        "the LayerNormalizations are not counted (2 * embed_dim each, two per block)":
            sum(n for path, n in weights.items() if path.endswith(("/gamma", "/beta"))),
        "the classifier is not counted": model.get_layer("classifier").count_params(),
        f"one block counted instead of num_blocks={k}": (k - 1) * blocks[0].count_params(),
        "memory_units ignored: S is config.memory_units when it is set (embed_dim // "
        "dim_coefficient only when it is None)":
            sum((2 * b.attention.head_dim + 1)
                * (b.attention.memory_units - config.embed_dim // config.dim_coefficient)
                for b in blocks),
    }
    return model.count_params(), parts


@_checker("add up, for every layer: a Dense from n to m has n*m + m parameters; an Embedding "
          "N*d; a LayerNormalization 2*d. External attention per block: to_heads (d -> d*c), "
          "memory_key (dh -> S), memory_value (S -> dh), output_projection (d*c -> d), with "
          "dh = embed_dim // num_heads.")
def check_parameter_count(fn: Callable) -> str:
    """Check ``fn(config: EANetConfig) -> int`` against ``build_eanet(config).count_params()``."""
    from eanet_course.config import PROFILES

    ci, laptop = PROFILES["ci"], PROFILES["laptop"]
    configs = [ci, ci.replace(memory_units=8, num_blocks=3),
               laptop.replace(num_blocks=2, patch_size=8, embed_dim=48, num_heads=3)]
    for config in configs:
        what = ("EANetConfig(" + ", ".join(f"{f}={getattr(config, f)}" for f in (
            "image_size", "channels", "patch_size", "num_classes", "embed_dim", "mlp_dim",
            "num_heads", "dim_coefficient", "memory_units", "num_blocks")) + ")")
        got = _call(fn, config, what=what)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise _Mistake(f"Called with {what}, expected an int but your function returned "
                           f"{type(got).__name__}: {got!r:.80}\nDivide with // (not /) and "
                           "return an int.")
        expected, parts = _model_parts(config)
        if got == expected:
            continue
        lines = [f"Called with {what}:", f"  expected {expected:,} parameters "
                 "(build_eanet(config).count_params())", f"  got      {int(got):,}"]
        named = [part for part, size in parts.items() if size and expected - got == size]
        lines.append(f"Likely mistake: {named[0]}." if named else
                     f"You count {abs(expected - int(got)):,} "
                     f"{'too few' if got < expected else 'too many'}.")
        raise _Mistake("\n".join(lines))
    return f"Exact on {len(configs)} configs, memory_units and odd widths included."


# ----------------------------------------------------------------------------------------------
# 07 a learning-rate schedule


@_checker("keras.optimizers.schedules.CosineDecay(initial_learning_rate=0.0, "
          "decay_steps=total_steps - warmup_steps, warmup_target=peak_learning_rate, "
          "warmup_steps=warmup_steps) warms up linearly, then decays along a cosine.")
def check_learning_rate_schedule(fn: Callable) -> str:
    """Check ``fn(peak_learning_rate, total_steps, warmup_steps) -> LearningRateSchedule``.

    The schedule must start low, rise to the peak at the end of the warm-up, never exceed it,
    and decay to under a tenth of it by the last step.
    """
    import keras

    cases = [(1e-3, 200, 20), (3e-3, 90, 9), (5e-4, 1000, 50)]
    for peak, total, warmup in cases:
        what = f"peak_learning_rate={peak}, total_steps={total}, warmup_steps={warmup}"
        schedule = _call(fn, peak, total, warmup, what=what)
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise _Mistake(f"Called with {what}, expected a keras.optimizers.schedules."
                           f"LearningRateSchedule (optimizers call it with the step number); "
                           f"your function returned {type(schedule).__name__}: "
                           f"{schedule!r:.80}")
        steps = np.unique(np.linspace(0, total, 41).astype(int).tolist() + [warmup])
        try:
            rates = np.array([float(keras.ops.convert_to_numpy(schedule(int(s))))
                              for s in steps])
        except Exception as e:  # noqa: BLE001 -- the learner's schedule failed
            raise _Mistake(f"Called with {what}, your schedule raised {type(e).__name__} when "
                           f"asked for a step's learning rate: {e}") from None
        table = ", ".join(f"step {s}: {r:.2e}" for s, r in zip(steps[::8], rates[::8]))
        problems = []
        if not np.all(np.isfinite(rates)) or np.any(rates < 0):
            problems.append("every learning rate must be a finite number >= 0")
        else:
            at_peak = rates[steps == warmup][0]
            if rates[0] > 0.5 * peak:
                problems.append(f"the warm-up is missing: step 0 already has {rates[0]:.2e}; "
                                "start near 0 and rise to the peak over warmup_steps")
            if not np.isclose(at_peak, peak, rtol=0.05):
                problems.append(f"at the end of the warm-up (step {warmup}) the rate should be "
                                f"the peak {peak:.2e}, not {at_peak:.2e}")
            if np.max(rates) > 1.05 * peak:
                problems.append(f"the rate goes above the peak ({np.max(rates):.2e})")
            if rates[-1] > 0.1 * peak:
                problems.append(f"no decay: the last step still has {rates[-1]:.2e}; decay to "
                                "under a tenth of the peak by total_steps")
        if problems:
            raise _Mistake(f"Called with {what}, your schedule gives {table}.\nProblems: "
                           + "; ".join(problems) + ".")
    return f"Warm-up, peak and decay are right on {len(cases)} step budgets."
