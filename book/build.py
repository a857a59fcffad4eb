"""Build the course website into ``_build/book/html``: ``python book/build.py`` (``make book``).

Sphinx with warnings as errors (``-W --keep-going``: every warning is reported, then the build
fails), the configuration in ``book/conf.py``, the repository root as the source folder. Prints
the build time; notebooks whose code has not changed since the last build are not executed again
(their outputs come from the cache in ``_build/book/jupyter_cache``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sphinx.cmd.build import build_main

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
OUT = ROOT / "_build" / "book"
HTML = OUT / "html"


def build() -> int:
    """Build the site; returns Sphinx's exit status (0: built, no warning)."""
    start = time.perf_counter()
    status = build_main(["-W", "--keep-going", "-q", "-b", "html", "-c", str(BOOK),
                         "-d", str(OUT / "doctrees"), str(ROOT), str(HTML)])
    outcome = "built" if status == 0 else "FAILED"
    print(f"book: {outcome} in {time.perf_counter() - start:.0f} s; open {HTML / 'index.html'}")
    return status


if __name__ == "__main__":
    sys.exit(build())
