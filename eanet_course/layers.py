"""Keras 3 layers of EANet: patches, external attention, the self-attention baseline, blocks.

Shapes use the paper's letters: ``B`` batch, ``N`` patches, ``d`` width (``embed_dim``),
``S`` memory units, ``H`` heads, ``P`` patch size. Every layer is serializable
(``get_config``, registered under the package ``eanet_course``) and checks its input in
``build``, so a wrong shape fails there with a message that names the fix.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from eanet_course.config import NORMALIZATIONS
from eanet_course.validation import divisor_hint, fraction, positive_int

__all__ = [
    "PatchExtract",
    "PatchEmbedding",
    "double_normalization",
    "layer_normalization",
    "LayerNormalization",
    "ExternalAttention",
    "SelfAttention",
    "TransformerBlock",
]

PACKAGE = "eanet_course"


def _expect_rank(layer: layers.Layer, input_shape, rank: int, layout: str) -> None:
    if len(input_shape) != rank:
        raise ValueError(
            f"{type(layer).__name__} expects inputs of rank {rank} {layout}, "
            f"got shape {tuple(input_shape)}. Reshape your input to {layout}."
        )


def _check_heads(owner: str, embed_dim: int, num_heads: int) -> None:
    if embed_dim % num_heads:
        raise ValueError(
            f"{owner}: embed_dim={embed_dim} is not divisible by num_heads={num_heads}; "
            f"pick num_heads among {divisor_hint(embed_dim)} or change embed_dim."
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchExtract(layers.Layer):
    """Cut images into non-overlapping ``P x P`` patches and flatten each one.

    Input ``(B, H, W, C)``; output ``(B, N, P*P*C)`` with ``N = (H/P) * (W/P)``, patches row by
    row, pixels row by row inside a patch, channels together (``keras.ops.image.extract_patches``).
    The input is channels-last whatever ``keras.config.image_data_format()`` says, as the
    course's data and models are.
    """

    def __init__(self, patch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = positive_int("PatchExtract", "patch_size", patch_size)

    def build(self, input_shape):
        _expect_rank(self, input_shape, 4, "(batch, height, width, channels)")
        for axis, size in (("height", input_shape[1]), ("width", input_shape[2])):
            if size is not None and size % self.patch_size:
                raise ValueError(
                    f"PatchExtract: image {axis} {size} is not divisible by "
                    f"patch_size={self.patch_size}; pick a patch_size among "
                    f"{divisor_hint(size)} or resize the images."
                )
        self.built = True

    def call(self, images):
        batch, height, width, channels = ops.shape(images)
        p = self.patch_size
        patches = ops.image.extract_patches(images, p, padding="valid",
                                            data_format="channels_last")
        # The sizes come from the input, not from ``patches``: an empty batch (B = 0) comes
        # back from extract_patches unchanged, (0, H, W, C), and still reshapes to (0, N, P*P*C).
        return ops.reshape(patches, (batch, (height // p) * (width // p), p * p * channels))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        n = None if h is None or w is None else (h // self.patch_size) * (w // self.patch_size)
        return (b, n, self.patch_size * self.patch_size * c)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchEmbedding(layers.Layer):
    """Project each flattened patch to ``embed_dim`` and add a learned position embedding.

    Input ``(B, N, P*P*C)``; output ``(B, N, embed_dim)``. ``position_embedding.embeddings`` is
    the ``(N, embed_dim)`` table of learned positions.
    """

    def __init__(self, num_patches: int, embed_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = positive_int("PatchEmbedding", "num_patches", num_patches)
        self.embed_dim = positive_int("PatchEmbedding", "embed_dim", embed_dim)
        policy = self.dtype_policy
        self.projection = layers.Dense(self.embed_dim, name="projection", dtype=policy)
        self.position_embedding = layers.Embedding(self.num_patches, self.embed_dim,
                                                   name="position", dtype=policy)

    def build(self, input_shape):
        _expect_rank(self, input_shape, 3, "(batch, num_patches, patch_values)")
        if input_shape[1] is not None and input_shape[1] != self.num_patches:
            raise ValueError(
                f"PatchEmbedding was made for num_patches={self.num_patches} but got "
                f"{input_shape[1]} patches; use num_patches=(image_size // patch_size) ** 2."
            )
        self.projection.build(input_shape)
        self.position_embedding.build((self.num_patches,))
        self.built = True

    def call(self, patches):
        positions = ops.arange(self.num_patches)
        return self.projection(patches) + self.position_embedding(positions)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.embed_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "num_patches": self.num_patches,
            "embed_dim": self.embed_dim,
        }


def _optional_int(owner: str, name: str, value) -> int | None:
    """``None``, or ``value`` checked by :func:`positive_int` (a field that only one kind of
    attention uses)."""
    return None if value is None else positive_int(owner, name, value)


def _check_normalization(owner: str, normalization) -> str:
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"{owner}: normalization={normalization!r} is unknown; use \"double\" (EANet's "
            "softmax over N then l1 over S) or \"softmax\" (a plain softmax over S, the ablation)."
        )
    return normalization


def _in_float32(function, x):
    """``function(x)`` computed in ``float32`` when ``x`` is ``float16`` or ``bfloat16``, cast back.

    Half-precision sums over 64 or 256 numbers lose digits, and in ``float16`` a patch whose
    weights over S all underflow (``exp(-18)`` already does) gives ``0 / (0 + 1e-9)`` with the
    ``1e-9`` rounded to 0, a NaN: the normalizations of the course run in ``float32`` under a
    mixed-precision policy, as Keras's own ``LayerNormalization`` does.
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in ("float16", "bfloat16"):
        return ops.cast(function(ops.cast(x, "float32")), dtype)
    return function(x)


def double_normalization(logits, patch_axis: int = -2, memory_axis: int = -1,
                         dropout: float = 0.0, seed=None):
    """EANet's double normalization of ``(..., N, S)`` logits, in ``keras.ops``.

    Softmax over the patch axis ``N`` (``patch_axis``, by default -2), then l1 over the memory
    axis ``S`` (``memory_axis``, by default the last), so that each patch's weights over the
    memory units sum to 1. Same maths as :func:`eanet_course.reference.double_normalization`.
    ``ExternalAttention`` passes ``(B, H, S, N)`` logits with ``patch_axis=-1`` and
    ``memory_axis=-2``: with N last, the softmax is one fused kernel.

    ``dropout`` > 0 also applies dropout to the result, as ``keras.layers.Dropout(dropout)`` does
    in training: a weight is kept where a uniform number drawn from ``seed`` (a
    ``keras.random.SeedGenerator``) is at least ``dropout``, then scaled by ``1 / (1 - dropout)``.
    The same seed draws the same mask as the ``Dropout`` layer (a test checks).

    How it runs: with ``P`` the softmax over N, ``r`` the inverse of its sum over S and ``M``
    the dropout mask times the scale (1 without dropout), the result is ``A = P * r * M``. The
    sums are inverted once and multiplied in, and the gradient is written out:
    ``t = dA * A - P * r * sum_S(dA * A)`` and ``dlogits = t - P * sum_N(t)``. That is five
    passes over the map instead of about ten that automatic differentiation of the steps (and of
    a separate ``Dropout``) makes; a map holds 8.4 million numbers per block in the paper's
    architecture, so each pass costs memory traffic, not arithmetic. Tests compare this gradient
    with the automatic one.

    ``float16`` and ``bfloat16`` logits are normalized in ``float32`` and the result cast back.
    """

    def normalize(logits):
        @ops.custom_gradient
        def forward(logits):
            over_patches = ops.softmax(logits, axis=patch_axis)
            inverse_total = 1.0 / (ops.sum(over_patches, axis=memory_axis, keepdims=True) + 1e-9)
            if dropout:
                keep = keras.random.uniform(ops.shape(logits), seed=seed) >= dropout
                scores = ops.where(keep, over_patches * (inverse_total * (1.0 / (1.0 - dropout))),
                                   0.0)
            else:
                scores = over_patches * inverse_total

            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                weighted = upstream * scores
                t = weighted - over_patches * (ops.sum(weighted, axis=memory_axis, keepdims=True)
                                               * inverse_total)
                return t - over_patches * ops.sum(t, axis=patch_axis, keepdims=True)

            return scores, grad

        return forward(logits)

    return _in_float32(normalize, ops.convert_to_tensor(logits))


def layer_normalization(x, gamma, beta, epsilon: float):
    """``keras.layers.LayerNormalization`` over the last axis, with its gradient written out.

    ``x`` is ``(..., d)``, ``gamma`` and ``beta`` are ``(d,)``: ``y = x_hat * gamma + beta`` with
    ``x_hat = (x - mean) / sqrt(var + epsilon)`` over the last axis. Backward, with ``g = dy *
    gamma``: ``dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + epsilon)``, where the
    two means over ``d`` are matrix-vector products (``dy @ gamma``, ``(dy * x_hat) @ gamma``),
    ``dgamma = sum(dy * x_hat)`` and ``dbeta = sum(dy)`` over every other axis. Automatic
    differentiation of the same steps makes about twice as many passes over ``x``. Computed in
    ``float32`` under a mixed-precision policy, as Keras does.
    """

    def normalize(x):
        @ops.custom_gradient
        def forward(x, gamma, beta):
            centered = x - ops.mean(x, axis=-1, keepdims=True)
            inverse_std = ops.rsqrt(ops.mean(ops.square(centered), axis=-1, keepdims=True)
                                    + epsilon)
            x_hat = centered * inverse_std

            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                width = ops.shape(x)[-1]
                column = ops.reshape(gamma, (-1, 1)) * (1.0 / ops.cast(width, x.dtype))
                scaled = upstream * x_hat
                mean_g = ops.matmul(upstream, column)  # mean(g) over the last axis, (..., 1)
                mean_gx = ops.matmul(scaled, column)  # mean(g * x_hat), (..., 1)
                dx = (upstream * gamma - (mean_g + x_hat * mean_gx)) * inverse_std
                return (dx, ops.sum(ops.reshape(scaled, (-1, width)), axis=0),
                        ops.sum(ops.reshape(upstream, (-1, width)), axis=0))

            return x_hat * gamma + beta, grad

        return forward(x, ops.cast(gamma, x.dtype), ops.cast(beta, x.dtype))

    return _in_float32(normalize, ops.convert_to_tensor(x))


@keras.saving.register_keras_serializable(package=PACKAGE)
class LayerNormalization(layers.LayerNormalization):
    """``keras.layers.LayerNormalization`` over the last axis, computed by
    :func:`layer_normalization`: same weights (``gamma``, ``beta``), same outputs, a cheaper
    gradient. Input ``(..., d)``, output the same shape.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)
        if self.axis not in (-1, [-1]) or not (self.center and self.scale) or self.rms_scaling:
            raise ValueError(
                "eanet_course.layers.LayerNormalization normalizes over the last axis with a "
                "scale and a centre; use keras.layers.LayerNormalization for other settings."
            )

    def call(self, inputs):
        return ops.cast(layer_normalization(inputs, self.gamma, self.beta, self.epsilon),
                        self.compute_dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExternalAttention(layers.Layer):
    """Multi-head external attention with the double normalization, as in the Keras example.

    Every patch attends to ``S`` *memory units*: rows of two small learned matrices shared by
    the whole data set, the key memory ``M_k`` and the value memory ``M_v``. For one head with
    features ``F`` of shape ``(N, dh)``::

        A = DoubleNorm(F M_k^T)     # (N, S): softmax over patches N, then l1 over memory S
        F_out = A M_v               # (N, dh)

    The multi-head form widens ``d`` to ``d * dim_coefficient`` channels and cuts them into
    ``H = num_heads * dim_coefficient`` heads of ``dh = d / num_heads`` channels; all heads share
    ``M_k`` and ``M_v``. A final ``Dense`` maps back to ``d``. Cost: ``O(d * S * N)``, linear in N.

    How patches talk: the softmax over N normalizes each memory unit's column over all patches
    of the image, so a patch's output depends on the other patches only through those per-unit
    sums. With ``normalization="softmax"`` (a plain softmax over S, the ablation) that path is
    gone: every patch is processed alone, and the layer is a per-patch MLP.
    The biases of ``to_heads`` and ``memory_key`` add the same amount to every patch's logits,
    which the softmax over N cancels: they are kept only to match the example's weights (their
    gradient is exactly 0).

    How it runs: the four ``Dense`` layers hold the weights, and ``call`` multiplies them into
    two matrices first (``W_h M_k^T`` per head, and ``M_v W_o`` per head), so that a step makes
    two products instead of four and never forms the ``(B, N, H, dh)`` heads. The maps are
    kept as ``(B, H, S, N)``, patches last, so that the softmax over N is one fused kernel; only
    ``x`` and the output, four times smaller than a map, are transposed. In training, the
    dropout on ``A`` is drawn inside :func:`double_normalization`, whose gradient is written out.
    Same function, same weights: tests copy the weights into the step-by-step form (with a
    ``Dropout`` layer drawing the same mask) and compare outputs and gradients.

    Args:
        embed_dim: ``d``, the width of inputs and outputs.
        num_heads: heads before the ``dim_coefficient`` widening (the example's ``num_heads``).
        dim_coefficient: widening factor of the example (4).
        memory_units: ``S`` per head; ``None`` means ``embed_dim // dim_coefficient`` (the Keras
            example). The paper's own code uses 64.
        attention_dropout: dropout on the attention map ``A``.
        projection_dropout: dropout on the output.
        normalization: ``"double"`` (EANet: softmax over N, then l1 over S) or ``"softmax"``
            (a plain softmax over S: no path between patches).

    Call arguments:
        x: ``(B, N, d_in)``.
        return_attention_scores: also return ``A`` after the normalization (before
            dropout), shape ``(B, H, N, S)`` as in ``keras.layers.MultiHeadAttention``.

    Returns:
        ``(B, N, embed_dim)``, or ``(output, scores)``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 4,
        dim_coefficient: int = 4,
        memory_units: int | None = None,
        attention_dropout: float = 0.0,
        projection_dropout: float = 0.0,
        normalization: str = "double",
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "ExternalAttention"
        self.normalization = _check_normalization(owner, normalization)
        self.embed_dim = embed_dim = positive_int(owner, "embed_dim", embed_dim)
        self.num_heads = num_heads = positive_int(owner, "num_heads", num_heads)
        self.dim_coefficient = positive_int(owner, "dim_coefficient", dim_coefficient)
        _check_heads(owner, embed_dim, num_heads)
        if memory_units is None and embed_dim < self.dim_coefficient:
            raise ValueError(
                f"{owner}: embed_dim // dim_coefficient = {embed_dim} // {self.dim_coefficient} "
                "= 0 memory units; set memory_units >= 1 or lower dim_coefficient."
            )
        if memory_units is not None:
            memory_units = positive_int(owner, "memory_units (S, at least 1)", memory_units)
        self._memory_units = memory_units
        self.attention_dropout = fraction(owner, "attention_dropout", attention_dropout)
        self.projection_dropout = fraction(owner, "projection_dropout", projection_dropout)

        policy = self.dtype_policy
        self.to_heads = layers.Dense(embed_dim * self.dim_coefficient, name="to_heads",
                                     dtype=policy)
        self.memory_key = layers.Dense(self.memory_units, name="memory_key",
                                       dtype=policy)  # holds M_k^T
        self.memory_value = layers.Dense(self.head_dim, name="memory_value",
                                         dtype=policy)  # holds M_v
        self.output_projection = layers.Dense(embed_dim, name="output_projection", dtype=policy)
        self.attention_dropout_layer = layers.Dropout(self.attention_dropout, dtype=policy)
        self.projection_dropout_layer = layers.Dropout(self.projection_dropout, dtype=policy)

    @property
    def memory_units(self) -> int:
        """``S``, memory units per head."""
        return self._memory_units or self.embed_dim // self.dim_coefficient

    @property
    def total_heads(self) -> int:
        """``H = num_heads * dim_coefficient``, the heads the attention map has."""
        return self.num_heads * self.dim_coefficient

    @property
    def head_dim(self) -> int:
        """``dh = embed_dim * dim_coefficient / H = embed_dim / num_heads``."""
        return self.embed_dim // self.num_heads

    def build(self, input_shape):
        _expect_rank(self, input_shape, 3, "(batch, num_patches, channels)")
        if input_shape[-1] is None:
            raise ValueError("ExternalAttention needs a known channel size (last axis).")
        self.to_heads.build(input_shape)
        head_shape = (input_shape[0], self.total_heads, input_shape[1], self.head_dim)
        self.memory_key.build(head_shape)
        self.memory_value.build((*head_shape[:-1], self.memory_units))
        self.output_projection.build((*input_shape[:-1], self.embed_dim * self.dim_coefficient))
        self.built = True

    def _folded_weights(self):
        """The four ``Dense`` layers as two products: ``x -> logits`` and ``A -> output``.

        ``logits_h = (x W_h + b_h) M_k^T + b_k = x (W_h M_k^T) + (b_h M_k^T + b_k)`` for every
        head ``h``, and ``concat_h(A_h M_v + b_v) W_o + b_o = A (M_v W_o,h stacked) + ...``:
        associativity, so the ``(B, N, H, dh)`` heads are never made. Returns ``(key, key_bias,
        value, value_bias)`` of shapes ``(d_in, H*S)``, ``(H*S,)``, ``(H*S, d)``, ``(d,)``.
        """
        h, dh, s = self.total_heads, self.head_dim, self.memory_units
        w_heads = ops.reshape(self.to_heads.kernel, (-1, h, dh))
        b_heads = ops.reshape(self.to_heads.bias, (h, dh))
        m_key, m_value = self.memory_key.kernel, self.memory_value.kernel  # (dh, S), (S, dh)
        key = ops.reshape(ops.einsum("chd,ds->chs", w_heads, m_key), (-1, h * s))
        key_bias = ops.reshape(ops.matmul(b_heads, m_key) + self.memory_key.bias, (h * s,))
        w_out = ops.reshape(self.output_projection.kernel, (h, dh, self.embed_dim))
        value = ops.reshape(ops.einsum("sd,hde->hse", m_value, w_out), (h * s, self.embed_dim))
        value_bias = (ops.einsum("d,hde->e", self.memory_value.bias, w_out)
                      + self.output_projection.bias)
        return key, key_bias, value, value_bias

    def call(self, x, return_attention_scores: bool = False, training=None):
        n = ops.shape(x)[1]
        h, s = self.total_heads, self.memory_units
        key, key_bias, value, value_bias = self._folded_weights()
        # The maps are (B, H, S, N), patches last, so that EANet's softmax over N is one fused
        # kernel; only x and the output, four times smaller than a map, are transposed.
        logits = ops.reshape(ops.matmul(ops.transpose(key), ops.transpose(x, (0, 2, 1))),
                             (-1, h, s, n))  # F M_k^T, transposed
        if self.normalization == "softmax":  # over S, the memory axis
            scores = ops.softmax(logits + ops.reshape(key_bias, (h, s, 1)), axis=-2)
            attention = self.attention_dropout_layer(scores, training=training)
        else:
            # key_bias adds one number per memory unit to every patch's logits, which the
            # softmax over N cancels exactly: it is left out, and the term below gives it its
            # gradient, exactly 0, so that the optimizer still sees every weight.
            value_bias = value_bias + 0.0 * ops.sum(key_bias)
            attention = scores = double_normalization(logits, patch_axis=-1, memory_axis=-2)
            if training and self.attention_dropout:
                # Dropout on A inside the normalization's written-out gradient, with the mask
                # that the Dropout layer would draw; the scores returned stay before dropout.
                attention = double_normalization(
                    logits, patch_axis=-1, memory_axis=-2, dropout=self.attention_dropout,
                    seed=self.attention_dropout_layer.seed_generator)
        out = ops.matmul(ops.transpose(value), ops.reshape(attention, (-1, h * s, n)))
        out = ops.transpose(out, (0, 2, 1)) + value_bias  # A M_v W_o: (B, N, d)
        out = self.projection_dropout_layer(out, training=training)
        if return_attention_scores:
            return out, ops.transpose(scores, (0, 1, 3, 2))  # (B, H, N, S)
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "dim_coefficient": self.dim_coefficient,
            "memory_units": self._memory_units,
            "attention_dropout": self.attention_dropout,
            "projection_dropout": self.projection_dropout,
            "normalization": self.normalization,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelfAttention(layers.Layer):
    """Multi-head scaled dot-product self-attention: the baseline that EANet replaces.

    ``A = softmax(Q K^T / sqrt(dk))`` over the keys, ``out = A V``; cost ``O(d * N^2)``.
    With ``key_dim=embed_dim`` it has exactly the weights of the Keras example's
    ``MultiHeadAttention(num_heads, key_dim=embed_dim)``.

    Args:
        embed_dim: ``d``, the width of inputs and outputs.
        num_heads: ``H``.
        key_dim: ``dk`` per head; ``None`` means ``embed_dim // num_heads``.
        attention_dropout: dropout on the attention map.
        projection_dropout: dropout on the output.

    Call: ``x`` of shape ``(B, N, d_in)`` gives ``(B, N, embed_dim)``, or with
    ``return_attention_scores=True`` also the scores ``(B, H, N, N)`` (before dropout).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 4,
        key_dim: int | None = None,
        attention_dropout: float = 0.0,
        projection_dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "SelfAttention"
        self.embed_dim = embed_dim = positive_int(owner, "embed_dim", embed_dim)
        self.num_heads = num_heads = positive_int(owner, "num_heads", num_heads)
        if key_dim is None:
            _check_heads(owner, embed_dim, num_heads)
        else:
            key_dim = positive_int(owner, "key_dim", key_dim)
        self._key_dim = key_dim
        self.attention_dropout = fraction(owner, "attention_dropout", attention_dropout)
        self.projection_dropout = fraction(owner, "projection_dropout", projection_dropout)
        width = self.num_heads * self.key_dim
        policy = self.dtype_policy
        self.query = layers.Dense(width, name="query", dtype=policy)
        self.key = layers.Dense(width, name="key", dtype=policy)
        self.value = layers.Dense(width, name="value", dtype=policy)
        self.output_projection = layers.Dense(embed_dim, name="output_projection", dtype=policy)
        self.attention_dropout_layer = layers.Dropout(self.attention_dropout, dtype=policy)
        self.projection_dropout_layer = layers.Dropout(self.projection_dropout, dtype=policy)

    @property
    def key_dim(self) -> int:
        """``dk``, channels per head for queries and keys (and values)."""
        return self._key_dim or self.embed_dim // self.num_heads

    def build(self, input_shape):
        _expect_rank(self, input_shape, 3, "(batch, num_patches, channels)")
        for dense in (self.query, self.key, self.value):
            dense.build(input_shape)
        self.output_projection.build((*input_shape[:-1], self.num_heads * self.key_dim))
        self.built = True

    def _split(self, x, n):
        return ops.transpose(ops.reshape(x, (-1, n, self.num_heads, self.key_dim)), (0, 2, 1, 3))

    def call(self, x, return_attention_scores: bool = False, training=None):
        n = ops.shape(x)[1]
        q, k, v = (self._split(dense(x), n) for dense in (self.query, self.key, self.value))
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # (B, H, N, N)
        scores = ops.softmax(logits / ops.cast(math.sqrt(self.key_dim), logits.dtype), axis=-1)
        out = ops.matmul(self.attention_dropout_layer(scores, training=training), v)
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (-1, n, self.num_heads * self.key_dim))
        out = self.projection_dropout_layer(self.output_projection(out), training=training)
        return (out, scores) if return_attention_scores else out

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "key_dim": self._key_dim,
            "attention_dropout": self.attention_dropout,
            "projection_dropout": self.projection_dropout,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerBlock(layers.Layer):
    """A pre-norm transformer block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``.

    ``attention="external"`` uses :class:`ExternalAttention` (EANet), ``"self"`` uses
    :class:`SelfAttention` (the ViT baseline). The MLP is ``Dense(mlp_dim, gelu)``, dropout,
    ``Dense(embed_dim)``, dropout, as in the Keras example.

    Input ``(B, N, embed_dim)``; output the same shape, or ``(output, scores)`` with
    ``return_attention_scores=True`` (scores ``(B, H, N, S)`` or ``(B, H, N, N)``).
    """

    ATTENTIONS = ("external", "self")

    def __init__(
        self,
        embed_dim: int,
        mlp_dim: int,
        num_heads: int = 4,
        attention: str = "external",
        dim_coefficient: int = 4,
        memory_units: int | None = None,
        key_dim: int | None = None,
        attention_dropout: float = 0.0,
        projection_dropout: float = 0.0,
        mlp_dropout: float = 0.0,
        normalization: str = "double",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention not in self.ATTENTIONS:
            raise ValueError(
                f"TransformerBlock: attention={attention!r} is unknown; use one of "
                f"{self.ATTENTIONS}."
            )
        owner = "TransformerBlock"
        self.embed_dim = positive_int(owner, "embed_dim", embed_dim)
        self.mlp_dim = positive_int(owner, "mlp_dim", mlp_dim)
        self.num_heads = positive_int(owner, "num_heads", num_heads)
        self.attention_type = attention
        self.dim_coefficient = positive_int(owner, "dim_coefficient", dim_coefficient)
        self.memory_units = _optional_int(owner, "memory_units (S, at least 1)", memory_units)
        self.key_dim = _optional_int(owner, "key_dim", key_dim)
        self.attention_dropout = fraction(owner, "attention_dropout", attention_dropout)
        self.projection_dropout = fraction(owner, "projection_dropout", projection_dropout)
        self.mlp_dropout = fraction(owner, "mlp_dropout", mlp_dropout)
        self.normalization = _check_normalization(owner, normalization)

        policy = self.dtype_policy
        self.attention_norm = LayerNormalization(epsilon=1e-5, name="attention_norm", dtype=policy)
        if attention == "external":
            self.attention = ExternalAttention(
                self.embed_dim, self.num_heads, self.dim_coefficient, self.memory_units,
                self.attention_dropout, self.projection_dropout, normalization,
                name="attention", dtype=policy,
            )
        else:
            self.attention = SelfAttention(
                self.embed_dim, self.num_heads, self.key_dim, self.attention_dropout,
                self.projection_dropout, name="attention", dtype=policy,
            )
        self.mlp_norm = LayerNormalization(epsilon=1e-5, name="mlp_norm", dtype=policy)
        self.mlp_hidden = layers.Dense(self.mlp_dim, activation="gelu", name="mlp_hidden",
                                       dtype=policy)
        self.mlp_output = layers.Dense(self.embed_dim, name="mlp_output", dtype=policy)
        self.mlp_dropout_layer = layers.Dropout(self.mlp_dropout, dtype=policy)

    def build(self, input_shape):
        _expect_rank(self, input_shape, 3, "(batch, num_patches, embed_dim)")
        if input_shape[-1] != self.embed_dim:
            raise ValueError(
                f"TransformerBlock(embed_dim={self.embed_dim}) got inputs with "
                f"{input_shape[-1]} channels; the residual needs them equal: put a "
                f"PatchEmbedding(..., embed_dim={self.embed_dim}) (or a Dense) before the block."
            )
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_hidden.build(input_shape)
        self.mlp_output.build((*input_shape[:-1], self.mlp_dim))
        self.built = True

    def call(self, x, return_attention_scores: bool = False, training=None):
        attended, scores = self.attention(
            self.attention_norm(x), return_attention_scores=True, training=training
        )
        x = x + attended
        hidden = self.mlp_dropout_layer(self.mlp_hidden(self.mlp_norm(x)), training=training)
        x = x + self.mlp_dropout_layer(self.mlp_output(hidden), training=training)
        return (x, scores) if return_attention_scores else x

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "mlp_dim": self.mlp_dim,
            "num_heads": self.num_heads,
            "attention": self.attention_type,
            "dim_coefficient": self.dim_coefficient,
            "memory_units": self.memory_units,
            "key_dim": self.key_dim,
            "attention_dropout": self.attention_dropout,
            "projection_dropout": self.projection_dropout,
            "mlp_dropout": self.mlp_dropout,
            "normalization": self.normalization,
        }
