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
        batch = ops.shape(images)[0]
        patches = ops.image.extract_patches(images, self.patch_size, padding="valid",
                                            data_format="channels_last")
        return ops.reshape(patches, (batch, -1, patches.shape[-1]))

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


def double_normalization(logits, patch_axis: int = -2):
    """EANet's double normalization of ``(..., N, S)`` logits, in ``keras.ops``.

    Softmax over the patch axis ``N`` (``patch_axis``, by default -2), then l1 over the memory
    axis ``S`` (the last), so that each patch's weights over the memory units sum to 1. Same
    maths as :func:`eanet_course.reference.double_normalization`. ``ExternalAttention`` passes
    ``(B, N, H, S)`` logits with ``patch_axis=1``.

    The sums are inverted once and multiplied in, and the gradient is written out (``A = P / R``
    with ``P`` the softmax over N and ``R`` its sum over S): ``dP = (dA - sum_S(dA * A)) / R``
    and ``dlogits = P * (dP - sum_N(dP * P))``. So neither pass divides or transposes the whole
    map; a test compares this gradient with the automatic one.

    ``float16`` logits are normalized in ``float32`` and the result cast back: in ``float16`` a
    patch whose weights all underflow (``exp(-18)`` already does) gives ``0 / (0 + 1e-9)`` with
    the ``1e-9`` rounded to 0, a NaN. ``bfloat16`` has ``float32``'s exponent range, so it
    computes in its own type (docs/design-notes.md gives the measurement).
    """

    @ops.custom_gradient
    def normalize(logits):
        exp = ops.exp(logits - ops.max(logits, axis=patch_axis, keepdims=True))
        over_patches = exp * (1.0 / ops.sum(exp, axis=patch_axis, keepdims=True))
        eps = ops.cast(1e-9, over_patches.dtype)
        inverse_total = 1.0 / (ops.sum(over_patches, axis=-1, keepdims=True) + eps)
        scores = over_patches * inverse_total

        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            d_over = (upstream - ops.sum(upstream * scores, axis=-1, keepdims=True)) * inverse_total
            return over_patches * (d_over - ops.sum(d_over * over_patches, axis=patch_axis,
                                                    keepdims=True))

        return scores, grad

    logits = ops.convert_to_tensor(logits)
    dtype = keras.backend.standardize_dtype(logits.dtype)
    if dtype == "float16":
        logits = ops.cast(logits, "float32")
    return ops.cast(normalize(logits), dtype)


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
    which the softmax over N cancels: they are kept only to match the example's weights.

    How it runs: the four ``Dense`` layers hold the weights, and ``call`` multiplies them into
    two matrices first (``W_h M_k^T`` per head, and ``M_v W_o`` per head), so that a step makes
    two products on ``(B*N, .)`` rows instead of four and never forms the ``(B, N, H, dh)`` heads;
    the maps stay ``(B, N, H, S)`` with no transposes. Same function, same weights: a test copies
    the weights into the step-by-step form and compares outputs and gradients.

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
        # Maps stay (B, N, H, S): no transposes; the patch axis N is axis 1.
        logits = ops.reshape(ops.matmul(x, key) + key_bias, (-1, n, h, s))  # F M_k^T
        if self.normalization == "double":
            scores = double_normalization(logits, patch_axis=1)
        else:
            scores = ops.softmax(logits, axis=-1)
        attention = self.attention_dropout_layer(scores, training=training)
        out = ops.matmul(ops.reshape(attention, (-1, n, h * s)), value) + value_bias  # A M_v W_o
        out = self.projection_dropout_layer(out, training=training)
        if return_attention_scores:
            return out, ops.transpose(scores, (0, 2, 1, 3))  # (B, H, N, S)
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
        self.attention_norm = layers.LayerNormalization(epsilon=1e-5, name="attention_norm",
                                                        dtype=policy)
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
        self.mlp_norm = layers.LayerNormalization(epsilon=1e-5, name="mlp_norm", dtype=policy)
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
