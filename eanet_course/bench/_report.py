"""What every benchmark records beside its figures: the machine it ran on, and where it saves.

Shared by :mod:`~eanet_course.bench.attention`, :mod:`~eanet_course.bench.training` and
:mod:`~eanet_course.bench.limits`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import keras
import tensorflow as tf

from eanet_course.paths import eanet_home


def machine() -> str:
    """One line naming the CPU, its cores, the OS, and the TensorFlow and Keras versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    return (f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()}; "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}")


def out_dir(path: str | Path | None) -> Path:
    """``path``, or ``$EANET_HOME/bench`` when it is ``None``: where results are saved."""
    return Path(path) if path is not None else eanet_home() / "bench"
