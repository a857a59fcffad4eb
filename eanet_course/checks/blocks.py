"""Checkers for the Keras exercises 05 and 06: the layer, the transformer block, the count.

The learner's block or layer is taken apart before its numbers are compared, so that the feedback
names the part that is wrong (a BatchNormalization, a LayerNormalization over the patches, a
shared norm, two layers with one name, a missing residual) rather than blaming the total.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from eanet_course import reference as ref
from eanet_course.checks._core import (
    Mistake, Refused, Stub, call, checker, close, compare, convert, fresh_rng, preview,
)

# ----------------------------------------------------------------------------------------------
# NumPy forward passes with swappable parts: the ground truth and its classic wrong variants.


def _layer_norm(x: np.ndarray, gamma, beta, epsilon: float) -> np.ndarray:
    """``(..., d)`` normalized over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=-1, keepdims=True) + epsilon) * gamma + beta


def _gelu(x: np.ndarray, approximate: bool = False) -> np.ndarray:
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


ACTIVATIONS = {"gelu": _gelu, "gelu (tanh approximation)": lambda x: _gelu(x, True),
               "relu": lambda x: np.maximum(x, 0), "none": lambda x: x,
               "swish": lambda x: x / (1 + np.exp(-x)), "tanh": np.tanh,
               "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
               "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))}


def _external(x: np.ndarray, weights: list[np.ndarray], heads: int, *,
              normalization: str = "double", split: str = "blocks",
              merge: str = "transpose") -> np.ndarray:
    """Multi-head external attention ``(B, N, d) -> (B, N, d)`` from the package layer's eight
    weights, with one part swapped for a classic mistake when asked."""
    w_in, b_in, m_k_t, b_k, m_v, b_v, w_out, b_out = weights
    wide = x @ w_in + b_in  # (B, N, d*c)
    b, n, width = wide.shape
    dh = width // heads
    if split == "blocks":
        h = wide.reshape(b, n, heads, dh).transpose(0, 2, 1, 3)
    elif split == "reshape":  # straight to (B, H, N, dh), no transpose
        h = wide.reshape(b, heads, n, dh)
    else:  # channel c to head c % H
        h = wide.reshape(b, n, dh, heads).transpose(0, 3, 1, 2)
    logits = h @ m_k_t + b_k  # (B, H, N, S)
    if normalization == "double":
        attention = ref.double_normalization(logits)
    elif normalization == "softmax over S":
        attention = ref.softmax(logits, axis=-1)
    elif normalization == "scaled":
        attention = ref.double_normalization(logits / math.sqrt(dh))
    elif normalization == "over heads":
        attention = ref.softmax(logits, axis=1)
        attention = attention / attention.sum(axis=-1, keepdims=True)
    elif normalization == "axes swapped":
        attention = ref.softmax(logits, axis=-1)
        attention = attention / attention.sum(axis=-2, keepdims=True)
    else:  # "no l1"
        attention = ref.softmax(logits, axis=-2)
    out = attention @ m_v + b_v  # (B, H, N, dh)
    merged = (out.transpose(0, 2, 1, 3) if merge == "transpose" else out).reshape(b, n, width)
    return merged @ w_out + b_out


def _block(x, p, *, epsilon=1e-5, activation="gelu", variant="right") -> np.ndarray:
    """The pre-norm block on ``x (B, N, d)`` with parameters ``p``, or a classic variant."""
    act = ACTIVATIONS[activation]

    def ln(v):
        return _layer_norm(v, p["gamma"], p["beta"], epsilon)

    def attend(v):
        return _external(v, p["attention"], p["heads"])

    def mlp(v):
        if variant == "activation on the output":
            return act((v @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"])
        return act(v @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    if variant == "post-norm":
        y = ln(x + attend(x))
        return ln(y + mlp(y))
    if variant == "norm on the branch's output":
        y = x + ln(attend(x))
        return y + ln(mlp(y))
    if variant == "residual from the normed input":
        y = ln(x) + attend(ln(x))
        return ln(y) + mlp(ln(y))
    y = attend(ln(x)) if variant in ("no attention residual", "no residuals") else x + attend(ln(x))
    if variant == "MLP reads x":
        return y + mlp(ln(x))
    if variant in ("no MLP residual", "no residuals"):
        return mlp(ln(y))
    if variant == "MLP residual from x":
        return x + mlp(ln(y))
    return y + mlp(ln(y))


BLOCK_VARIANTS = {
    "post-norm: your LayerNormalizations come after the additions. This block is pre-norm: "
    "each branch normalizes its input, and the residual adds the branch's output to the "
    "un-normalized stream.": {"variant": "post-norm"},
    "the residual connections add the normalized input: the stream that goes on must be the "
    "un-normalized x (and y), with the branch's output added to it.":
        {"variant": "residual from the normed input"},
    "each LayerNormalization is applied to its branch's output (x + LN(Attn(x))); in a "
    "pre-norm block it is applied to the branch's input: x + Attn(LN(x)).":
        {"variant": "norm on the branch's output"},
    "the attention's residual connection is missing: the block's first half adds the "
    "attention's output to its input.": {"variant": "no attention residual"},
    "the MLP's residual connection is missing: the block's second half adds the MLP's output "
    "to its input.": {"variant": "no MLP residual"},
    "both residual connections are missing: each half adds its branch's output to its own "
    "input.": {"variant": "no residuals"},
    "the MLP reads the block's input x; it should read y, the stream after the attention's "
    "residual.": {"variant": "MLP reads x"},
    "the MLP's residual adds x, the block's input, where it adds y, the stream after the "
    "attention's residual: the attention's output is lost.": {"variant": "MLP residual from x"},
    "the GELU is after the second Dense layer (on the MLP's output); it goes after the first, "
    "between the two.": {"variant": "activation on the output"},
    **{f"the MLP's activation is {name} (activation=\"{name}\"), not GELU.": {"activation": name}
       for name in ("swish", "tanh", "sigmoid", "elu")},
    "the MLP's activation is ReLU, not GELU.": {"activation": "relu"},
    "the MLP has no activation between its two Dense layers (GELU after the first).":
        {"activation": "none"},
}


# ----------------------------------------------------------------------------------------------
# Taking a learner's model apart.


def _leaves(layer) -> Iterator:
    """The layers that hold the block's parts, looking inside the learner's own container
    layers but not inside the package's ``ExternalAttention``."""
    import keras

    from eanet_course.layers import ExternalAttention, TransformerBlock

    parts = (ExternalAttention, TransformerBlock, keras.layers.LayerNormalization,
             keras.layers.BatchNormalization, keras.layers.GroupNormalization,
             keras.layers.UnitNormalization, keras.layers.Dense, keras.layers.EinsumDense,
             keras.layers.MultiHeadAttention)
    children = (layer.layers if isinstance(layer, keras.Model)
                else layer._flatten_layers(include_self=False, recursive=False))
    for child in children:
        if isinstance(child, parts) or not child.weights:
            yield child
        else:
            yield from _leaves(child)


def _model(inputs, outputs, what: str):
    import keras

    if isinstance(outputs, (tuple, list)):
        raise Mistake(f"Called with {what}, your function returned a {type(outputs).__name__} "
                      f"of {len(outputs)}.\nLikely mistake: more than the output is returned; "
                      "return only the block's output tensor.")
    if not isinstance(outputs, keras.KerasTensor):
        raise Mistake(f"Called with {what}, expected the block's output tensor but your "
                      f"function returned {type(outputs).__name__}: {outputs!r:.80}\n"
                      "Likely mistake: the layers are made but not applied (or the return is "
                      "missing): apply them to x (functional API) and return the result.")
    try:
        return keras.Model(inputs, outputs)
    except ValueError as e:
        text = str(e)
        if "is used" in text and "times in the model" in text:
            name = text.split('"')[1] if '"' in text else "?"
            raise Mistake(f"Called with {what}, two of your layers share the name {name!r}.\n"
                          "Likely mistake: a fixed name= reused; every layer of a model needs "
                          "its own name. Give each layer its own "
                          "name= (or none: Keras numbers them).") from None
        raise Mistake(f"Called with {what}, your output is not computed from x: {e}\n"
                      "Likely mistake: a new keras.Input inside the function; apply the layers "
                      "to the x you are given.") from None


def _structure(model, d: int, mlp: int, heads: int, c: int, what: str) -> dict:
    """The block's parts, or feedback naming the part that is missing, extra or misused."""
    import keras

    from eanet_course.layers import ExternalAttention, TransformerBlock

    leaves = list(_leaves(model))
    kinds = {type(layer).__name__ for layer in leaves}
    if any(isinstance(layer, TransformerBlock) for layer in leaves):
        raise Mistake(f"Called with {what}: you used the package's TransformerBlock.\nLikely "
                      "mistake: the exercise is to build the block from its parts "
                      "(LayerNormalization, ExternalAttention, Dense), not to call the "
                      "finished block.")
    other_norms = [layer for layer in leaves if isinstance(layer, (
        keras.layers.BatchNormalization, keras.layers.GroupNormalization,
        keras.layers.UnitNormalization))]
    if other_norms:
        name = type(other_norms[0]).__name__
        across = "the batch" if "Batch" in name else "other values"
        raise Mistake(f"Called with {what}: your block uses {name}.\nLikely mistake: the "
                      "wrong normalization layer. A transformer block normalizes each patch "
                      f"over its own channels (LayerNormalization); {name} mixes statistics "
                      f"across {across}, so a patch's output depends on the other images (and "
                      "differs between training and inference).")
    dropouts = [layer for layer in leaves if isinstance(layer, (
        keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.GaussianNoise,
        keras.layers.GaussianDropout, keras.layers.AlphaDropout)) and getattr(
        layer, "rate", getattr(layer, "stddev", 0.0))]
    if dropouts:
        raise Mistake(f"Called with {what}: your block has a {type(dropouts[0]).__name__} layer "
                      f"({dropouts[0].name!r}), which changes the output in training.\nLikely "
                      "mistake: dropout (or noise) the block does not have: the contract's "
                      "block is two normalized branches with residuals, and nothing random.")
    norms = [layer for layer in leaves if isinstance(layer, keras.layers.LayerNormalization)]
    if not any(isinstance(layer, keras.layers.Dense) for layer in leaves) and any(
            isinstance(layer, ExternalAttention) for layer in leaves):
        raise Mistake(f"Called with {what}: your block's output is computed without any Dense "
                      "layer outside the attention.\nLikely mistake: the MLP branch (the second "
                      "half) is not in the output: is the first half's result y returned "
                      "instead of y + MLP(LayerNormalization(y))?")
    calls = sum(len(layer._inbound_nodes) for layer in norms)
    if len(norms) == 1 and calls >= 2:
        raise Mistake(f"Called with {what}: one LayerNormalization is applied twice.\nLikely "
                      "mistake: both branches share one norm (and its weights). The block has "
                      "two LayerNormalizations, one per branch, each with its own weights.")
    if len(norms) != 2:
        raise Mistake(f"Called with {what}: your block has {len(norms)} LayerNormalization "
                      "layer(s).\nLikely mistake: " + (
                          "a LayerNormalization is missing; a pre-norm block has two, one "
                          "before the attention and one before the MLP." if len(norms) < 2 else
                          "a LayerNormalization too many (a final one after the MLP?); a "
                          "pre-norm block has two, one at the start of each branch."))
    for layer in norms:
        axis = [a if a < 0 else a - 3 for a in np.ravel(layer.axis).tolist()]
        if axis != [-1]:
            over = {(-2,): "the patches N", (-2, -1): "the patches and channels together"}.get(
                tuple(sorted(axis)), f"axis {layer.axis}")
            raise Mistake(f"Called with {what}: your LayerNormalization {layer.name!r} "
                          f"normalizes over {over}.\nLikely mistake: the wrong axis. Each patch "
                          "is normalized over its own channels, the last axis only.")
        if not math.isclose(layer.epsilon, 1e-5, rel_tol=1e-3):
            default = " (Keras' default)" if math.isclose(layer.epsilon, 1e-3) else ""
            raise Mistake(f"Called with {what}: your LayerNormalization {layer.name!r} has "
                          f"epsilon={layer.epsilon:g}{default}.\nLikely mistake: epsilon left at "
                          "its default; the block's contract (the "
                          "package's TransformerBlock) is 1e-5.")
    attentions = [layer for layer in leaves if isinstance(layer, ExternalAttention)]
    if len(attentions) != 1:
        others = ", ".join(sorted(kinds & {"MultiHeadAttention", "EinsumDense"}))
        raise Mistake(f"Called with {what}: your block has {len(attentions)} ExternalAttention "
                      f"layer(s){' (and ' + others + ')' if others else ''}.\nLikely mistake: "
                      + ("the attention branch is missing or built from other layers; it is "
                         "one ExternalAttention layer." if not attentions else
                         "one ExternalAttention per branch or call; the block has exactly "
                         "one."))
    attention = attentions[0]
    given = {"embed_dim": attention.embed_dim, "num_heads": attention.num_heads,
             "dim_coefficient": attention.dim_coefficient}
    wanted = {"embed_dim": d, "num_heads": heads, "dim_coefficient": c}
    wrong = [f"{k}={given[k]} (should be {wanted[k]})" for k in wanted if given[k] != wanted[k]]
    if given["num_heads"] == heads * c and c > 1 and given["embed_dim"] == d and \
            given["dim_coefficient"] == c:
        raise Mistake(f"Called with {what}: your ExternalAttention has num_heads="
                      f"{given['num_heads']} (should be {heads}).\nLikely mistake: num_heads * "
                      "dim_coefficient passed as num_heads; ExternalAttention multiplies "
                      "num_heads by dim_coefficient itself: pass the block's num_heads.")
    if not wrong and attention.normalization != "double":
        raise Mistake(f"Called with {what}: your ExternalAttention has normalization="
                      f"{attention.normalization!r}.\nLikely mistake: the normalization changed; "
                      "the block's attention is external attention with the double "
                      "normalization, the default (normalization=\"double\").")
    if wrong or attention.normalization != "double" or attention._memory_units is not None:
        wrong += [f"normalization={attention.normalization!r}"] * (
            attention.normalization != "double")
        wrong += [f"memory_units={attention._memory_units}"] * (
            attention._memory_units is not None)
        raise Mistake(f"Called with {what}: your ExternalAttention has " + ", ".join(wrong)
                      + ".\nLikely mistake: arguments in the wrong order or fixed numbers. Pass "
                      "the block's own arguments, in the order of ExternalAttention's "
                      "signature (or by keyword), and leave the rest at their defaults.")
    denses = [layer for layer in leaves if isinstance(layer, keras.layers.Dense)]
    units = sorted(layer.units for layer in denses)
    if units != sorted([mlp, d]):
        raise Mistake(f"Called with {what}: your block's Dense layers (outside the attention) "
                      f"have {units} units.\nLikely mistake: the MLP's sizes; it has two Dense "
                      f"layers: mlp_dim={mlp} units, then embed_dim={d}.")
    if not all(layer.use_bias for layer in denses):
        raise Mistake(f"Called with {what}: a Dense layer of your MLP has use_bias=False.\n"
                      "Likely mistake: a bias switched off; both have biases, as Keras' "
                      "default.")
    hidden = next(layer for layer in denses if layer.units == mlp)
    output = next(layer for layer in denses if layer is not hidden)
    extra = [layer.name for layer in leaves if layer.weights and layer not in
             (*norms, attention, hidden, output)]
    if extra:
        raise Mistake(f"Called with {what}: your block has layers with weights the block does "
                      f"not have: {extra}.\nLikely mistake: an extra layer; the block is two "
                      "LayerNormalizations, one ExternalAttention and two Dense layers.")
    return {"norms": norms, "attention": attention, "hidden": hidden, "output": output}


def _check_block_numbers(model, parts: dict, n: int, d: int, heads: int,
                        c: int, rng: np.random.Generator, what: str) -> None:
    """Random weights in every part; the learner's output against the NumPy block and its
    classic wrong variants."""
    gamma = 1.0 + 0.3 * rng.normal(size=d)
    beta = 0.3 * rng.normal(size=d)
    for norm in parts["norms"]:
        norm.set_weights([gamma.astype("float32"), beta.astype("float32")])
    attention = [rng.normal(scale=0.3, size=w.shape) for w in parts["attention"].get_weights()]
    parts["attention"].set_weights([w.astype("float32") for w in attention])
    dense = {}
    for key, layer in (("1", parts["hidden"]), ("2", parts["output"])):
        kernel, bias = (rng.normal(scale=0.3, size=w.shape) for w in layer.get_weights())
        layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
        dense["w" + key], dense["b" + key] = kernel, bias
    params = {"gamma": gamma, "beta": beta, "attention": attention,
              "heads": heads * c, **dense}
    x32 = rng.normal(size=(3, n, d)).astype("float32")
    x = x32.astype(np.float64)
    rtol, atol = 1e-3, 1e-4  # float32 through two branches
    expected = _block(x, params)
    for training in (False, True):
        got = _outputs(lambda: model(x32, training=training), what)
        if close(got, expected, rtol, atol) or close(
                got, _block(x, params, activation="gelu (tanh approximation)"), rtol, atol):
            continue
        if training:
            raise Mistake(f"Called with {what}, your block is right in inference but gives "
                          f"other outputs with training=True (starting {preview(got)} instead "
                          f"of {preview(expected)}).\nLikely mistake: something random or "
                          "training-only in the block (dropout, noise, training=True fixed on a "
                          "layer); the block has none.")
        compare(got, expected, "output", f"{what} and random weights",
                {text: _block(x, params, **change) for text, change in BLOCK_VARIANTS.items()},
                rtol=rtol, atol=atol, axes=("B", "N", "d"))


def _outputs(run: Callable, what: str) -> np.ndarray:
    """The learner's model or layer run by ``run()``, its output a plain float64 array (the
    conversion under the time limit)."""
    out = call(run, what=what)
    if isinstance(out, (tuple, list)):
        raise Mistake(f"Called with {what}, your layer returned a {type(out).__name__} of "
                      f"{len(out)}.\nLikely mistake: more than the output is returned (the "
                      "attention too?); call(x) returns the output alone, (B, N, embed_dim).")
    return convert(lambda v: np.array(np.asarray(v), dtype=np.float64), out, what, "output")


@checker("transformer_block", limit_factor=3.0)
def check_transformer_block(fn: Callable) -> str:
    """Check ``fn(x, embed_dim, mlp_dim, num_heads, dim_coefficient) -> tensor`` (functional).

    ``x`` is a ``keras.Input`` of shape ``(N, embed_dim)``. The block is taken apart (two
    LayerNormalizations over the channels with epsilon 1e-5, one ExternalAttention, two Dense),
    then given random weights and compared, on random inputs, with the pre-norm block
    ``y = x + Attn(LN(x))``, ``y + MLP(LN(y))``, ``MLP = Dense(mlp_dim, gelu), Dense(embed_dim)``.
    """
    import keras

    rng = fresh_rng()
    cases = [(16, 32, 64, 2, 2), (9, 16, 24, 4, 2)]
    for n, d, mlp, heads, c in cases:
        what = (f"x = keras.Input(({n}, {d})), embed_dim={d}, mlp_dim={mlp}, "
                f"num_heads={heads}, dim_coefficient={c}")
        inputs = keras.Input((n, d))
        try:
            outputs = call(fn, inputs, d, mlp, heads, c, what=what)
        except Mistake as error:
            text = str(error)
            if "broadcast" not in text.lower() or f"{mlp}" not in text:
                raise
            raise Mistake(text.split("\nLikely mistake:")[0] + "\nLikely mistake: a residual "
                          f"adds a branch of mlp_dim={mlp} channels to the stream of "
                          f"embed_dim={d}: the MLP's first Dense has mlp_dim units, its second "
                          "embed_dim (the sizes swapped?).") from None
        model = _model(inputs, outputs, what)
        if tuple(outputs.shape) != (None, n, d):
            last = outputs.shape[-1] if len(outputs.shape) else None
            raise Mistake(f"Called with {what}, expected an output of shape (None, {n}, {d}); "
                          f"got {tuple(outputs.shape)}. The block must keep the shape of x.\n"
                          "Likely mistake: " + (
                              f"the MLP's last Dense has mlp_dim={mlp} units; the MLP goes to "
                              f"mlp_dim, then back to embed_dim={d}." if last == mlp else
                              "a residual concatenated (layers.Concatenate) instead of added: "
                              "a residual connection adds the branch's output to its input "
                              "(layers.Add or +)." if last in (2 * d, 3 * d) else
                              "an axis lost or added (a reduction, a reshape, or a Dense of the "
                              "wrong width at the end): the block returns (B, N, embed_dim)."))
        parts = _structure(model, d, mlp, heads, c, what)
        _check_block_numbers(model, parts, n, d, heads, c, rng, what)
    return (f"Parts, shapes, residual connections and outputs are right on {len(cases)} block "
            "sizes.")


# ----------------------------------------------------------------------------------------------
# 06 the parameter count, by formula


@functools.lru_cache(maxsize=8)
def _model_parts(config) -> tuple[int, dict[str, int], int]:
    """``build_eanet(config)``'s parameter count, the sizes of the parts learners forget, and
    one block's count (cached: a config is frozen, and the checker's fixed configs come back at every call)."""
    from eanet_course.layers import TransformerBlock
    from eanet_course.models import build_eanet

    model = build_eanet(config)
    weights = {w.path: int(np.prod(w.shape)) for w in model.weights}
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    k = len(blocks)
    d, c = config.embed_dim, config.dim_coefficient
    s_default = d // c
    parts = {
        "the position embedding (one learned vector of embed_dim values per patch) is not "
        "counted": model.get_layer("patch_embedding").position_embedding.count_params(),
        "the biases are not counted (a Dense layer has one bias per output unit)":
            sum(n for path, n in weights.items() if path.endswith("/bias")),
        "the LayerNormalizations are not counted (each has a scale and an offset per channel, "
        "two per block)": sum(n for path, n in weights.items()
                              if path.endswith(("/gamma", "/beta"))),
        "each LayerNormalization is counted with one vector of embed_dim; it has two (a scale "
        "and an offset)": k * 2 * d,
        "the classifier is not counted": model.get_layer("classifier").count_params(),
        f"one block counted instead of num_blocks={k}": (k - 1) * blocks[0].count_params(),
        "memory_units ignored: S is config.memory_units when it is set (the example's default "
        "only when it is None)": sum(
            (2 * b.attention.head_dim + 1) * (b.attention.memory_units - s_default)
            for b in blocks),
        "the memory is counted per head: all heads share one M_k and one M_v": sum(
            (b.attention.total_heads - 1) * (b.attention.memory_key.count_params()
                                             + b.attention.memory_value.count_params())
            for b in blocks) * -1,
        "the memories' width is embed_dim, not the head width dh = embed_dim // num_heads": sum(
            (b.attention.head_dim - d) * (2 * b.attention.memory_units + 1) for b in blocks),
        "the patch projection's input is P*P, without the channels (P*P*C values per patch)":
            config.patch_size**2 * (config.channels - 1) * d,
        "the MLP is counted with embed_dim hidden units; it has mlp_dim": k * (
            (config.mlp_dim - d) * (2 * d + 1)),
        "the number of patches is (image_size // patch_size), not its square: N = (image_size "
        "// patch_size) ** 2 positions": (config.num_patches - config.image_size
                                          // config.patch_size) * d,
        "to_heads and output_projection are counted as d -> d; they are d -> d*c and d*c -> d":
            k * (c - 1) * (2 * d * d + d),
        "one position too many (a class token, as in ViT?): EANet has no class token, so N = "
        "(image_size // patch_size) ** 2 positions, one per patch": -d,
        "the head width dh is embed_dim // (num_heads * dim_coefficient); it is embed_dim // "
        "num_heads, the memories are (dh, S) and (S, dh)": sum(
            (b.attention.head_dim - d // b.attention.total_heads) * (2 * b.attention.memory_units
                                                                     + 1) for b in blocks),
        "the number of patches is image_size // patch_size ** 2 (the power binds first): N = "
        "(image_size // patch_size) ** 2 positions": (
            config.num_patches - config.image_size // config.patch_size ** 2) * d,
    }
    # Any one weight, or any one layer, left out: in one place, or in every block.
    for path, size in weights.items():
        layer_path, name = path.rsplit("/", 1)
        where = layer_path.split("/", 1)
        if where[0].startswith("block_"):
            if where[0] != "block_0":
                continue
            parts.setdefault(f"the {name} of {where[1]} is not counted (in each of the {k} "
                             "blocks)", k * size)
            parts.setdefault(f"{where[1]} ({name} and the rest of that layer) is not counted "
                             f"(in each of the {k} blocks)", k * sum(
                                 n for p, n in weights.items() if p.startswith(layer_path + "/")))
        else:
            possessive = f"{layer_path}'s" if "/" not in layer_path else f"the {layer_path}'s"
            parts.setdefault(f"{possessive} {name} is not counted ({size:,} values)", size)
    return model.count_params(), parts, blocks[0].count_params()


@contextmanager
def _no_layers() -> Iterator[None]:
    """While active, making any Keras layer or weight is refused: the count is by formula."""
    import keras

    originals = (keras.layers.Layer.__init__, keras.Variable.__init__)

    def refuse(self, *args, **kwargs):
        raise Refused("your function builds Keras layers.\nLikely mistake: a model (or a "
                      "layer) built to count its weights; the exercise asks for the count by "
                      "formula, from the config's numbers alone.")

    keras.layers.Layer.__init__ = refuse
    keras.Variable.__init__ = refuse
    try:
        yield
    finally:
        keras.layers.Layer.__init__, keras.Variable.__init__ = originals


def _as_count(got, what: str) -> tuple[int, str]:
    """The learner's count as a plain int (ints and their subclasses, NumPy or tensor scalars,
    whole floats), and a note; the conversion runs under the time limit."""
    return convert(_plain_count, got, what, "count")


def _plain_count(got) -> tuple[int, str]:
    if hasattr(got, "numpy") and callable(got.numpy):
        got = got.numpy()
    if isinstance(got, np.ndarray) and got.shape == ():
        got = got.item()
    if isinstance(got, np.generic):
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        likely = ("a list or array where one number belongs: add the parts up (sum(...))."
                  if isinstance(got, (list, tuple, np.ndarray)) else
                  "the return is missing." if got is None else
                  "a value that is not a number.")
        raise Mistake(f"expected a number but your function returned "
                      f"{type(got).__name__}: {got!r:.80}\nLikely mistake: {likely}")
    if isinstance(got, float):
        value = float.__float__(got)  # a float subclass reads as the float it holds
        if not math.isfinite(value) or value != round(value):
            raise Mistake(f"your count is {value!r}, not a whole number.\nLikely mistake: a "
                          "division somewhere keeps a fraction (true division / instead of "
                          "floor division //?).")
        return int(value), " (It came back as a float; // keeps counts as ints.)"
    return int.__int__(got), ""  # an int subclass reads as the int it holds


@checker("count_parameters", limit_factor=1.5)
def check_parameter_count(fn: Callable) -> str:
    """Check ``fn(config: EANetConfig) -> int`` against ``build_eanet(config).count_params()``,
    without the learner's function building any Keras layer."""
    from eanet_course.config import PROFILES

    ci, laptop, paper = PROFILES["ci"], PROFILES["laptop"], PROFILES["paper"]
    rng = fresh_rng()
    heads, c = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    configs = [ci, ci.replace(memory_units=8, num_blocks=3),
               laptop.replace(num_blocks=2, patch_size=8, embed_dim=48, num_heads=3),
               paper.replace(mlp_dim=96, num_classes=37, dim_coefficient=2),
               ci.replace(embed_dim=heads * c * 2 * int(rng.integers(1, 4)), num_heads=heads,
                          dim_coefficient=c, mlp_dim=int(rng.integers(5, 40)),
                          num_classes=int(rng.integers(2, 50)),
                          num_blocks=int(rng.integers(1, 3)),
                          memory_units=[None, int(rng.integers(2, 9))][int(rng.integers(2))])]
    note = ""
    seen: list[tuple[int, int]] = []  # (the learner's count, the right one) per config so far
    failure = None
    for config in configs:
        what = ("EANetConfig(" + ", ".join(f"{f}={getattr(config, f)}" for f in (
            "image_size", "channels", "patch_size", "num_classes", "embed_dim", "mlp_dim",
            "num_heads", "dim_coefficient", "memory_units", "num_blocks")) + ")")
        try:
            with _no_layers():
                got = call(fn, config.replace(), what=what)  # the learner's own copy
            got, note = _as_count(got, what)
        except Mistake as error:
            if failure is not None:  # the first wrong count is the feedback
                break
            text = str(error)
            raise Mistake(text if text.startswith("Called") else f"Called with {what}, {text}") \
                from None
        expected, parts, per_block = _model_parts(config)
        same = [mine for mine, right in seen if mine == got and right != expected]
        seen.append((got, expected))
        if got == expected:
            continue
        named = [part for part, size in parts.items() if size and expected - got == size]
        if failure is None:
            failure = (config, what, got, expected, per_block, named)
            if same:
                break
        else:  # a later config narrows down which of several parts the first one names
            failure = (*failure[:5], [n for n in failure[5] if n in named] or failure[5])
        if len(failure[5]) <= 1:
            break
    if failure is None:
        return (f"Exact on {len(configs)} configs, memory_units, odd widths and a fresh random "
                f"one included.{note}")
    config, what, got, expected, per_block, named = failure
    lines = [f"Called with {what}:", f"  expected {expected:,} parameters "
             "(build_eanet(config).count_params())", f"  got      {got:,}"]
    repeated = [mine for mine, right in seen if mine == got and right != expected]
    if repeated:
        lines.append("Likely mistake: the same count for every config (a number computed once, "
                     "for the notebook's config, and written in): compute it from the config's "
                     "fields (embed_dim, num_blocks, patch_size...).")
    elif named:
        lines.append(f"Likely mistake: {named[0]}.")
    else:
        lines.append("Likely mistake: " + _where_the_count_differs(fn, config, got, expected,
                                                                     per_block))
    raise Mistake("\n".join(lines))


def _where_the_count_differs(fn: Callable, config, got: int, expected: int,
                             per_block: int) -> str:
    """No single part matches: one block more tells whether the difference is in the blocks
    (and how much per block) or outside them."""
    more = (f"you count {abs(expected - got):,} {'too few' if got < expected else 'too many'}, "
            "which is no single part of the model")
    try:
        with _no_layers():
            one_more = call(fn, config.replace(num_blocks=config.num_blocks + 1),
                            what="the same config with one block more")
        yours = _as_count(one_more, "the same config with one block more")[0] - got
    except Mistake:
        yours = None
    if yours == 0:
        return (f"{more}, and your count does not change with num_blocks: a fixed number, or "
                "the blocks left out; count num_blocks blocks of the config's sizes.")
    if yours is not None and yours != per_block:
        return (f"{more}, inside the blocks: one block more adds {yours:,} to your count, "
                f"{per_block:,} to the model's. Count one block's parts (its two "
                "LayerNormalizations, the attention's four Dense layers, the MLP's two) and "
                "compare each with model.summary() on a small config.")
    if yours == per_block:
        return (f"{more}, outside the blocks (each block is right: {per_block:,}): in the patch "
                "embedding (projection and positions) or in the classifier.")
    return (f"{more}: count the patch embedding, one block, and the classifier separately and "
            "compare each with model.summary() on a small config.")


# ----------------------------------------------------------------------------------------------
# 05 the whole external-attention layer


LAYER_SIZES = [dict(embed_dim=24, num_heads=3, dim_coefficient=2),  # dh 8, d*c 48, S 12
               dict(embed_dim=20, num_heads=2, dim_coefficient=4, memory_units=7)]  # dh 10


def _wrong_sizes(shapes: list[tuple], wanted: list[tuple], sizes: dict) -> str | None:
    """The part whose weight shapes differ from the package layer's, named by its role, or
    None. ``wanted`` is in the package's order: to_heads, memory_key, memory_value,
    output_projection, a kernel and a bias each."""
    roles = ["to_heads", "memory_key", "memory_value", "output_projection"]
    extra = list(shapes)
    lost: dict[str, list[str]] = {}
    for shape, (role, kind) in zip(wanted, [(r, k) for r in roles for k in ("kernel", "bias")]):
        if shape in extra:
            extra.remove(shape)
        else:
            lost.setdefault(role, []).append(kind)
    missing = [role if len(kinds) == 2 else f"{role}'s {kinds[0]}" for role, kinds in lost.items()]
    d, c = sizes["embed_dim"], sizes["dim_coefficient"]
    heads, dh, s = sizes["num_heads"], sizes["embed_dim"] // sizes["num_heads"], wanted[2][1]
    if missing and not extra:
        return (f"{' and '.join(missing)} missing: the layer has four Dense layers with "
                "biases, to_heads (d -> d*c), memory_key (dh -> S), memory_value (S -> dh) and "
                "output_projection (d*c -> d).")
    memory = [k for k in extra if len(k) == 2 and k[::-1] in extra]
    if "memory_key" in lost and memory:
        width, units = memory[0] if memory[0][1] != dh else memory[0][::-1]
        if width != dh:
            total = (" (that is embed_dim // (num_heads * dim_coefficient), the width of all the "
                     "heads together counted as one)" if width == d // (heads * c) else
                     " (the heads are not split?)" if width == d * c else "")
            return (f"the memories read {width} channels{total}; the head width is dh = "
                    f"embed_dim // num_heads = {dh}: each head has dh channels.")
        if units != s:
            ignored = sizes.get("memory_units") is not None and units == d // c
            return ((f"memory_units={sizes['memory_units']} ignored: " if ignored else "")
                    + f"the memories have {units} units; S = memory_units when it is set, "
                    f"else embed_dim // dim_coefficient ({s} here).")
    return None


def _copy_weights(mine, package, what: str, sizes: dict) -> None:
    """The package layer's weights into the learner's, matched by shape (any creation order)."""
    theirs = package.get_weights()
    slots = mine.weights
    shapes = [tuple(w.shape) for w in slots]
    wanted = [w.shape for w in theirs]
    if sorted(shapes) != sorted(wanted):
        transposed = [s for s in shapes if s not in wanted and s[::-1] in wanted]
        hint = ("\nLikely mistake: " + (_wrong_sizes(shapes, [tuple(w) for w in wanted], sizes)
                                        or "a Dense layer of the wrong size; compare each "
                                        "with the contract's four (inputs -> units)."))
        if transposed:
            hint = (f"\nLikely mistake: a weight of shape {transposed[0]} is transposed: a Dense "
                    "layer's kernel is (inputs, outputs).")
        elif len(shapes) == len(wanted) // 2:
            hint = "\nLikely mistake: your layer has no biases; each of the four Dense has one."
        raise Mistake(f"Called with {what}, your layer's weights have shapes {shapes}; the "
                      f"package's ExternalAttention has {[tuple(s) for s in wanted]} (the "
                      "kernel and bias of to_heads, memory_key, memory_value, "
                      f"output_projection).{hint}")
    if len(set(shapes)) == len(shapes):
        by_shape = {w.shape: w for w in theirs}
        values = [by_shape[s] for s in shapes]
    else:  # two weights of the same shape: the order of creation decides
        values = theirs
    for slot, value in zip(slots, values):
        slot.assign(value)


def _layer_variants(x, weights, heads) -> dict[str, np.ndarray]:
    return {
        "the softmax runs over the memory axis S alone (a plain softmax): the double "
        "normalization is a softmax over the patches N, then l1 over S.":
            _external(x, weights, heads, normalization="softmax over S"),
        "the l1 step over the memory axis S is missing.":
            _external(x, weights, heads, normalization="no l1"),
        "heads split the wrong way: each head must own a block of consecutive channels.":
            _external(x, weights, heads, split="interleaved"),
        "heads merged without moving the heads axis back after the patches: patches and heads "
        "get mixed.": _external(x, weights, heads, merge="reshape"),
        "heads split with a reshape straight to (B, H, N, dh), without the transpose: the "
        "patches and heads get mixed. Reshape to (B, N, H, dh), then transpose to (B, H, N, dh)"
        " (and back the same way to merge).": _external(x, weights, heads, split="reshape",
                                                         merge="reshape"),
        "heads split with a reshape straight to (B, H, N, dh), without the transpose: the "
        "patches and heads get mixed. Reshape to (B, N, H, dh), then transpose to "
        "(B, H, N, dh).": _external(x, weights, heads, split="reshape"),
        "the logits are divided by sqrt(dh), as in self-attention's scaled dot product; "
        "external attention's double normalization takes the memory's logits unscaled.":
            _external(x, weights, heads, normalization="scaled"),
        "the softmax runs over the heads axis (axis 1); it runs over the patch axis N (axis -2 "
        "of (B, H, N, S)).": _external(x, weights, heads, normalization="over heads"),
        "the two normalizations are on each other's axis (in the other order): first a softmax "
        "over the patches N (axis -2), then the l1 step over the memory units S (axis -1).":
            _external(x, weights, heads, normalization="axes swapped"),
    }


@checker("external_attention_layer", limit_factor=3.0)
def check_external_attention_layer(cls: type) -> str:
    """Check a Keras layer class ``cls(embed_dim, num_heads, dim_coefficient,
    memory_units=None)`` against :class:`eanet_course.layers.ExternalAttention`.

    The layer must work on a symbolic ``keras.Input`` (batch size unknown). The package layer's
    random weights are copied into the learner's (matched by shape); both must give the same
    ``(B, N, embed_dim)`` output, twice the same (nothing random), also with each memory unit's
    logits raised by hundreds (an unstable softmax overflows) and with ``training=True``;
    ``get_config`` must rebuild the layer, and a model holding it must save to ``.keras`` and
    load back with ``safe_mode=True``.
    """
    import keras

    from eanet_course.layers import ExternalAttention

    rng = fresh_rng()
    for sizes in LAYER_SIZES:
        what = f"{cls.__name__}(" + ", ".join(f"{k}={v}" for k, v in sizes.items()) + ")"
        layer = call(lambda: cls(**sizes), what=what)
        if not isinstance(layer, keras.layers.Layer):
            raise Mistake(f"{what} made a {type(layer).__name__}, not a keras.layers.Layer.\n"
                          "Likely mistake: the class does not subclass keras.layers.Layer.")
        x = rng.normal(size=(2, 9, sizes["embed_dim"])).astype("float32")
        _outputs(lambda: layer(x), f"{what} on x of shape {x.shape}")
        symbolic = keras.Input((9, sizes["embed_dim"]))
        try:
            call(lambda: layer(symbolic), what=f"{what} on keras.Input((9, "
                                                f"{sizes['embed_dim']})), batch size unknown")
        except Stub:
            raise Mistake(f"{what} works on arrays but raises NotImplementedError on "
                          f"keras.Input((9, {sizes['embed_dim']})), a symbolic tensor.\nLikely "
                          "mistake: NumPy functions (np.transpose, np.reshape...) in call: "
                          "they need actual numbers, and a model passes symbolic tensors; use "
                          "keras.ops (ops.transpose, ops.reshape).") from None
        except Mistake as error:
            if "numpy" in str(error).lower() or "__array__" in str(error):
                raise Mistake(f"{str(error).splitlines()[0]}\nLikely mistake: NumPy functions "
                              "or .numpy() in call: a model passes symbolic tensors; use "
                              "keras.ops (ops.transpose, ops.reshape).") from None
            raise Mistake(f"{str(error).splitlines()[0]}\nYour layer works on arrays but not "
                          "in a model, where the batch size is None until data flows.\nLikely "
                          "mistake: a Python number read from the input's batch axis "
                          "(x.shape[0], or a loop over it): reshape with -1 (or ops.shape(x)) "
                          "instead.") from None
        package = ExternalAttention(**sizes)
        package.build(x.shape)
        package.set_weights([rng.normal(scale=0.4, size=w.shape).astype("float32")
                             for w in package.get_weights()])
        _copy_weights(layer, package, what, sizes)
        active = [sub for sub in layer._flatten_layers(include_self=False)
                  if isinstance(sub, keras.layers.Dense)
                  and sub.activation not in (None, keras.activations.linear)]
        if active:
            raise Mistake(f"In {what}, the Dense layer {active[0].name!r} has the activation "
                          f"{getattr(active[0].activation, '__name__', active[0].activation)}."
                          "\nLikely mistake: an activation on a Dense layer; the layer's four "
                          "Dense layers are linear (the default, activation=None).")
        got = _outputs(lambda: layer(x), what)
        if not close(_outputs(lambda: layer(x), what), got, 1e-6, 1e-7):
            raise Mistake(f"{what} gives other outputs when called twice on the same x in "
                          "inference.\nLikely mistake: something random in call (dropout with "
                          "training=True fixed, noise, a random draw); the layer is "
                          "deterministic, without dropout.")
        weights = [w.astype(np.float64) for w in package.get_weights()]
        heads = package.total_heads
        expected = _external(x.astype(np.float64), weights, heads)
        compare(got, expected, "output", f"{what} on random x {x.shape} with the package "
                "layer's weights", _layer_variants(x.astype(np.float64), weights, heads),
                rtol=1e-3, atol=1e-4, axes=("B", "N", "d"))
        # Each memory unit's logits raised by hundreds (memory_key's bias): the softmax over N
        # does not change, but an exponential without the column's maximum overflows.
        shifted = [w.copy() for w in package.get_weights()]
        shifted[3] = shifted[3] + rng.uniform(200.0, 400.0, size=shifted[3].shape).astype(
            "float32")
        package.set_weights(shifted)
        _copy_weights(layer, package, what, sizes)
        compare(_outputs(lambda: layer(x), what), expected, "output", f"{what} with each memory "
                "unit's logits raised by 200 to 400 (memory_key's bias)", rtol=1e-3, atol=1e-3,
                axes=("B", "N", "d"), not_finite="the softmax overflows for large logits: exp "
                "of logits in the hundreds is inf in float32 unless each column's maximum over "
                "N is subtracted first (ops.softmax does it for you).")
        package.set_weights([w.astype("float32") for w in weights])
        _copy_weights(layer, package, what, sizes)
        training = _outputs(lambda: layer(x, training=True), f"{what}, training=True")
        if not close(training, expected, 1e-3, 1e-4):
            raise Mistake(f"{what} is right in inference but gives other outputs with "
                          f"training=True (starting {preview(training)} instead of "
                          f"{preview(expected)}).\nLikely mistake: dropout or another "
                          "training-only step; the exercise's layer has none (no dropout).")
        # One .keras round trip (the slow part) is enough: the last size, memory_units set.
        _check_serialization(cls, layer, x, got, what, save=sizes is LAYER_SIZES[-1])
    return (f"Same outputs as ExternalAttention on {len(LAYER_SIZES)} sizes with its weights; "
            "get_config rebuilds it and a .keras file reloads with safe_mode=True.")


def _check_serialization(cls, layer, x, got, what: str, save: bool = True) -> None:
    import keras

    config = call(layer.get_config, what=f"{what}.get_config()")
    missing = [k for k in ("embed_dim", "num_heads", "dim_coefficient") if k not in config]
    if missing:
        raise Mistake(f"{what}.get_config() lacks {missing}.\nLikely mistake: get_config "
                      "returns only super().get_config() (or misses arguments): it must return "
                      "every constructor argument, merged with super().get_config(), so that "
                      "from_config can rebuild the layer.")
    try:
        clone = call(lambda: cls.from_config(config), what=f"{cls.__name__}.from_config(config)")
    except Mistake as error:
        if "unexpected keyword argument" not in str(error):
            raise
        raise Mistake(f"{error}\nLikely mistake: the constructor does not accept **kwargs: "
                      "from_config also passes the base layer's arguments (name, trainable, "
                      "dtype...), which it must hand to the base class.") from None
    if not clone.weights:  # built by its first call
        try:
            call(lambda: clone(x), what=f"{cls.__name__}.from_config(config) on x")
        except Mistake:
            pass
    if [tuple(w.shape) for w in clone.weights] not in ([], [tuple(w.shape) for w in layer.weights]):
        raise Mistake(f"{cls.__name__}.from_config({what}.get_config()) made a different "
                      "layer.\nLikely mistake: get_config returns other values than the "
                      "constructor received (a derived size instead of the argument?).")
    if not keras.saving.get_registered_object(keras.saving.get_registered_name(cls)):
        raise Mistake(f"{cls.__name__} is not registered.\nLikely mistake: the decorator "
                      "@keras.saving.register_keras_serializable(...) is missing, so a saved "
                      "model cannot find the class when it loads.")
    if not save:
        return
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer.keras")
        call(lambda: model.save(path), what=f"a model holding {what}, saved to .keras")
        loaded = call(lambda: keras.saving.load_model(path, safe_mode=True),
                      what=f"a model holding {what}, loaded from .keras with safe_mode=True")
    again = _outputs(lambda: loaded(x), f"the reloaded {what}")
    if not close(again, got, 1e-5, 1e-6):
        raise Mistake(f"{what} saved and loaded back gives other outputs (starting "
                      f"{preview(again)} instead of {preview(got)}).\nLikely mistake: weights "
                      "created in call (not in __init__ or build), or an argument that "
                      "get_config does not return.")
