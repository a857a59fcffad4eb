"""Hints in three levels for every ★ Build task: the idea, the steps, then nearly the code.

The exercise notebooks give only the contract (what to write, with shapes); the how lives here,
one level at a time, so that a learner reads only as much as they need. A failing checker points
to the next level the learner has not read yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from eanet_course.checks._core import hints_seen
from eanet_course.validation import is_integer

HINTS: dict[str, tuple[str, str, str]] = {
    "standardize": (
        "Every channel gets its own shift and scale, and both come from the training images "
        "only: the test set is treated exactly like data the model meets later.",
        "Compute one mean and one standard deviation per channel over every training image and "
        "every pixel position (all axes but the channel axis). Subtract and divide, for the "
        "training and the test images alike. Return both, as floats.",
        "`mean = train.mean(axis=(0, 1, 2))`, `std = train.std(axis=(0, 1, 2))`; return "
        "`(train - mean) / std, (test - mean) / std`.",
    ),
    "extract_patches": (
        "A patch is a P x P square. In memory an image is stored row by row, so the pixels of "
        "one square are not consecutive: name the grid's axes first, reorder them, then "
        "flatten.",
        "1. Split height into (rows of patches, P) and width into (columns of patches, P). "
        "2. Reorder the axes so that the two grid axes come first, then the two within-patch "
        "axes, then the channels. 3. Flatten to (B, N, P*P*C).",
        "`images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)"
        ".reshape(b, -1, p * p * c)`.",
    ),
    "scaled_dot_product_attention": (
        "Every query scores every key with a dot product; the scores become weights that sum "
        "to 1 over the keys; the output mixes the values with those weights. The scale keeps "
        "the scores from growing with d_k.",
        "1. Scores: Q times K transposed on the last two axes, divided by the square root of "
        "d_k. 2. A stable softmax over the keys: subtract each row's maximum before the "
        "exponential. 3. Output: the weights times V.",
        "`logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])`; `e = np.exp(logits - "
        "logits.max(axis=-1, keepdims=True))`; `w = e / e.sum(axis=-1, keepdims=True)`; return "
        "`w @ v, w`.",
    ),
    "external_attention": (
        "Self-attention with the keys and values replaced by two learned memories: patches "
        "score memory units, and the double normalization turns the scores into weights.",
        "1. Logits (..., N, S): features times M_k transposed. 2. A stable softmax over the "
        "patch axis N. 3. Divide each patch's row by its sum over S. 4. Output: attention "
        "times M_v. Return both.",
        "`logits = features @ m_k.T`; `e = np.exp(logits - logits.max(axis=-2, "
        "keepdims=True))`; `a = e / e.sum(axis=-2, keepdims=True)`; `a = a / a.sum(axis=-1, "
        "keepdims=True)`; return `a @ m_v, a`.",
    ),
    "double_normalization": (
        "Two normalizations, on two different axes: first over the patches (each memory unit "
        "sees a distribution over the image), then over the memory units (each patch's weights "
        "sum to 1). Count axes from the end, so that leading batch and head axes do not "
        "matter.",
        "1. A softmax over N, the second-to-last axis: subtract each column's maximum, "
        "exponentiate, divide by the column's sum. 2. Divide each row by its sum over S, the "
        "last axis (keep the dimension so that it broadcasts).",
        "`e = np.exp(logits - logits.max(axis=-2, keepdims=True))`; `a = e / e.sum(axis=-2, "
        "keepdims=True)`; return `a / a.sum(axis=-1, keepdims=True)`.",
    ),
    "split_heads": (
        "Each head owns a block of dh consecutive channels. First give the channel axis two "
        "axes (head, channel within the head), then move the head axis in front of the "
        "patches.",
        "1. Reshape (B, N, H*dh) so that the last axis splits into H and dh. 2. Swap the "
        "patch axis and the head axis.",
        "`b, n, width = x.shape`; `x.reshape(b, n, num_heads, width // num_heads)"
        ".transpose(0, 2, 1, 3)`.",
    ),
    "merge_heads": (
        "The inverse of split_heads, undone in the opposite order: move the heads back behind "
        "the patches, then glue each patch's heads together.",
        "1. Swap the head axis and the patch axis, giving (B, N, H, dh). 2. Reshape the last "
        "two axes into one of H*dh channels.",
        "`b, h, n, dh = x.shape`; `x.transpose(0, 2, 1, 3).reshape(b, n, h * dh)`.",
    ),
    "external_attention_layer": (
        "A Keras layer is three methods: __init__ makes the sub-layers and stores the "
        "arguments, call computes with them, get_config returns the arguments so the layer "
        "can be rebuilt. The maths is the one you wrote with NumPy, in keras.ops.",
        "1. __init__: store the arguments; make four Dense layers (to_heads: d*c units, "
        "memory_key: S, memory_value: dh, output_projection: d). 2. call: widen, split into "
        "H = num_heads*c heads of dh, memory_key, double normalization (softmax over N, then "
        "l1 over S), memory_value, merge the heads, project. 3. get_config: "
        "super().get_config() plus every argument. 4. Register the class.",
        "`h = ops.transpose(ops.reshape(self.to_heads(x), (-1, n, H, dh)), (0, 2, 1, 3))`; "
        "`a = ops.softmax(self.memory_key(h), axis=-2)`; `a = a / (ops.sum(a, axis=-1, "
        "keepdims=True) + 1e-9)`; `out = ops.reshape(ops.transpose(self.memory_value(a), "
        "(0, 2, 1, 3)), (-1, n, d * c))`; return `self.output_projection(out)`.",
    ),
    "transformer_block": (
        "Pre-norm: each branch normalizes its own input, and the un-normalized stream carries "
        "on, with the branch's output added to it (a residual connection). Two branches: "
        "attention, then an MLP.",
        "1. y = x + ExternalAttention(LayerNormalization(x)). 2. out = y + MLP("
        "LayerNormalization(y)), the MLP being a Dense of mlp_dim units with GELU, then a Dense "
        "back to embed_dim. Each LayerNormalization is its own layer, with epsilon=1e-5.",
        "`y = layers.Add()([x, ExternalAttention(embed_dim, num_heads, dim_coefficient)("
        "layers.LayerNormalization(epsilon=1e-5)(x))])`; `h = layers.Dense(mlp_dim, "
        "activation='gelu')(layers.LayerNormalization(epsilon=1e-5)(y))`; return "
        "`layers.Add()([y, layers.Dense(embed_dim)(h)])`.",
    ),
    "count_parameters": (
        "Add up the weights layer by layer, from the config's numbers alone: the patch "
        "embedding, every block, the classifier. A Dense layer from n to m inputs has a kernel "
        "and a bias.",
        "Dense(n -> m): n*m + m. Embedding of N positions: N*d. LayerNormalization: 2*d. Per "
        "block: two LayerNormalizations, the attention (to_heads d -> d*c, memory_key dh -> S, "
        "memory_value S -> dh, output_projection d*c -> d, with dh = d // num_heads and "
        "S = memory_units or d // c) and the MLP (d -> mlp_dim -> d). Then the classifier.",
        "`dense = lambda i, o: i * o + o`; `embedding = dense(P*P*C, d) + N*d`; `attention = "
        "dense(d, d*c) + dense(dh, S) + dense(S, dh) + dense(d*c, d)`; `block = 4*d + attention "
        "+ dense(d, mlp) + dense(mlp, d)`; return `embedding + num_blocks*block + dense(d, "
        "num_classes)`.",
    ),
    "warmup_cosine": (
        "Two phases: a straight line from 0 up to the peak, then half a cosine from the peak "
        "down to 0. Keras has a schedule that does both; the optimizer asks it for the rate "
        "with the step as a tensor.",
        "keras.optimizers.schedules.CosineDecay starts from initial_learning_rate, warms up "
        "linearly to warmup_target over warmup_steps, then decays over decay_steps: the steps "
        "left after the warm-up.",
        "`keras.optimizers.schedules.CosineDecay(initial_learning_rate=0.0, decay_steps="
        "total_steps - warmup_steps, warmup_target=peak_learning_rate, warmup_steps="
        "warmup_steps)`.",
    ),
    "train_step": (
        "A training step: run the model on the batch while a tape records, compute the loss, "
        "ask the tape for the gradient of the loss with respect to the trainable weights, and "
        "let the optimizer apply it.",
        "1. Open a tf.GradientTape. 2. Inside it: predictions = model(images, training=True); "
        "loss = loss_fn(labels, predictions). 3. Outside: gradients of the loss with respect to "
        "model.trainable_variables. 4. The optimizer applies (gradient, variable) pairs. "
        "5. Return the loss.",
        "`with tf.GradientTape() as tape: loss = loss_fn(labels, model(images, training=True))`"
        "; `grads = tape.gradient(loss, model.trainable_variables)`; `optimizer.apply_gradients"
        "(zip(grads, model.trainable_variables))`; return `loss`.",
    ),
    "attention_to_pixels": (
        "The N scores are a square grid of patches laid out row by row; every pixel of a patch "
        "takes its patch's score.",
        "1. Reshape the N scores into the (side, side) grid, side = image_size // patch_size. "
        "2. Blow each grid cell up into a P x P square of equal values, along both axes.",
        "`grid = unit_scores.reshape(side, side)`; `np.repeat(np.repeat(grid, p, axis=0), p, "
        "axis=1)` (or `np.kron(grid, np.ones((p, p)))`).",
    ),
    "top_units": (
        "A unit's share of an image is its column's total: the attention every patch gives it. "
        "Rank the units by that total.",
        "1. Sum the map over the patches (one number per memory unit). 2. Order the units by "
        "that total, largest first. 3. Keep the first k.",
        "`np.argsort(-attention.sum(axis=0))[:k]`.",
    ),
    "fit_slope": (
        "A power law cost = a * n^k is a straight line of slope k on log-log axes: fit a line "
        "to the logarithms.",
        "1. Take the logarithm of n and of the cost (any base: the slope is the same). 2. Fit a "
        "least-squares line through all the points. 3. Return its slope as a float.",
        "`float(np.polyfit(np.log(ns), np.log(costs), 1)[0])`.",
    ),
    "sinkhorn": (
        "Sinkhorn's algorithm makes a positive matrix doubly stochastic by normalizing its "
        "columns and its rows in turn. EANet's double normalization is its first round.",
        "1. Start from the exponential of the logits (stably: subtract each column's maximum "
        "first; the column normalization cancels it). 2. Repeat `steps` times: divide each "
        "column by its sum over N, then each row by its sum over S.",
        "`p = np.exp(logits - logits.max(axis=-2, keepdims=True))`; `for _ in range(steps): p "
        "= p / p.sum(axis=-2, keepdims=True); p = p / p.sum(axis=-1, keepdims=True)`.",
    ),
    "em_step": (
        "k-means with soft assignments: each patch shares itself among the memory units by "
        "similarity (E-step), then each unit moves to the weighted mean of the patches it got "
        "(M-step).",
        "1. Similarities (N, S): features times memory transposed. 2. Responsibilities: a "
        "softmax over the units, for each patch. 3. Per unit, divide its responsibilities by "
        "their total over the patches. 4. New memory: those weights, transposed, times the "
        "features.",
        "`z = softmax(features @ memory.T, axis=-1)`; `z = z / z.sum(axis=0, keepdims=True)`; "
        "return `z.T @ features`.",
    ),
    "double_normalization_backward": (
        "Go backwards one step at a time, the l1 step first, then the softmax over N. Each step "
        "divides by a sum of what it normalizes, so each gives two terms: the upstream passed "
        "through, minus a correction from the sum in the denominator.",
        "1. Forward again: P, the softmax over N (stable), the row sums of P over S, A. "
        "2. The l1 step: dL/dP = (G - the row sum over S of G * A) / the row sum of P. "
        "3. The softmax over N: dL/dZ = P * (dL/dP - the column sum over N of P * dL/dP). Keep "
        "each summed axis, with length 1, so that it broadcasts back.",
        "`e = np.exp(logits - logits.max(axis=-2, keepdims=True))`; `p = e / e.sum(axis=-2, "
        "keepdims=True)`; `r = 1 / p.sum(axis=-1, keepdims=True)`; `d_p = r * (upstream - "
        "(upstream * p * r).sum(axis=-1, keepdims=True))`; return `p * (d_p - (p * d_p)"
        ".sum(axis=-2, keepdims=True))`.",
    ),
}

#: Checker names whose exercise is named after the learner's function instead.
ALIASES = {"check_parameter_count": "count_parameters",
           "check_learning_rate_schedule": "warmup_cosine"}

LEVELS = ("the idea", "the steps", "nearly the code")


@dataclass(frozen=True)
class Hint:
    """One hint: ``exercise``, ``level`` (1 to 3) and its ``text``; shows itself in a notebook."""

    exercise: str
    level: int
    text: str

    def __repr__(self) -> str:
        return f"Hint {self.level}/3 for {self.exercise} ({LEVELS[self.level - 1]}): {self.text}"

    def _repr_markdown_(self) -> str:
        more = (f" Next: `checks.hint({self.exercise!r}, {self.level + 1})`."
                if self.level < 3 else "")
        return (f"**Hint {self.level}/3 for `{self.exercise}` ({LEVELS[self.level - 1]}).** "
                f"{self.text}{more}")


def hint(exercise: str, level: int = 1) -> Hint:
    """Hint ``level`` (1: the idea, 2: the steps, 3: nearly the code) for the ★ Build task
    ``exercise`` (the name of the function or class the learner writes)."""
    name = ALIASES.get(exercise, exercise.removeprefix("check_"))
    if name not in HINTS:
        raise ValueError(f"No hints for {exercise!r}; the exercises with hints are: "
                         f"{', '.join(sorted(HINTS))}.")
    if not is_integer(level) or not 1 <= level <= 3:
        raise ValueError(f"level={level!r}: hints come in levels 1 (the idea), 2 (the steps) "
                         "and 3 (nearly the code).")
    hints_seen[name] = max(hints_seen.get(name, 0), level)
    return Hint(name, level, HINTS[name][level - 1])
