"""Tiny CIFAR-100 files in the real layout, written by the tests themselves (no network).

The real ``cifar-100-python.tar.gz`` holds ``cifar-100-python/{train,test,meta}``: pickled
dicts with ``bytes`` keys, ``data`` a ``uint8`` array ``(N, 3072)`` of channel planes (red, then
green, then blue, each 32x32 row-major) and lists of labels.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def cifar_batch(images: np.ndarray, fine: np.ndarray, coarse: np.ndarray,
                protocol: int = 2) -> bytes:
    """One pickled batch of ``images`` ``uint8 (N, 32, 32, 3)``, as CIFAR-100 stores it.

    Python 3 writes ``bytes`` at protocol 2 as latin-1 text, stored in UTF-8: the pixels take
    about 1.5 times their size. The real files (Python 2) store them raw, as protocols 3 and 4
    do here: use ``protocol=4`` for a file of the real size.
    """
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)
    return pickle.dumps({
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
        b"batch_label": b"training batch 1 of 1",
        b"fine_labels": [int(v) for v in fine],
        b"coarse_labels": [int(v) for v in coarse],
        b"data": np.ascontiguousarray(planes),
    }, protocol=protocol)


def random_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, 100, size=n), rng.integers(0, 20, size=n)


def write_cifar(root: Path, as_tar: bool = True, n_train: int = 6, n_test: int = 4,
                members: dict[str, bytes] | None = None, protocol: int = 2
                ) -> tuple[Path, dict]:
    """Write a tiny CIFAR-100 (archive or extracted folder) under ``root``.

    Returns the path to pass to ``load_cifar100`` and the arrays it should give back.
    ``members`` replaces some files' bytes (to write a tampered one).
    """
    splits = {"train": random_split(n_train, 0), "test": random_split(n_test, 1)}
    files = {name: cifar_batch(*arrays, protocol=protocol) for name, arrays in splits.items()}
    files["meta"] = pickle.dumps({b"fine_label_names": [b"apple"]}, protocol=2)
    files.update(members or {})
    if as_tar:
        path = root / "cifar-100-python.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(f"cifar-100-python/{name}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    else:
        path = root / "cifar-100-python"
        path.mkdir(parents=True)
        for name, data in files.items():
            (path / name).write_bytes(data)
    return path, splits


# --- hostile files --------------------------------------------------------------------------
# Each writes one file that CIFAR-100 cannot be, cheaply: a bomb's gigabyte of zeros is written
# as a few hundred concatenated gzip members of 1 MiB each (a valid gzip stream).

MIB = 1 << 20


def _gzip_zeros(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes (``size`` a multiple of 1 MiB), about 1 KiB per MiB."""
    return gzip.compress(bytes(MIB), compresslevel=9) * (size // MIB)


def _header(name: str, size: int, type_: bytes = tarfile.REGTYPE, **pax) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.pax_headers = size, type_, pax
    return info.tobuf(tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT)


def write_gzip_bomb(path: Path, header: bytes, zeros: int) -> Path:
    """A ``.tar.gz``: one tar ``header`` followed by ``zeros`` zero bytes (and the end blocks)."""
    path.write_bytes(gzip.compress(header) + _gzip_zeros(zeros) + gzip.compress(bytes(1024)))
    return path


def write_bomb_member(root: Path, name: str = "train", zeros: int = 1 << 30) -> Path:
    """CIFAR's ``name`` member holding ``zeros`` bytes of zeros: 1 GiB in about 1 MB of gzip."""
    return write_gzip_bomb(root / "bomb.tar.gz", _header(f"cifar-100-python/{name}", zeros),
                           zeros)


def write_bomb_long_name(root: Path, zeros: int = 1 << 30) -> Path:
    """A GNU long-name header that declares ``zeros`` bytes of name (tarfile reads it whole)."""
    return write_gzip_bomb(root / "long_name.tar.gz",
                           _header("././@LongLink", zeros, tarfile.GNUTYPE_LONGNAME), zeros)


def write_sparse_member(root: Path, real_size: int = 1 << 30) -> Path:
    """A pax sparse ``train``: no data stored, ``real_size`` zero bytes when read."""
    header = _header("cifar-100-python/train", 0, **{"GNU.sparse.map": f"{real_size - 1},1",
                                                   "GNU.sparse.size": str(real_size)})
    path = root / "sparse.tar.gz"
    path.write_bytes(gzip.compress(header + bytes(512) + bytes(1024)))
    return path


def write_link_member(root: Path, target: str = "/dev/zero") -> Path:
    """An archive whose ``train`` and ``test`` are symbolic links to ``target``."""
    path = root / "links.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name in ("train", "test"):
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


class Reduce:
    """Pickles as a call of ``function(*args)`` (then ``__setstate__(state)``), at any depth."""

    def __init__(self, function, args, state=None):
        self.call = (function, args) if state is None else (function, args, state)

    def __reduce__(self):
        return self.call


def reduce_pickle(function, args, state=None) -> bytes:
    """A protocol-2 pickle that is one :class:`Reduce` call."""
    return pickle.dumps(Reduce(function, args, state), protocol=2)


def batch_with(**changes) -> bytes:
    """A valid pickled ``train`` of 4 images with some of its dict's entries replaced."""
    images, fine, coarse = random_split(4, 0)
    batch = pickle.loads(cifar_batch(images, fine, coarse), encoding="bytes")
    batch.update({key.encode(): value for key, value in changes.items()})
    return pickle.dumps(batch, protocol=2)
