"""The Keras example's EANet, built the way the example builds it: the baseline of ``bench train``.

The Keras example (keras.io, examples/vision/eanet, Keras 3 version) writes its model as one
functional graph: a ``data_augmentation`` block (``Normalization`` first, then the random layers)
*inside* the model, then for every block plain ``Dense``, ``reshape``, ``transpose`` and
``Softmax`` calls. This module rebuilds that graph call for call, so that the training benchmark
times the example's own recipe rather than the course's layers. Two departures, neither of which
changes what is computed: the example's ``Lambda`` for the l1 step is written with ``keras.ops``
on the graph's tensors, and its ``PatchExtract``/``PatchEmbedding`` are the course's, which
compute the same thing.

The course's :class:`~eanet_course.layers.ExternalAttention` computes exactly this function: a test
copies the weights of one model into the other and compares predictions.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from eanet_course.config import EANetConfig
from eanet_course.layers import PatchEmbedding, PatchExtract

__all__ = ["build_keras_example"]


def _external_attention(x, config: EANetConfig):
    """The example's ``external_attention(x, dim, num_heads, dim_coefficient, ...)``."""
    dim, coefficient = config.embed_dim, config.dim_coefficient
    num_patches = x.shape[1]
    heads = config.num_heads * coefficient
    x = layers.Dense(dim * coefficient)(x)
    x = ops.reshape(x, (-1, num_patches, heads, dim * coefficient // heads))
    x = ops.transpose(x, axes=[0, 2, 1, 3])
    attention = layers.Dense(dim // coefficient)(x)  # M_k
    attention = layers.Softmax(axis=2)(attention)  # over the patches
    attention = attention / (ops.sum(attention, axis=-1, keepdims=True) + 1e-9)  # l1 over S
    attention = layers.Dropout(config.attention_dropout)(attention)
    x = layers.Dense(dim * coefficient // heads)(attention)  # M_v
    x = ops.transpose(x, axes=[0, 2, 1, 3])
    x = ops.reshape(x, (-1, num_patches, dim * coefficient))
    x = layers.Dense(dim)(x)
    return layers.Dropout(config.projection_dropout)(x)


def _transformer_encoder(x, config: EANetConfig):
    """The example's pre-norm block with external attention and its two-layer MLP."""
    residual = x
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    x = layers.add([_external_attention(x, config), residual])
    residual = x
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    x = layers.Dense(config.mlp_dim, activation="gelu")(x)
    x = layers.Dropout(config.mlp_dropout)(x)
    x = layers.Dense(config.embed_dim)(x)
    x = layers.Dropout(config.mlp_dropout)(x)
    return layers.add([x, residual])


def build_keras_example(
    config: EANetConfig, augmentation: keras.layers.Layer | None = None
) -> keras.Model:
    """The example's ``get_model("external_attention")`` for ``config``.

    Args:
        config: the architecture (``get_profile("paper")`` is the example's).
        augmentation: the example's ``data_augmentation`` block, put first inside the model
            (see :func:`eanet_course.data.keras_example_augmentation`); ``None`` leaves it out,
            so that the model can be compared with :func:`eanet_course.models.build_eanet`.

    Returns:
        Images ``(B, H, W, C)`` to class probabilities ``(B, num_classes)``; with the paper
        profile, 361,380 trainable parameters (plus the normalization's statistics).
    """
    inputs = keras.Input(shape=config.input_shape)
    x = augmentation(inputs) if augmentation is not None else inputs
    x = PatchExtract(config.patch_size)(x)
    x = PatchEmbedding(config.num_patches, config.embed_dim)(x)
    for _ in range(config.num_blocks):
        x = _transformer_encoder(x, config)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(config.num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="keras_example_eanet")
