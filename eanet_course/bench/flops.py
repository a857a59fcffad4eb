"""The arithmetic of a training step and the machine's limit for it: FLOPs against a matmul rate.

How the FLOPs are counted (:func:`forward_flops`): TensorFlow traces the model's forward pass
for one batch of a fixed size, and every matrix product in that graph (``MatMul``,
``BatchMatMulV2/V3``, ``Einsum``, ``Conv2D``; a ``Dense`` on a ``(B, H, N, dh)`` tensor is one
``MatMul`` of ``(B*H*N, dh)`` by its kernel) counts ``2 * m * n * k`` floating-point operations
(one multiply and one add per term). Element-wise work (bias, softmax, normalizations, GELU,
dropout) is left out: it moves memory rather than doing arithmetic, a few FLOPs per element.
Each product is credited to the layer whose name scope made it.

A training step (:func:`training_step_flops`) counts 3 times the forward pass: the backward pass
of ``C = A B`` does two products of the same size, ``dA = dC B^T`` and ``dB = A^T dC``. (The
first layer does not need ``dA``, a fraction of a percent here.) With the ``paper`` profile,
EANet does about 0.2 GFLOP per image forward, 0.6 GFLOP per image per training step.

The limit (:func:`matmul_rate`): the FLOP/s of one large float32 matrix product in TensorFlow on
this machine, measured now. A step that ran at that rate would be bound by arithmetic alone;
the step's *share* of it says how much of the step goes to something else, mostly memory traffic.
"""

from __future__ import annotations

import math
import re
import statistics
import time

import keras
import tensorflow as tf

__all__ = ["forward_flops", "forward_op_count", "training_step_flops", "matmul_rate"]

#: Matrix-product ops of a TensorFlow graph whose FLOPs :func:`forward_flops` counts.
PRODUCT_OPS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Conv2D")


def _dims(tensor) -> list[int]:
    shape = tensor.shape.as_list()
    if None in shape:
        raise ValueError(f"forward_flops needs static shapes; {tensor.name} has shape {shape}.")
    return shape


def _op_flops(op) -> int:
    """``2 * m * n * k`` of one matrix-product op (any batch axes multiply in)."""
    out = math.prod(_dims(op.outputs[0]))
    a = _dims(op.inputs[0])
    if op.type == "MatMul":
        return 2 * out * a[0 if op.get_attr("transpose_a") else 1]
    if op.type.startswith("BatchMatMul"):
        return 2 * out * a[-2 if op.get_attr("adj_x") else -1]
    if op.type == "Conv2D":
        kernel = _dims(op.inputs[1])  # (kh, kw, in, out)
        return 2 * out * math.prod(kernel[:3])
    # Einsum: every index letter once, each with its size (ellipses are not used by the course).
    equation = op.get_attr("equation").decode()
    sizes: dict[str, int] = {}
    for letters, tensor in zip(equation.split("->")[0].split(","), op.inputs):
        sizes.update(zip(letters, _dims(tensor)))
    return 2 * math.prod(sizes.values())


def _layer_of(op_name: str, model_name: str) -> str:
    """``eanet_1/block_0_1/attention_1/to_heads_1/Tensordot/MatMul`` becomes
    ``block_0/attention/to_heads``."""
    scopes = op_name.split("/")[:-1]
    if scopes and scopes[0].startswith(model_name):
        scopes = scopes[1:]
    # Keras appends "_1" to a scope it re-enters; drop the suffix from each layer scope.
    layers = [re.sub(r"_\d+$", "", scope) for scope in scopes
              if not scope.startswith(("Tensordot", "einsum", "MatMul", "Conv2D"))]
    return "/".join(layers) or "(model)"


def forward_flops(model: keras.Model, batch_size: int = 1) -> dict[str, int]:
    """FLOPs of the matrix products of one forward pass, by layer.

    Args:
        model: a built Keras model with a static input shape (e.g. :func:`build_eanet`).
        batch_size: images in the batch.

    Returns:
        ``{layer path: FLOPs}`` (e.g. ``"block_0/attention/to_heads"``), in graph order; the
        model's total is the sum of the values.
    """
    spec = tf.TensorSpec((batch_size, *model.input_shape[1:]), model.inputs[0].dtype)
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(spec).graph
    flops: dict[str, int] = {}
    for op in graph.get_operations():
        if op.type in PRODUCT_OPS:
            layer = _layer_of(op.name, model.name)
            flops[layer] = flops.get(layer, 0) + _op_flops(op)
    return flops


#: Graph ops that launch no kernel of their own: constants, variable reads, identities, inputs.
_BOOKKEEPING_OPS = ("Const", "Identity", "ReadVariableOp", "NoOp", "Placeholder")


def forward_op_count(model: keras.Model, batch_size: int = 1) -> int:
    """How many TensorFlow ops one forward pass runs (inference: ``training=False``), leaving out
    constants, variable reads, identities and inputs: the kernels each call launches, each with
    a fixed cost whatever its size."""
    spec = tf.TensorSpec((batch_size, *model.input_shape[1:]), model.inputs[0].dtype)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return sum(op.type not in _BOOKKEEPING_OPS for op in graph.get_operations())


def training_step_flops(model: keras.Model, batch_size: int) -> int:
    """FLOPs of one training step on a batch: 3 times the forward pass's matrix products."""
    return 3 * sum(forward_flops(model, batch_size).values())


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """The machine's float32 matrix-product rate in FLOP/s: an ``n x n`` by ``n x n`` product.

    The median of ``repeats`` timed products (``2 n^3`` FLOPs each) after one warm-up, on the
    CPU, with TensorFlow's own threads and kernels (oneDNN where it is on).
    """
    if n < 1 or repeats < 1:
        raise ValueError(f"matmul_rate needs n >= 1 and repeats >= 1, got n={n}, "
                         f"repeats={repeats}.")
    with tf.device("/CPU:0"):
        a = tf.random.stateless_uniform((n, n), seed=(1, 2))
        b = tf.random.stateless_uniform((n, n), seed=(3, 4))
        product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
        product().numpy()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            product().numpy()
            seconds.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(seconds)
