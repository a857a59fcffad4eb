"""One frozen dataclass says everything a notebook needs: data, model and training budget.

Three profiles ship with the course and ``EANET_PROFILE`` picks one:

* ``paper``  -- the Keras example's recipe on CIFAR-100 (8 blocks, 50 epochs; a GPU helps).
* ``laptop`` -- CIFAR-100 on a budget that finishes in about 15 minutes on a laptop CPU (default).
* ``ci``     -- scikit-learn's 8x8 digits, a small model, seconds per notebook, no network.

``EANET_DATASET`` swaps the data set of any profile (``EANET_DATASET=digits`` runs the laptop
profile offline); the patch size follows the data set, so that every profile on every data set
cuts its images into at least ``MIN_PATCHES`` = 16 patches (the laptop profile's 4x4 patches
become 2x2 on the 8x8 digits).  A config that cannot build a model is refused when it is made,
with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from eanet_course.validation import divisor_hint, finite_real, is_integer

__all__ = ["DATASETS", "MIN_PATCHES", "NORMALIZATIONS", "PRECISIONS", "PROFILES", "EANetConfig",
           "get_profile", "patch_size_for"]

#: The two normalizations of external attention: EANet's, and the plain softmax over S.
NORMALIZATIONS: tuple[str, ...] = ("double", "softmax")

#: The dtype policies a model can be built under: float32 (the default), or bfloat16 arithmetic
#: on float32 weights (``mixed_bfloat16``; the classifier and the normalizations stay float32).
PRECISIONS: tuple[str, ...] = ("float32", "mixed_bfloat16")

#: Shape facts of each data set the course knows: ``(image_size, channels, num_classes)``.
DATASETS: dict[str, tuple[int, int, int]] = {
    "cifar100": (32, 3, 100),
    "digits": (8, 1, 10),
}

#: The fewest patches a profile gives on any data set: a 4 x 4 grid, so that every patch grid,
#: attention map and Jacobian of the notebooks has a centre, neighbours and a border.
MIN_PATCHES = 16


def patch_size_for(image_size: int, patch_size: int) -> int:
    """The patch size to use on ``image_size`` images, starting from a profile's ``patch_size``.

    ``patch_size`` itself when it divides ``image_size`` into at least ``MIN_PATCHES`` patches,
    else the largest smaller size that does (``patch_size_for(8, 4) == 2``: 16 patches on the 8x8
    digits instead of 4). ``patch_size`` unchanged when no size does, for the config to refuse.
    """
    fitting = [p for p in range(1, min(patch_size, image_size) + 1)
               if image_size % p == 0 and (image_size // p) ** 2 >= MIN_PATCHES]
    return max(fitting) if fitting else patch_size


@dataclass(frozen=True)
class EANetConfig:
    """Everything that defines one run: the data, the model and the training budget.

    Model fields follow the Keras example. ``memory_units`` is S, the number of rows of the
    external memories ``M_k`` and ``M_v``; ``None`` means the Keras example's choice,
    ``embed_dim // dim_coefficient`` units per head (the paper's own code uses S = 64).
    ``attention_normalization`` is ``"double"`` (EANet) or ``"softmax"`` (a plain softmax over
    S: the ablation in which patches never exchange information inside the attention).
    ``precision`` is ``"float32"`` (Keras's global dtype policy, float32 unless changed) or
    ``"mixed_bfloat16"``: the blocks compute in bfloat16 on float32 weights, the classifier in
    float32 (an option, off by default; ``bench train --precision`` measures it).
    """

    dataset: str = "cifar100"
    image_size: int = 32
    channels: int = 3
    patch_size: int = 4
    num_classes: int = 100
    embed_dim: int = 64
    mlp_dim: int = 64
    num_heads: int = 4
    dim_coefficient: int = 4
    memory_units: int | None = None
    attention_normalization: str = "double"
    num_blocks: int = 4
    attention_dropout: float = 0.1
    projection_dropout: float = 0.1
    mlp_dropout: float = 0.1
    batch_size: int = 128
    epochs: int = 10
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    label_smoothing: float = 0.1
    validation_split: float = 0.2
    seed: int = 42
    precision: str = "float32"

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("EANetConfig cannot build a model:\n- " + "\n- ".join(problems))
        # NumPy numbers are accepted; stored as Python ones, so the config writes to JSON.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", "int | None") and value is not None:
                object.__setattr__(self, field.name, int(value))
            elif field.type == "float":
                object.__setattr__(self, field.name, float(value))

    @property
    def num_patches(self) -> int:
        """N, the number of patches per image: ``(image_size // patch_size) ** 2``."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model's input shape, ``(image_size, image_size, channels)``."""
        return (self.image_size, self.image_size, self.channels)

    def replace(self, **changes) -> "EANetConfig":
        """A copy with some fields changed (validated again).

        ``dataset=`` also sets its shape and, unless ``patch_size=`` is given too, a patch size
        that gives at least ``MIN_PATCHES`` patches (:func:`patch_size_for`).
        """
        if "dataset" in changes:
            name = changes["dataset"]
            if name not in DATASETS:
                raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}.")
            size, channels, classes = DATASETS[name]
            changes = {"image_size": size, "channels": channels, "num_classes": classes,
                       "patch_size": patch_size_for(size, self.patch_size), **changes}
        return dataclasses.replace(self, **changes)


def _problems(c: EANetConfig) -> list[str]:
    """Every reason this config could not build a model, each naming its fix."""
    problems = []
    if c.dataset not in DATASETS:
        problems.append(f"dataset={c.dataset!r} is unknown; choose one of {sorted(DATASETS)}.")
    for name in ("image_size", "channels", "patch_size", "num_classes", "embed_dim", "mlp_dim",
                 "num_heads", "dim_coefficient", "num_blocks", "batch_size", "epochs"):
        value = getattr(c, name)
        if not _is_positive_int(value):
            problems.append(f"{name}={value!r} must be a positive integer.")
    if not is_integer(c.seed) or c.seed < 0:
        problems.append(f"seed={c.seed!r} must be an integer >= 0 (NumPy and TensorFlow seeds "
                        "are non-negative integers).")
    if problems:
        return problems
    if c.image_size % c.patch_size:
        problems.append(
            f"image_size={c.image_size} is not divisible by patch_size={c.patch_size}; "
            f"pick a patch_size that divides it (e.g. {divisor_hint(c.image_size)})."
        )
    if c.embed_dim % c.num_heads:
        problems.append(
            f"embed_dim={c.embed_dim} is not divisible by num_heads={c.num_heads}; "
            f"pick num_heads among {divisor_hint(c.embed_dim)}."
        )
    if c.memory_units is None and c.embed_dim < c.dim_coefficient:
        problems.append(
            f"embed_dim={c.embed_dim} // dim_coefficient={c.dim_coefficient} leaves no memory "
            "units; lower dim_coefficient or set memory_units."
        )
    if c.memory_units is not None and not _is_positive_int(c.memory_units):
        problems.append(f"memory_units={c.memory_units!r} must be an integer >= 1 (or None for "
                        "the default).")
    if c.attention_normalization not in NORMALIZATIONS:
        problems.append(f"attention_normalization={c.attention_normalization!r} must be one of "
                        f"{NORMALIZATIONS}.")
    if c.precision not in PRECISIONS:
        problems.append(f"precision={c.precision!r} must be one of {PRECISIONS}.")
    for name in ("attention_dropout", "projection_dropout", "mlp_dropout", "label_smoothing"):
        value = getattr(c, name)
        if not finite_real(value) or not 0.0 <= value < 1.0:
            problems.append(f"{name}={value!r} must be a number in [0, 1).")
    if not finite_real(c.validation_split) or not 0.0 < c.validation_split < 1.0:
        problems.append(f"validation_split={c.validation_split!r} must be a number in (0, 1).")
    if not finite_real(c.learning_rate) or c.learning_rate <= 0:
        problems.append(f"learning_rate={c.learning_rate!r} must be a number > 0, and finite.")
    if not finite_real(c.weight_decay) or c.weight_decay < 0:
        problems.append(f"weight_decay={c.weight_decay!r} must be a number >= 0, and finite.")
    return problems


def _is_positive_int(value) -> bool:
    return is_integer(value) and value >= 1


PROFILES: dict[str, EANetConfig] = {
    # The Keras example, hyper-parameter for hyper-parameter. Its 2021 optimizer
    # (tfa.optimizers.AdamW) subtracted weight_decay * w each step; Keras 3's AdamW subtracts
    # learning_rate * weight_decay * w. The same decay of 1e-4 per step is therefore
    # weight_decay = 1e-4 / 1e-3 = 0.1 here (the Keras 3 port kept 1e-4: 1000x weaker).
    "paper": EANetConfig(
        dataset="cifar100", image_size=32, channels=3, patch_size=2, num_classes=100,
        embed_dim=64, mlp_dim=64, num_heads=4, dim_coefficient=4, memory_units=None,
        num_blocks=8, attention_dropout=0.2, projection_dropout=0.2, mlp_dropout=0.2,
        batch_size=128, epochs=50, learning_rate=1e-3, weight_decay=0.1,
        label_smoothing=0.1, validation_split=0.2, seed=42,
    ),
    # CIFAR-100 on a laptop CPU in about 15 minutes: 4x4 patches (N = 64 instead of 256),
    # 4 blocks instead of 8, fewer epochs. On the 8x8 digits (EANET_DATASET=digits): 2x2 patches,
    # N = 16 (patch_size_for).
    "laptop": EANetConfig(
        dataset="cifar100", image_size=32, channels=3, patch_size=4, num_classes=100,
        embed_dim=64, mlp_dim=128, num_heads=4, dim_coefficient=4, memory_units=None,
        num_blocks=4, attention_dropout=0.1, projection_dropout=0.1, mlp_dropout=0.1,
        batch_size=128, epochs=10, learning_rate=1e-3, weight_decay=0.1,
        label_smoothing=0.1, validation_split=0.2, seed=42,
    ),
    # Offline and fast: 8x8 digits, 2x2 patches (N = 16), two small blocks.
    "ci": EANetConfig(
        dataset="digits", image_size=8, channels=1, patch_size=2, num_classes=10,
        embed_dim=32, mlp_dim=64, num_heads=2, dim_coefficient=2, memory_units=None,
        num_blocks=2, attention_dropout=0.0, projection_dropout=0.0, mlp_dropout=0.0,
        batch_size=32, epochs=15, learning_rate=3e-3, weight_decay=0.01,
        label_smoothing=0.0, validation_split=0.2, seed=42,
    ),
}


def get_profile(name: str | None = None) -> EANetConfig:
    """The config of a profile: ``name``, else ``$EANET_PROFILE``, else ``"laptop"``.

    ``$EANET_DATASET``, when set, replaces the profile's data set: its image shape and, where the
    profile's patch size would give fewer than ``MIN_PATCHES`` patches, its patch size.
    """
    name = name or os.environ.get("EANET_PROFILE") or "laptop"
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}; choose one of {sorted(PROFILES)} "
            "(set EANET_PROFILE or pass name=)."
        )
    config = PROFILES[name]
    dataset = os.environ.get("EANET_DATASET")
    if dataset and dataset != config.dataset:
        config = config.replace(dataset=dataset)
    return config
