"""Where the course keeps data, runs and benchmark results, and how it writes files safely.

Everything the course writes goes under ``EANET_HOME`` (default ``~/.cache/eanet-course``),
never into the repository.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["eanet_home", "atomic_write"]


def eanet_home() -> Path:
    """The course's cache folder: ``$EANET_HOME``, else ``~/.cache/eanet-course`` (created)."""
    home = Path(os.environ.get("EANET_HOME") or Path.home() / ".cache" / "eanet-course")
    home = home.expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"EANET_HOME {home} cannot be the course's folder ({e.strerror}); set "
                         "EANET_HOME to a folder you can write to, or unset it.") from None
    return home


def _umask() -> int:
    """The process's umask (read by setting it, then putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Open ``path`` for writing so that readers see the old file or the whole new one.

    The data go to a temporary file in the same folder, which is flushed, synced and renamed
    over ``path`` only when the ``with`` block ends without an error; on an error it is removed
    and ``path`` is left as it was. The new file gets the usual mode (``0666`` less the umask).
    ``mode`` is ``"w"`` (text) or ``"wb"`` (bytes).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode={mode!r} must be 'w' or 'wb'.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; give it the mode of any other new file (0644 under the
        # usual umask), so that a run folder's files all read alike.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
