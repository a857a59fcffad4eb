"""The course's data: CIFAR-100 read safely, an offline digits set, and ``tf.data`` pipelines.

Images come out of the loaders as ``uint8`` arrays ``(N, H, W, C)`` with integer labels
``(N,)``. :func:`make_datasets` turns them into batched ``tf.data`` pipelines of normalized
``float32`` images and one-hot labels. Augmentation runs in the training pipeline, on raw
``[0, 255]`` pixels and *before* normalization: the Keras 3 port of the EANet example
normalizes first, and its ``RandomContrast`` then clips every normalized value to ``[0, 255]``,
so about half of the training inputs become exactly 0 while test inputs are untouched
(:func:`keras_example_augmentation` rebuilds that order so the course can show it).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from eanet_course.config import EANetConfig
from eanet_course.paths import eanet_home

__all__ = [
    "AUGMENTATIONS",
    "CIFAR100_CLASSES",
    "CIFAR100_URL",
    "DIGITS_CLASSES",
    "Datasets",
    "augmentation",
    "cifar100_cache_path",
    "keras_example_augmentation",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "make_datasets",
]

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
# The archive's SHA-256, as keras.datasets.cifar100 checks it.
CIFAR100_SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"

#: The 100 fine labels of CIFAR-100, in label order.
CIFAR100_CLASSES: tuple[str, ...] = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile
cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp
lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree
orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit
raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip
turtle wardrobe whale willow_tree wolf woman worm
""".split())

#: The 10 labels of scikit-learn's digits.
DIGITS_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

# ----------------------------------------------------------------------------------------------
# CIFAR-100


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain containers, numbers, strings, bytes and NumPy arrays, nothing else.

    CIFAR-100's python files are pickled dicts holding one ``uint8`` NumPy array and lists;
    rebuilding the array takes exactly the NumPy globals below (``numpy.core`` before NumPy 2,
    ``numpy._core`` after), and ``_codecs.encode`` is how Python 3 writes ``bytes`` at pickle
    protocol 2. Anything else a pickle asks for, such as ``os.system``, is refused before it runs.
    """

    ALLOWED = frozenset({
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _UnsafePickle(f"{module}.{name}")


class _UnsafePickle(pickle.UnpicklingError):
    """A pickle asked for an object outside :attr:`_CifarUnpickler.ALLOWED`."""


def _parse_batch(raw: bytes, label_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle (``train`` or ``test``) to ``uint8 (N, 32, 32, 3)`` and ``int64 (N,)``.

    ``data`` is ``(N, 3072)``: per image the red plane, then green, then blue, each 32x32
    row-major; the planes are moved last (HWC), as ``keras.datasets.cifar100`` does.
    """
    batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError(f"expected a dict, found {type(batch).__name__}")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[f"{label_mode}_labels".encode()], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"data {data.shape} and {len(labels)} labels are not CIFAR-100's layout")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _read_members(path: Path) -> dict[str, bytes]:
    """The bytes of ``train`` and ``test`` from the archive or the folder extracted from it."""
    if path.is_dir():
        folder = path / "cifar-100-python" if (path / "cifar-100-python").is_dir() else path
        return {name: (folder / name).read_bytes() for name in ("train", "test")}
    with tarfile.open(path, "r:*") as archive:
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
        return {name: archive.extractfile(members[name]).read() for name in ("train", "test")}


def cifar100_cache_path() -> Path:
    """Where the downloaded ``cifar-100-python.tar.gz`` is kept: ``EANET_HOME/data/``."""
    return eanet_home() / "data" / "cifar-100-python.tar.gz"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_cifar100() -> Path:
    """The cached archive, downloaded and hash-checked first if needed.

    The download goes to a temporary folder beside the cache and is moved into place only once
    its SHA-256 matches, so the cache never holds a partial or corrupt archive; a cached file
    that fails the check is removed and fetched again.
    """
    target = cifar100_cache_path()
    if target.exists():
        if _sha256(target) == CIFAR100_SHA256:
            return target
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".download-"))
    try:
        downloaded = keras.utils.get_file(
            fname=target.name, origin=CIFAR100_URL, file_hash=CIFAR100_SHA256,
            cache_dir=str(partial), cache_subdir=".")
        os.replace(downloaded, target)
    except ValueError as e:  # downloaded, but the hash does not match
        raise ValueError(f"The downloaded CIFAR-100 archive was corrupt and was removed ({e}); "
                         "run again to download it anew.") from e
    except Exception as e:  # get_file raises a bare Exception when the URL cannot be fetched
        raise ConnectionError(
            f"CIFAR-100 is not cached ({target}) and could not be downloaded ({e}). To go on "
            "offline: pass path= to a downloaded cifar-100-python.tar.gz (or its extracted "
            f"folder), copy that file to {target}, or set EANET_DATASET=digits to use the "
            "offline digits set."
        ) from e
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def load_cifar100(path: str | Path | None = None, label_mode: str = "fine") -> Arrays:
    """CIFAR-100 as ``(x_train, y_train), (x_test, y_test)``.

    Args:
        path: ``cifar-100-python.tar.gz`` or the folder extracted from it, read with no network.
            ``None`` downloads the archive once (checked against its SHA-256) into
            ``EANET_HOME/data`` and reads it from there.
        label_mode: ``"fine"`` (100 classes) or ``"coarse"`` (20 super-classes).

    Returns:
        ``uint8`` images ``(50000, 32, 32, 3)`` and ``(10000, 32, 32, 3)``, the same pixels as
        ``keras.datasets.cifar100.load_data()``, and ``int64`` labels ``(N,)`` (Keras returns
        them as ``(N, 1)``).

    Raises:
        ValueError: a file that is truncated, corrupt, not CIFAR-100, or whose pickle asks to
            run code (refused before anything in it runs).
        ConnectionError: ``path=None``, nothing cached and no network.
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode={label_mode!r} must be 'fine' or 'coarse'.")
    if path is None:
        path = _download_cifar100()
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; pass the path of cifar-100-python.tar.gz or of the folder "
            "extracted from it."
        )
    try:
        members = _read_members(path)
        (x_train, y_train), (x_test, y_test) = (
            _parse_batch(members[name], label_mode) for name in ("train", "test"))
    except _UnsafePickle as e:
        raise ValueError(
            f"Refusing to load {path}: its pickle asks for {e}, which CIFAR-100 never needs; "
            f"the file was tampered with. Download it again from {CIFAR100_URL}."
        ) from e
    except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError, KeyError,
            ValueError, TypeError) as e:
        raise ValueError(
            f"Cannot read CIFAR-100 from {path} ({type(e).__name__}: {e}): the file is "
            f"truncated, corrupt or not cifar-100-python. Download it again from {CIFAR100_URL}."
        ) from e
    return (x_train, y_train), (x_test, y_test)


# ----------------------------------------------------------------------------------------------
# Digits


def load_digits() -> Arrays:
    """scikit-learn's 1,797 handwritten digits (shipped with it, no network), a fixed split.

    Returns:
        ``uint8`` images ``(1437, 8, 8, 1)`` and ``(360, 8, 8, 1)`` scaled from ``0..16`` to
        ``0..255``, and ``int64`` labels ``(N,)``. The 20% test split is stratified and fixed
        (``random_state=0``), whatever the config's seed.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, stratify=labels, random_state=0)
    return (x_train, y_train), (x_test, y_test)


_LOADERS = {"cifar100": load_cifar100, "digits": load_digits}
_CLASS_NAMES = {"cifar100": CIFAR100_CLASSES, "digits": DIGITS_CLASSES}


def load_dataset(name: str) -> Arrays:
    """``(x_train, y_train), (x_test, y_test)`` of ``"cifar100"`` or ``"digits"``."""
    if name not in _LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(_LOADERS)}.")
    return _LOADERS[name]()


# ----------------------------------------------------------------------------------------------
# Augmentation

#: Random layers per data set (a missing entry means no such layer). CIFAR-100 takes the Keras
#: example's four. Digits keep only the contrast: a mirrored 3 is no digit, and at 8x8 pixels
#: even a small turn or zoom resamples the strokes away (on the ci budget, rotation 0.02 with
#: zoom 0.05 cost about 2.5 points of test accuracy).
AUGMENTATIONS: dict[str, dict[str, float | str]] = {
    "cifar100": {"flip": "horizontal", "rotation": 0.1, "contrast": 0.1, "zoom": 0.2},
    "digits": {"contrast": 0.1},
}


def _random_layers(dataset: str, seed: int) -> list[keras.layers.Layer]:
    if dataset not in AUGMENTATIONS:
        raise ValueError(f"No augmentation for dataset {dataset!r}; add it to AUGMENTATIONS.")
    spec = AUGMENTATIONS[dataset]
    makers = {
        "flip": lambda mode: keras.layers.RandomFlip(mode, seed=seed),
        "rotation": lambda factor: keras.layers.RandomRotation(factor, seed=seed + 1),
        # value_range is the raw pixel range: these layers see images before normalization.
        "contrast": lambda factor: keras.layers.RandomContrast(
            factor, value_range=(0, 255), seed=seed + 2),
        "zoom": lambda factor: keras.layers.RandomZoom(factor, factor, seed=seed + 3),
    }
    return [make(spec[name]) for name, make in makers.items() if spec.get(name)]


def augmentation(dataset: str, seed: int = 0) -> keras.Sequential:
    """The course's augmentation: raw ``float32 (B, H, W, C)`` in ``[0, 255]`` to the same."""
    return keras.Sequential(_random_layers(dataset, seed), name="augmentation")


def keras_example_augmentation(
    x_train: np.ndarray, dataset: str = "cifar100", seed: int = 0
) -> keras.Sequential:
    """The Keras 3 example's ``data_augmentation``: ``Normalization`` *then* the random layers.

    Kept to show its trap and to benchmark against: ``RandomContrast`` clips the already
    normalized values to ``[0, 255]`` in training only, so every negative value becomes 0.
    The normalization is adapted to ``x_train`` ``(N, H, W, C)``, as in the example.
    """
    normalization = keras.layers.Normalization()
    normalization.adapt(x_train)
    return keras.Sequential([normalization, *_random_layers(dataset, seed)],
                            name="data_augmentation")


# ----------------------------------------------------------------------------------------------
# Pipelines


@dataclass(frozen=True)
class Datasets:
    """The three batched pipelines of one config, and what is needed to feed the model.

    ``train``, ``validation`` and ``test`` yield ``(images, labels)``: normalized ``float32``
    ``(B, H, W, C)`` and one-hot ``float32 (B, num_classes)``. ``mean`` and ``std`` are the
    per-channel statistics ``(C,)`` of the training split's raw pixels.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """Raw images ``(B, H, W, C)`` (``uint8`` or ``0..255`` floats) to model inputs."""
        return _standardize(np.asarray(images, dtype=np.float32), self.mean, self.std)


def _standardize(images, mean: np.ndarray, std: np.ndarray):
    """``(images - mean) / std`` per channel, for NumPy arrays and tensors alike."""
    return (images - mean) / std


def make_datasets(config: EANetConfig, arrays: Arrays | None = None) -> Datasets:
    """Training, validation and test pipelines for ``config``.

    Args:
        config: its ``dataset``, ``batch_size``, ``validation_split``, ``num_classes`` and
            ``seed`` are used.
        arrays: ``(x_train, y_train), (x_test, y_test)`` to use instead of
            ``load_dataset(config.dataset)`` (``uint8`` images of ``config.input_shape``).

    The training images are shuffled with ``config.seed``; the last ``validation_split`` of
    them become the validation set (as ``fit(validation_split=...)`` takes the last ones).
    The training pipeline reshuffles every epoch, augments raw pixels, then normalizes; the
    others only normalize. Maps run in parallel and batches are prefetched.
    """
    (x_train, y_train), (x_test, y_test) = arrays or load_dataset(config.dataset)
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if x.shape[1:] != config.input_shape:
            raise ValueError(f"{name} has images of shape {x.shape[1:]} but the config expects "
                             f"{config.input_shape}; use config.replace(dataset=...).")
    order = np.random.default_rng(config.seed).permutation(len(x_train))
    n_val = int(round(len(x_train) * config.validation_split))
    fit_idx, val_idx = order[: len(order) - n_val], order[len(order) - n_val:]
    pixels = x_train[fit_idx].reshape(-1, config.channels).astype(np.float64)
    mean = pixels.mean(axis=0).astype(np.float32)
    std = np.maximum(pixels.std(axis=0), 1e-6).astype(np.float32)
    augment = augmentation(config.dataset, config.seed)

    def pipeline(x: np.ndarray, y: np.ndarray, training: bool) -> tf.data.Dataset:
        def prepare(images, labels):
            return (_standardize(tf.cast(images, tf.float32), mean, std),
                    tf.one_hot(labels, config.num_classes))

        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if training:
            # The random layers draw their seeds from a counter; parallel calls would race on
            # it, so this one map runs in order and the same seed gives the same augmentation.
            ds = ds.shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
            ds = ds.batch(config.batch_size).map(
                lambda images, labels: (augment(tf.cast(images, tf.float32), training=True),
                                        labels))
        else:
            ds = ds.batch(config.batch_size)
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    return Datasets(
        train=pipeline(x_train[fit_idx], y_train[fit_idx], training=True),
        validation=pipeline(x_train[val_idx], y_train[val_idx], training=False),
        test=pipeline(x_test, y_test, training=False),
        class_names=_CLASS_NAMES.get(config.dataset, ()),
        mean=mean,
        std=std,
    )
