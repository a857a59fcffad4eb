"""Tiny CIFAR-100 files in the real layout, written by the tests themselves (no network).

The real ``cifar-100-python.tar.gz`` holds ``cifar-100-python/{train,test,meta}``: pickled
dicts with ``bytes`` keys, ``data`` a ``uint8`` array ``(N, 3072)`` of channel planes (red, then
green, then blue, each 32x32 row-major) and lists of labels.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def cifar_batch(images: np.ndarray, fine: np.ndarray, coarse: np.ndarray) -> bytes:
    """One pickled batch of ``images`` ``uint8 (N, 32, 32, 3)``, as CIFAR-100 stores it."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)
    return pickle.dumps({
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
        b"batch_label": b"training batch 1 of 1",
        b"fine_labels": [int(v) for v in fine],
        b"coarse_labels": [int(v) for v in coarse],
        b"data": np.ascontiguousarray(planes),
    }, protocol=2)


def random_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, 100, size=n), rng.integers(0, 20, size=n)


def write_cifar(root: Path, as_tar: bool = True, n_train: int = 6, n_test: int = 4,
                members: dict[str, bytes] | None = None) -> tuple[Path, dict]:
    """Write a tiny CIFAR-100 (archive or extracted folder) under ``root``.

    Returns the path to pass to ``load_cifar100`` and the arrays it should give back.
    ``members`` replaces some files' bytes (to write a tampered one).
    """
    splits = {"train": random_split(n_train, 0), "test": random_split(n_test, 1)}
    files = {name: cifar_batch(*arrays) for name, arrays in splits.items()}
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
