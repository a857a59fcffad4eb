"""Sphinx configuration of the course website: ``make book`` builds it into ``_build/book/``.

The source folder is the repository root (``sphinx-build -c book . _build/book/html``), so the
pages are the course's own files, gathered by pattern: every ``notebooks/NN_*.ipynb`` (executed
once, with the ``ci`` profile, and cached), every ``exercises/NN_*.ipynb`` (shown as the learner
gets it, not executed), ``notebooks/GLOSSARY.md`` and ``notebooks/MEASURED.md`` when present,
and the pages under ``book/`` (the landing page and the measured tables, made of README
sections, and the API reference, made of the package's docstrings). ``solutions/`` is never
read. Nothing is fetched at build time: Sphinx, myst-nb and sphinx-book-theme ship every file.

Launch buttons (Binder, Colab) on the notebook pages point at the public copy of the repository
named by ``EANET_REPOSITORY`` (``https://github.com/OWNER/REPO``) or, when it is not set, by the
``origin`` remote of the git checkout when that is on GitHub; with neither the pages have none.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
sys.path[:0] = [str(BOOK / "_ext"), str(ROOT)]

# The notebooks run in kernels started by this process: the pages show the `ci` profile, as
# CI runs it, whatever the caller's environment says (the pages are labelled with it).
PROFILE = "ci"
os.environ["EANET_PROFILE"] = PROFILE
os.environ.pop("EANET_DATASET", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

project = "EANet, hands on"
author = "the eanet-course authors"
copyright = "the eanet-course authors, Apache-2.0"

# MathJax from the site itself (sphinx-mathjax-offline copies MathJax 3 into _static), so that
# formulas are typeset offline too.
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx-mathjax-offline",
              "readme_sections", "course_pages"]
course_profile = PROFILE
course_extensions_digest = hashlib.sha256(
    b"".join(p.read_bytes() for p in sorted((BOOK / "_ext").glob("*.py")))).hexdigest()

root_doc = "book/index"
include_patterns = [
    "book/*.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "notebooks/GLOSSARY.md",
    "notebooks/MEASURED.md",
    "exercises/[0-9][0-9]_*.ipynb",
]
# Never walked: hidden folders (.venv, .git), build outputs, the solutions.
exclude_patterns = [".*", "**/.*", "_build", "test-output", "solutions", "instructor",
                    "**/.ipynb_checkpoints"]

# Markdown: $...$ maths as in Jupyter, and anchors for headings so that `page.md#title` resolves.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Execution: each notebook once, in its own folder, cached by its code (jupyter-cache under
# _build/book/): a second build re-executes only the notebooks whose code changed. An error in
# a cell stops the build, as it fails CI. Exercises are shown unexecuted: running them is the
# learner's part.
nb_execution_mode = "cache"
nb_execution_cache_path = str(ROOT / "_build" / "book" / "jupyter_cache")
nb_execution_excludepatterns = ["exercises/*"]
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

html_theme = "sphinx_book_theme"
html_title = "EANet, hands on"
# The site opens at the landing page: a root index.html that sends the browser to book/index.html.
html_extra_path = ["_root"]
html_static_path = ["_static"]
html_css_files = ["course.css"]


def _repository() -> str | None:
    """``https://github.com/OWNER/REPO`` from $EANET_REPOSITORY or git's origin, else None."""
    address = os.environ.get("EANET_REPOSITORY", "").strip()
    if not address:
        try:
            address = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"],
                                     capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            address = ""
    found = re.fullmatch(r"(?:https://github\.com/|git@github\.com:)([\w.-]+/[\w.-]+?)(?:\.git)?/?",
                         address)
    if address and not found and "EANET_REPOSITORY" in os.environ:
        raise ValueError(f"EANET_REPOSITORY={address!r} is not a GitHub repository address; "
                         "write it as https://github.com/OWNER/REPO.")
    return f"https://github.com/{found.group(1)}" if found else None


REPOSITORY = _repository()
html_theme_options = {
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    # sphinx-book-theme 1.4 on pydata-sphinx-theme 0.20: without it the header is an empty bar
    # with a second search box.
    "navbar_persistent": [],
}
if REPOSITORY:
    html_theme_options |= {
        "repository_url": REPOSITORY,
        "repository_branch": os.environ.get("EANET_REPOSITORY_BRANCH", "main"),
        "path_to_docs": "",
        "launch_buttons": {"binderhub_url": "https://mybinder.org",
                           "colab_url": "https://colab.research.google.com",
                           "notebook_interface": "jupyterlab"},
    }

# The API reference (book/api.md): the package's docstrings, Google style ("Args:", "Returns:").
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Keras layers document their call() arguments apart from the constructor's.
napoleon_custom_sections = [("Call arguments", "params_style")]
