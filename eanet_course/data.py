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
import math
import os
import pickle
import pickletools
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import keras
import numpy as np
import tensorflow as tf

from eanet_course.config import EANetConfig
from eanet_course.paths import eanet_home
from eanet_course.validation import FileRefused, open_regular, read_bounded

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


#: The most bytes each CIFAR-100 pickle may hold. The real ones hold 50,000 and 10,000 images of
#: 3,072 bytes (153,600,000 and 30,720,000 bytes of pixels) plus labels and file names; the
#: caps leave 5% over the pixels. Larger members are refused before a byte of them is read.
MEMBER_LIMITS: dict[str, int] = {"train": 161_280_000, "test": 32_256_000}
#: Any other archive entry (``meta``, the folder itself) and any extended tar header (a long
#: name, a pax header) may hold at most this many bytes.
_SMALL_ENTRY_LIMIT = 1 << 20
#: The most archive entries read while looking for ``train`` and ``test`` (CIFAR-100 has a few).
_MAX_ENTRIES = 16
#: The most pickle opcodes in one file, and the largest memo index. A CIFAR-100 pickle takes a
#: few per image (a file name, its memo slot, two labels); 1,000,000 leaves room for 50,000
#: images several times over, and bounds what a crafted file can build one opcode at a time.
_MAX_OPCODES = 1_000_000

#: Opcodes of pickle protocols 0 to 4 that build plain data. Left out: the ones that build other
#: objects (INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID), sets and bytearrays,
#: and out-of-band buffers, none of which CIFAR-100's pickles use.
_DATA_OPCODES = frozenset("""
PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG
LONG1 LONG4 FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8
UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 EMPTY_LIST APPEND APPENDS LIST EMPTY_TUPLE TUPLE
TUPLE1 TUPLE2 TUPLE3 EMPTY_DICT DICT SETITEM SETITEMS GET BINGET LONG_BINGET PUT BINPUT
LONG_BINPUT MEMOIZE GLOBAL STACK_GLOBAL REDUCE BUILD
""".split())


class _Hostile(ValueError):
    """A file that CIFAR-100 cannot be, refused before it is read further."""


class _UnsafePickle(pickle.UnpicklingError):
    """A pickle asked for an object outside :attr:`_CifarUnpickler` 's allowed globals."""


def _prescan_pickle(raw: bytes) -> None:
    """Walk a pickle's opcodes (``pickletools.genops``) without building anything.

    Refuses an opcode outside :data:`_DATA_OPCODES`, more than :data:`_MAX_OPCODES` of them, a
    memo index or frame larger than the file could fill, and a length that runs past the end
    of the file: the unpickler would otherwise allocate what such an opcode asks for (a memo
    of ``2**32`` slots, a buffer of ``2**63`` bytes) before noticing the file is too short.
    """
    try:
        for count, (opcode, arg, pos) in enumerate(pickletools.genops(raw)):
            if count >= _MAX_OPCODES:
                raise _Hostile(f"its pickle has more than {_MAX_OPCODES:,} opcodes")
            if opcode.name not in _DATA_OPCODES:
                raise _Hostile(f"its pickle uses the opcode {opcode.name} (at byte {pos}), "
                               "which CIFAR-100 never needs")
            if opcode.name.endswith("PUT") and arg >= _MAX_OPCODES:
                raise _Hostile(f"its pickle asks for memo slot {arg:,} (at byte {pos})")
            if opcode.name == "FRAME" and arg > len(raw) - pos:
                raise _Hostile(f"its pickle declares a frame of {arg:,} bytes (at byte {pos}), "
                               "longer than the file")
    except ValueError as e:  # genops: a length past the end, an unknown opcode, no STOP
        if isinstance(e, _Hostile):
            raise
        raise _Hostile(f"its pickle is malformed ({e})") from e


def _latin1(text, encoding):
    """``_codecs.encode`` as Python 3 pickles ``bytes`` (protocol 2): latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _UnsafePickle(f"_codecs.encode(..., {encoding!r})")
    return text.encode("latin-1")


class _Uint8:
    """Stands for ``numpy.dtype("u1")`` while unpickling, CIFAR-100's only dtype.

    The pickled dtype state (byte order, fields, flags) is never applied to a real dtype: a
    crafted object dtype makes NumPy's ``__setstate__`` crash the interpreter.
    """

    def __setstate__(self, state) -> None:
        """Whatever the state says, this is ``uint8``."""


def _uint8(spec, align=False, copy=True) -> _Uint8:
    if spec not in ("u1", b"u1"):
        raise _UnsafePickle(f"numpy.dtype({spec!r})")
    return _Uint8()


class _ArrayState:
    """Stands for a ``uint8`` NumPy array while unpickling; :meth:`array` builds it once checked.

    NumPy pickles an array as ``_reconstruct(ndarray, (0,), b"b")`` followed by
    ``__setstate__((1, shape, dtype, is_fortran, raw_bytes))``.
    """

    state: tuple = ()

    def __setstate__(self, state) -> None:
        self.state = state

    def array(self) -> np.ndarray:
        if not isinstance(self.state, tuple) or len(self.state) != 5:
            raise _Hostile("its array has no NumPy array state")
        version, shape, dtype, fortran, raw = self.state
        if not (version == 1 and isinstance(dtype, _Uint8) and fortran in (False, 0)
                and isinstance(raw, bytes) and isinstance(shape, tuple)
                and all(type(n) is int and n >= 0 for n in shape)
                and math.prod(shape) == len(raw)):
            raise _Hostile(f"its array state (shape {shape!r}, {type(raw).__name__} of "
                           f"{len(raw) if isinstance(raw, bytes) else '?'} bytes) is not a "
                           "uint8 array's")
        # Checked: NumPy's own __setstate__ now builds the array, on the bytes (no copy).
        array = np.ndarray((0,), np.uint8)
        array.__setstate__((1, shape, np.dtype(np.uint8), False, raw))
        return array


def _reconstruct(subtype, shape, dtype) -> _ArrayState:
    if subtype is not _NDARRAY or shape != (0,) or dtype != b"b":
        raise _UnsafePickle(f"numpy _reconstruct({shape!r}, {dtype!r})")
    return _ArrayState()


class _NdarrayMarker:
    """What ``numpy.ndarray`` unpickles to: never the class, whose call would allocate any shape
    the pickle asks for. It may only be passed to ``_reconstruct``."""

    def __call__(self, *args, **kwargs):
        raise _UnsafePickle("a direct call of numpy.ndarray")


_NDARRAY = _NdarrayMarker()


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain containers, numbers, strings, bytes and ``uint8`` arrays, nothing else.

    CIFAR-100's python files are pickled dicts holding one ``uint8`` NumPy array and lists. The
    globals that rebuild them (``numpy.core`` before NumPy 2, ``numpy._core`` after;
    ``_codecs.encode`` is how Python 3 writes ``bytes`` at protocol 2) are replaced by stand-ins
    that accept only CIFAR's own arguments; anything else a pickle asks for, such as
    ``os.system``, is refused before it runs. The bytes the calls produce are counted against
    the file's own size (:attr:`budget`).
    """

    ALLOWED = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _uint8,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    }

    def __init__(self, raw: bytes) -> None:
        super().__init__(io.BytesIO(raw), encoding="bytes")
        self.size = len(raw)
        #: The bytes that ``_codecs.encode`` calls may still produce. A real file's calls never
        #: produce more than the file holds (each encodes a string stored in it, once), so a
        #: pickle that encodes a stored string again and again is refused before it allocates.
        self.budget = len(raw)

    def _encode(self, text, encoding):
        if isinstance(text, str):
            if len(text) > self.budget:  # latin-1: one byte per character
                raise _Hostile(f"its pickle's calls would produce more bytes than the file "
                               f"holds ({self.size:,})")
            self.budget -= len(text)
        return _latin1(text, encoding)

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return self._encode
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        raise _UnsafePickle(f"{module}.{name}")


def _labels(batch: dict, key: bytes, count: int, num_classes: int) -> np.ndarray:
    """``batch[key]``, a list of ``count`` class indices in ``0 .. num_classes - 1``, as int64."""
    labels = batch.get(key)
    if not isinstance(labels, list) or not all(type(v) is int for v in labels):
        raise _Hostile(f"its {key.decode()} are not a list of integers")
    if len(labels) != count:
        raise _Hostile(f"it has {count} images but {len(labels)} {key.decode()}")
    if labels and not (min(labels) >= 0 and max(labels) < num_classes):
        raise _Hostile(f"its {key.decode()} run from {min(labels)} to {max(labels)}, outside "
                       f"0 .. {num_classes - 1}")
    return np.array(labels, dtype=np.int64)


def _parse_batch(raw: bytes, label_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle (``train`` or ``test``) to ``uint8 (N, 32, 32, 3)`` and ``int64 (N,)``.

    ``data`` is ``(N, 3072)``: per image the red plane, then green, then blue, each 32x32
    row-major; the planes are moved last (HWC), as ``keras.datasets.cifar100`` does.
    """
    _prescan_pickle(raw)
    batch = _CifarUnpickler(raw).load()
    if not isinstance(batch, dict) or not isinstance(batch.get(b"data"), _ArrayState):
        raise _Hostile("it is not a dict holding a 'data' array")
    data = batch[b"data"].array()
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or not len(data):
        raise _Hostile(f"its data {data.shape} is not CIFAR-100's layout (N, 3072), N >= 1")
    labels = _labels(batch, f"{label_mode}_labels".encode(), len(data),
                     100 if label_mode == "fine" else 20)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class _CheckedTarInfo(tarfile.TarInfo):
    """``tarfile``'s header parser, refusing what it would otherwise read without a bound.

    ``tarfile`` reads an extended header (a GNU long name, a pax header) whole into memory, and
    follows a sparse member's map block by block, before its caller sees the member. CIFAR-100
    has neither sparse members nor large headers: both are refused in ``tarfile``'s own hooks
    (``_proc_member`` and the ``_proc_*sparse*`` methods, present since Python 3.2).
    """

    _EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                 tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)

    def _proc_member(self, archive):
        if self.type in self._EXTENDED and self.size > _SMALL_ENTRY_LIMIT:
            raise _Hostile(f"it has a tar header of {self.size:,} bytes")
        return super()._proc_member(archive)

    def _refuse_sparse(self, *args):
        # A pax header processes the member that follows it, passed as the first argument.
        member = args[0] if args and isinstance(args[0], tarfile.TarInfo) else self
        raise _Hostile(f"its member {member.name!r} is sparse")

    _proc_sparse = _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


def _read_archive(handle) -> dict[str, bytes]:
    """The bytes of ``train`` and ``test`` from the open archive ``handle``, read in one pass.

    Each entry's size is checked as soon as its header is read, before its bytes are read or
    skipped, so at most :data:`MEMBER_LIMITS` plus a few small entries are ever decompressed.
    """
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=handle, mode="r:*", tarinfo=_CheckedTarInfo) as archive:
        for _ in range(_MAX_ENTRIES):
            member = archive.next()
            if member is None:
                break
            name = PurePosixPath(member.name).name
            if name in MEMBER_LIMITS and name not in found:
                if not member.isreg():
                    raise _Hostile(f"its member {member.name!r} is not a regular file")
                if member.size > MEMBER_LIMITS[name]:
                    raise _Hostile(f"its member {member.name!r} declares {member.size:,} "
                                   f"bytes, more than CIFAR-100's ({MEMBER_LIMITS[name]:,})")
                found[name] = archive.extractfile(member).read()
                if len(found) == len(MEMBER_LIMITS):
                    return found
            elif member.size > _SMALL_ENTRY_LIMIT:
                raise _Hostile(f"its entry {member.name!r} declares {member.size:,} bytes")
    missing = sorted(set(MEMBER_LIMITS) - set(found))
    raise _Hostile(f"no {' or '.join(missing)} among its first {_MAX_ENTRIES} entries")


def _read_members(path: Path) -> dict[str, bytes]:
    """The bytes of ``train`` and ``test`` from the archive or the folder extracted from it."""
    fix = "pass cifar-100-python.tar.gz or the folder extracted from it."
    if path.is_dir():
        folder = path / "cifar-100-python" if (path / "cifar-100-python").is_dir() else path
        return {name: read_bounded(folder / name, limit, f"CIFAR-100's {name} file", fix)
                for name, limit in MEMBER_LIMITS.items()}
    with open_regular(path, "a CIFAR-100 archive", fix) as handle:
        return _read_archive(handle)


def cifar100_cache_path() -> Path:
    """Where the downloaded ``cifar-100-python.tar.gz`` is kept: ``EANET_HOME/data/``."""
    return eanet_home() / "data" / "cifar-100-python.tar.gz"


#: The most bytes of a cached ``cifar-100-python.tar.gz`` (the real one: 169,001,437).
ARCHIVE_LIMIT = 200_000_000


def _sha256(path: Path, fix: str) -> str:
    """The SHA-256 of the regular file ``path`` of at most :data:`ARCHIVE_LIMIT` bytes."""
    digest = hashlib.sha256()
    with open_regular(path, "the cached CIFAR-100 archive", fix) as f:
        size = os.fstat(f.fileno()).st_size
        if size > ARCHIVE_LIMIT:
            raise FileRefused(f"{path} holds {size:,} bytes, more than the CIFAR-100 archive "
                              f"({ARCHIVE_LIMIT:,}); {fix}")
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_cifar100() -> Path:
    """The cached archive, downloaded and hash-checked first if needed.

    The download goes to a temporary folder beside the cache and is moved into place only once
    its SHA-256 matches, so the cache never holds a partial or corrupt archive; a cached file
    that fails the check is removed (every message after that says so) and fetched again. A
    cached pipe, device or oversized file is refused unread.
    """
    target = cifar100_cache_path()
    removed = ""
    if target.exists():
        found = _sha256(target, f"delete {target}; the course then downloads it again.")
        if found == CIFAR100_SHA256:
            return target
        target.unlink()
        removed = (f"; the cached {target} had the SHA-256 {found[:12]}..., not CIFAR-100's "
                   f"{CIFAR100_SHA256[:12]}..., and was removed")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".download-"))
    try:
        downloaded = keras.utils.get_file(
            fname=target.name, origin=CIFAR100_URL, file_hash=CIFAR100_SHA256,
            cache_dir=str(partial), cache_subdir=".")
        os.replace(downloaded, target)
    except ValueError as e:  # downloaded, but the hash does not match
        raise ValueError(f"The downloaded CIFAR-100 archive was corrupt and was removed "
                         f"({e}{removed}); run again to download it anew.") from e
    except Exception as e:  # get_file raises a bare Exception when the URL cannot be fetched
        raise ConnectionError(
            f"CIFAR-100 is not cached ({target}{removed}) and could not be downloaded ({e}). "
            "To go on offline: pass path= to a downloaded cifar-100-python.tar.gz (or its "
            f"extracted folder), copy that file to {target}, or set EANET_DATASET=digits to use "
            "the offline digits set."
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
            run code (refused before anything in it runs); a device, pipe or member larger than
            CIFAR-100's (refused before it is read: see :data:`MEMBER_LIMITS`); labels out of
            range. Every failure is this one error, naming the fix.
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
    except FileRefused:
        raise  # names the file and the fix already
    except _UnsafePickle as e:
        raise ValueError(
            f"Refusing to load {path}: its pickle asks for {e}, which CIFAR-100 never needs; "
            f"the file was tampered with. Download it again from {CIFAR100_URL}."
        ) from e
    except _Hostile as e:
        raise ValueError(
            f"Refusing to load {path}: {e}, so it is not cifar-100-python (damaged or crafted). "
            f"Download it again from {CIFAR100_URL}."
        ) from e
    except (tarfile.TarError, EOFError, OSError, zlib.error, pickle.UnpicklingError, KeyError,
            ValueError, TypeError, AttributeError, IndexError, OverflowError, RecursionError,
            MemoryError) as e:
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


def _checked_split(config: EANetConfig, split: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    """``x`` images ``(N, *config.input_shape)`` and ``y`` labels ``(N,)`` (or Keras's
    ``(N, 1)``), checked: at least one image, finite pixels, integer labels of the config's
    classes. Returns them as arrays, labels flattened to ``(N,)``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape[1:] != config.input_shape:
        raise ValueError(f"x_{split} has images of shape {x.shape[1:]} but the config expects "
                         f"{config.input_shape}; use config.replace(dataset=...).")
    if not len(x):
        raise ValueError(f"x_{split} holds no images; pass at least one image per split.")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ValueError(f"x_{split} has {np.size(x) - np.isfinite(x).sum()} NaN or infinite "
                         "pixels; pass raw pixels in [0, 255] (uint8), e.g. from load_dataset.")
    if not np.issubdtype(y.dtype, np.integer) or y.shape not in ((len(x),), (len(x), 1)):
        raise ValueError(
            f"y_{split} must hold one integer class per image, shape ({len(x)},), got "
            f"{y.dtype} of shape {y.shape}; pass class indices (one-hot labels: "
            "labels.argmax(-1)).")
    y = y.reshape(-1)
    if y.min() < 0 or y.max() >= config.num_classes:
        raise ValueError(
            f"y_{split} runs from {y.min()} to {y.max()}, but num_classes={config.num_classes} "
            f"means classes 0 .. {config.num_classes - 1}; pass class indices of this data set "
            "(or config.replace(num_classes=...)).")
    return x, y


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
    x_train, y_train = _checked_split(config, "train", x_train, y_train)
    x_test, y_test = _checked_split(config, "test", x_test, y_test)
    order = np.random.default_rng(config.seed).permutation(len(x_train))
    n_val = int(round(len(x_train) * config.validation_split))
    if not 0 < n_val < len(x_train):
        raise ValueError(
            f"x_train has {len(x_train)} images: validation_split={config.validation_split} "
            f"leaves {n_val} for validation and {len(x_train) - n_val} for training; pass more "
            "images or change validation_split so that both get at least one."
        )
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
