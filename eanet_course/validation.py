"""The checks every entry point shares: integers, finite numbers, divisor hints, bounded files.

One helper per question, so that a NumPy integer is accepted wherever a Python one is (a config
field, a layer argument, a patch size for a plot) and every refusal reads the same way. The
helpers return plain Python values (``int``, ``float``), so what they checked can be written to
JSON (a ``.keras`` config, a run's ``config.json``).
"""

from __future__ import annotations

import math
import numbers
import os
import stat
from typing import BinaryIO

__all__ = ["FileRefused", "divisor_hint", "finite_real", "fraction", "is_integer",
           "open_regular", "positive_int", "read_bounded"]

#: ``divisor_hint`` tries divisors up to this bound only, so that a crafted size such as
#: ``embed_dim=10**15`` costs microseconds, not minutes.
_DIVISOR_SEARCH = 1 << 12
#: At most this many divisors are written into a message.
_DIVISORS_SHOWN = 12


def is_integer(value) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), not a ``bool`` (NumPy's is no
    ``numbers.Integral``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(owner: str, name: str, value, minimum: int = 1) -> int:
    """``value`` as a Python ``int`` if it is an integer ``>= minimum``, else a ``ValueError``.

    ``owner`` and ``name`` say where the value went, e.g. ``("ExternalAttention", "num_heads")``.
    """
    if not is_integer(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{owner}: {name} must be {what}, got {value!r}.")
    return int(value)


def finite_real(value) -> bool:
    """Whether ``value`` is a finite real number (Python or NumPy), not a ``bool``."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def fraction(owner: str, name: str, value) -> float:
    """``value`` as a Python ``float`` if it is a number in ``[0, 1)`` (a dropout rate)."""
    if not finite_real(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be a number in [0, 1), got {value!r}.")
    return float(value)


def divisor_hint(n: int) -> str:
    """The divisors of ``n`` for a message: all of them when few, else the smallest and largest.

    ``divisor_hint(30)`` is ``"[1, 2, 3, 5, 6, 10, 15, 30]"``. Only divisors up to 4096 and their
    co-divisors are searched (a few thousand steps whatever ``n``), so for a huge ``n`` the list
    may miss some and says so with ``...``.
    """
    n = int(n)
    if n < 1:
        return "[]"
    found = set()
    limit = min(math.isqrt(n), _DIVISOR_SEARCH)
    for d in range(1, limit + 1):
        if n % d == 0:
            found.update((d, n // d))
    shown = [str(d) for d in sorted(found)]
    if len(shown) > _DIVISORS_SHOWN:
        half = _DIVISORS_SHOWN // 2
        shown = [*shown[:half], "...", *shown[-half:]]
    elif limit < math.isqrt(n):
        shown.append("...")
    return "[" + ", ".join(shown) + "]"


class FileRefused(ValueError):
    """A file refused before it was read (a device, a pipe, a file over its size limit)."""


def open_regular(path: str | os.PathLike, what: str, fix: str) -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file (``FileRefused`` if not).

    Devices (``/dev/zero``), pipes, sockets and folders are refused without being read; a pipe
    is opened without blocking, so that a pipe with no writer cannot hang the caller. ``what``
    names the file in the message (e.g. ``"a CSVLogger file"``) and ``fix`` says what to do
    instead. ``FileNotFoundError`` when ``path`` does not exist.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise FileRefused(f"{os.fspath(path)} is not a regular file, so it cannot be {what}; "
                          f"{fix}")
    return handle


def read_bounded(path: str | os.PathLike, limit: int, what: str, fix: str) -> bytes:
    """The bytes of the regular file ``path``, refused before reading if over ``limit`` bytes.

    As :func:`open_regular`, and a file that holds more than ``limit`` bytes, or grows past it
    while being read, raises ``FileRefused`` too.
    """
    with open_regular(path, what, fix) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise FileRefused(f"{os.fspath(path)} holds {size:,} bytes, more than {what} can "
                              f"({limit:,}); {fix}")
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise FileRefused(f"{os.fspath(path)} grew past {limit:,} bytes while being read; {fix}")
    return content
