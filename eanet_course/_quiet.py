"""TensorFlow, quietly: its C++ start-up chatter hidden, every warning and error kept.

Importing TensorFlow prints, on a CPU machine, about eight lines of C++ logging to the process's
stderr (absl's "All log messages before absl::InitializeLog()" notice, then ``I…`` lines: oneDNN
is on, no CUDA driver, the CPU's instructions), and its first operation adds an ``E…`` line,
"failed call to cuInit", when there is no GPU driver at all. None of it is about the course.

:func:`install` (run by ``import eanet_course``, before TensorFlow when the package is imported
first; ``make setup`` also makes every Python of the course's virtualenv import the package at
start-up, so that a notebook's ``import keras`` comes after it) does two things, only while
TensorFlow is not imported yet:

1. ``TF_CPP_MIN_LOG_LEVEL`` defaults to ``2`` (TensorFlow's C++ warnings and errors stay, its
   information lines go) or, on a machine with no NVIDIA driver, to ``3`` (its C++ errors are
   then about the missing CUDA, which a CPU machine does not use). A value the user set wins.
2. While ``tensorflow`` is imported, the process's stderr (file descriptor 2, where the C++ log
   goes) is collected; afterwards every line is written back except the start-up ``I…`` lines and
   absl's notice before them (:data:`START_UP_LINE`). Python warnings and ``W``/``E`` lines stay.
   With ``TF_CPP_MIN_LOG_LEVEL=0`` (the user asking for everything) nothing is filtered.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["START_UP_LINE", "has_gpu_driver", "install"]

# absl's notice, printed before TensorFlow initialises its logger, and glog-style information
# lines ("I0000 00:00:1795962724.658389  13046 port.cc:153] oneDNN custom operations are on...").
START_UP_LINE = re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"
                           r"|^I\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] ")
# Where a GPU driver shows itself: Linux's NVIDIA driver, and WSL's GPU paravirtualisation.
_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")


def has_gpu_driver() -> bool:
    """Whether this machine has an NVIDIA (or WSL GPU) driver loaded, so CUDA could work."""
    return any(os.path.exists(path) for path in _DRIVER_PATHS)


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Collect file descriptor 2; then write back every line but :data:`START_UP_LINE`'s."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr (pythonw, closed fd)
        yield
        return
    with tempfile.TemporaryFile() as collected:
        os.dup2(collected.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()  # Python's own writes during the import, in their order
            os.dup2(saved, 2)
            os.close(saved)
            collected.seek(0)
            lines = collected.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not START_UP_LINE.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with stderr filtered, then steps aside."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__spec__.loader = module.__loader__ = self._loader  # TensorFlow sees its own
        with _filtered_stderr():
            self._loader.exec_module(module)


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, as the next finders do, and wraps its loader."""

    def find_spec(self, name: str, path=None, target=None):
        if name != "tensorflow":
            return None
        _uninstall()
        spec = importlib.util.find_spec(name)  # by the finders after this one
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TensorFlowFinder)]


def install() -> None:
    """Quiet TensorFlow's start-up, if it is not imported yet (see the module's docstring)."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if has_gpu_driver() else "3")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() == "0":
        return
    if not any(isinstance(f, _TensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TensorFlowFinder())
