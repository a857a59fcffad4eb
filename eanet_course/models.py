"""EANet and its ViT baseline, built from a config; a view of every block's attention.

The architecture is the Keras example's: patches, a patch embedding with learned positions,
``num_blocks`` pre-norm transformer blocks, global average pooling and a softmax classifier.
Augmentation and normalization are *not* in the model: they run in the ``tf.data`` pipeline
(:mod:`eanet_course.data`), so the model sees the same kind of input in training and inference.
With ``config.precision="mixed_bfloat16"`` the patches, the embedding and the blocks are built
under that dtype policy (bfloat16 arithmetic on float32 weights); the pooling follows Keras's
global policy and the classifier is float32 always, so the probabilities are float32. The
default ``"float32"`` leaves every layer but the classifier to the global policy (float32 unless
the learner sets another). Building never sets or changes the global policy.
With ``get_profile("paper")`` the EANet has 361,380 trainable parameters and the ViT 623,268,
exactly the Keras example's counts.
"""

from __future__ import annotations

import keras
from keras import layers

from eanet_course.config import EANetConfig
from eanet_course.layers import PatchEmbedding, PatchExtract, TransformerBlock

__all__ = ["build_eanet", "build_vit", "attention_model", "compile_model"]


def _build(config: EANetConfig, attention: str, name: str, key_dim: int | None = None) -> keras.Model:
    inputs = keras.Input(shape=config.input_shape, name="images")
    policy = None if config.precision == "float32" else config.precision  # None: the global one
    x = PatchExtract(config.patch_size, name="patches", dtype=policy)(inputs)
    x = PatchEmbedding(config.num_patches, config.embed_dim, name="patch_embedding",
                       dtype=policy)(x)
    for i in range(config.num_blocks):
        # Each block also returns its scores, so that `attention_model` can read them from the
        # graph (unused outputs cost nothing: the training graph prunes them).
        x, _ = TransformerBlock(
            embed_dim=config.embed_dim,
            mlp_dim=config.mlp_dim,
            num_heads=config.num_heads,
            attention=attention,
            dim_coefficient=config.dim_coefficient,
            memory_units=config.memory_units,
            key_dim=key_dim,
            attention_dropout=config.attention_dropout,
            projection_dropout=config.projection_dropout if attention == "external" else 0.0,
            mlp_dropout=config.mlp_dropout,
            normalization=config.attention_normalization,
            name=f"block_{i}",
            dtype=policy,
        )(x, return_attention_scores=True)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    # float32 probabilities even under a mixed-precision policy.
    outputs = layers.Dense(config.num_classes, activation="softmax", dtype="float32",
                           name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def build_eanet(config: EANetConfig) -> keras.Model:
    """EANet: images ``(B, H, W, C)``, already normalized, to class probabilities ``(B, K)``."""
    return _build(config, "external", "eanet")


def build_vit(config: EANetConfig, key_dim: int | None = None) -> keras.Model:
    """The same skeleton with self-attention.

    ``key_dim=None`` is the Keras example's baseline, ``MultiHeadAttention(num_heads,
    key_dim=embed_dim)`` with dropout on the attention map only (623,268 parameters with the paper
    profile); ``key_dim=embed_dim // num_heads`` is the standard ViT, whose heads split the width
    (225,444 parameters with the paper profile).
    """
    return _build(config, "self", "vit", key_dim=config.embed_dim if key_dim is None else key_dim)


def attention_model(model: keras.Model) -> keras.Model:
    """A model that maps images to the attention scores of every block of ``model``.

    ``model`` is one built by :func:`build_eanet` or :func:`build_vit` (or loaded from a
    ``.keras`` file they saved). The new model shares its layers and weights and returns a list
    with one array per block: ``(B, H, N, S)`` for external attention, ``(B, H, N, N)`` for
    self-attention, in block order.
    """
    blocks = [layer for layer in model.layers if isinstance(layer, TransformerBlock)]
    if not blocks:
        raise ValueError(
            f"attention_model: {model.name!r} has no TransformerBlock layers; pass a model made "
            "by build_eanet or build_vit (or loaded from their .keras files)."
        )
    scores = [_scores_output(block) for block in blocks]
    return keras.Model(model.input, scores, name=f"{model.name}_attention")


def _scores_output(block: TransformerBlock):
    """The scores tensor of ``block`` in its model's graph: output 1 of a block called once with
    ``return_attention_scores=True``, as :func:`build_eanet` calls it."""
    fix = ("attention_model reads the scores that each block returns in the model's graph: call "
           "every block once, as block(x, return_attention_scores=True), or build the model with "
           "build_eanet / build_vit.")
    if len(block._inbound_nodes) != 1:
        raise ValueError(f"Block {block.name!r} is called {len(block._inbound_nodes)} times in "
                         f"the model, so its scores are ambiguous; {fix}")
    output = block.output
    if not isinstance(output, (list, tuple)) or len(output) != 2:
        raise ValueError(f"Block {block.name!r} was called without return_attention_scores=True, "
                         f"so the model's graph has no scores to read; {fix}")
    return output[1]


def compile_model(model: keras.Model, config: EANetConfig) -> keras.Model:
    """Compile with the course's recipe: AdamW, label smoothing, top-1 and top-5 accuracy.

    Labels are one-hot ``(B, num_classes)``. Keras 3's ``AdamW`` multiplies ``weight_decay`` by
    the learning rate (see :mod:`eanet_course.config` for the value that reproduces 2021's recipe).
    """
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=config.learning_rate, weight_decay=config.weight_decay
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.TopKCategoricalAccuracy(k=5, name="top5_accuracy"),
        ],
    )
    return model
