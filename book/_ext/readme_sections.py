"""Pages made of README sections: one source for the landing page and the measured tables.

A line ``<!-- readme: PATTERN -->`` in a page under ``book/`` is replaced, as Sphinx reads the
page, by every section of ``README.md`` (a ``## `` heading and its text, up to the next one)
whose title matches the regular expression ``PATTERN`` (``re.search``); the pattern ``intro``
stands for the text between the README's title and its first section. Relative links are
rewritten so that they still point where they pointed from the repository root. A pattern that
matches nothing stops the build: a renamed README section must not empty a page silently.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

MARKER = re.compile(r"^<!-- readme: (?P<pattern>.+?) -->$", re.MULTILINE)
# A markdown link or image target that is relative: not a URL, an anchor or a site-absolute path.
RELATIVE_LINK = re.compile(r"(\]\()(?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)")
INTRO = "intro"


def split_sections(text: str) -> list[tuple[str, str]]:
    """``(title, text)`` for the intro (title ``intro``) and every ``## `` section of ``text``.

    Headings inside fenced code blocks are not sections. The README's ``# `` title is dropped.
    """
    sections: list[tuple[str, list[str]]] = [(INTRO, [])]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            sections.append((line[3:].strip(), [line]))
        elif not fenced and line.startswith("# ") and len(sections) == 1:
            continue
        else:
            sections[-1][1].append(line)
    return [(title, "\n".join(lines).strip() + "\n") for title, lines in sections]


def select(text: str, pattern: str) -> str:
    """The README sections whose titles match ``pattern``, joined; raises if there is none."""
    intro, *sections = split_sections(text)
    if pattern == INTRO:
        chosen = [intro[1]] if intro[1].strip() else []
    else:
        chosen = [body for title, body in sections if re.search(pattern, title)]
    if not chosen:
        raise ExtensionError(
            f"README.md has no section matching {pattern!r}; its sections are "
            f"{[title for title, _ in sections]}. Fix the <!-- readme: ... --> line or the "
            "heading.")
    return "\n".join(chosen)


def relink(markdown: str, folder: str) -> str:
    """Rewrite relative link targets (relative to the repository root) for a page in ``folder``."""
    def move(match: re.Match) -> str:
        return match.group(1) + posixpath.relpath(match.group(2), folder)
    return RELATIVE_LINK.sub(move, markdown)


def _fill(app: Sphinx, docname: str, source: list[str]) -> None:
    if not MARKER.search(source[0]):
        return
    readme = Path(app.srcdir) / "README.md"
    app.env.note_dependency(str(readme))
    text = readme.read_text(encoding="utf-8")
    folder = posixpath.dirname(docname)
    source[0] = MARKER.sub(lambda m: relink(select(text, m.group("pattern")), folder or "."),
                           source[0])


def setup(app: Sphinx) -> dict:
    app.connect("source-read", _fill)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
