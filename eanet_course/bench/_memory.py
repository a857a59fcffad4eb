"""Measure in fresh processes, and read the peak memory of TensorFlow's tensors there.

:func:`fresh_processes` forks every call from a clean server that has only imported the
libraries (a ``multiprocessing`` fork server): no call can pollute the next, and the import is
paid once. In such a process :func:`use_pooling_allocator` switches TensorFlow's CPU memory to
its pooling (BFC) allocator, which reuses memory from step to step (so timings measure the maths,
not the operating system handing out pages) and counts the bytes held by tensors, which
:func:`peak_tensor_mb` reads.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import tensorflow as tf

__all__ = ["fresh_processes", "peak_tensor_mb", "use_pooling_allocator"]

_DEVICE = "CPU:0"


@contextmanager
def fresh_processes(preload: Sequence[str]) -> Iterator[Callable[..., object]]:
    """Yield ``call(fn, *args)``, which runs ``fn(*args)`` in a new process and returns its result.

    ``preload`` names the modules the fork server imports once (e.g. ``["tensorflow"]``); ``fn``
    must be a module-level function and its arguments picklable.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    with context.Pool(1, maxtasksperchild=1) as pool:
        yield lambda fn, *args: pool.apply(fn, args)


def use_pooling_allocator() -> None:
    """Make TensorFlow use its pooling CPU allocator; effective only before the first tensor."""
    os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"


def peak_tensor_mb(fn: Callable[..., object], *args: object) -> float:
    """Run ``fn(*args)``; return the MB (10^6 bytes) its tensors added at their peak to what was held before.

    Needs :func:`use_pooling_allocator` called before the process made its first tensor.
    """
    try:
        tf.config.experimental.reset_memory_stats(_DEVICE)
    except ValueError as error:
        raise RuntimeError(
            "TensorFlow keeps no memory statistics here: call use_pooling_allocator() in a fresh "
            "process before any tensor is made (see fresh_processes)."
        ) from error
    before = tf.config.experimental.get_memory_info(_DEVICE)["current"]
    fn(*args)
    return (tf.config.experimental.get_memory_info(_DEVICE)["peak"] - before) / 1e6
