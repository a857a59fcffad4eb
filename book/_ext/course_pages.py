"""Labels and figures on the course's pages: what a reader sees is a saved run, not a notebook.

Under its title, every notebook page says, in a note folded to one line (open it for the rest),
that its outputs come from one run with the ``ci`` profile; a page with saved widgets adds that
moving them needs a live kernel; every exercise page says that it is shown as the learner gets it,
without outputs, and that solutions are not on the site. The labels are added when Sphinx reads a
page (``doctree-read``). The same hook:

- numbers the figures of each page (Figure 1, 2, ...) and gives each a caption and alt text: the
  caption a notebook cell sets itself (myst-nb's ``mystnb: figure: caption`` metadata) when there
  is one, else the summary line of the :mod:`eanet_course.viz` function the cell calls, else the
  first sentence of the text just above the cell;
- drops TensorFlow's C++ start-up log lines from the pages' stderr outputs (they say nothing
  about the course, and vary with the machine); every other stderr line stays.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

from eanet_course import viz
from eanet_course.config import get_profile

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# TensorFlow's C++ logger: glog-style lines ("I0000 00:00:1795962724.658389  13046 port.cc:153]
# oneDNN custom operations are on...") and absl's notice before it is initialised.
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "
                         r"|^WARNING: All log messages before absl::InitializeLog\(\) is called")


def _note(*paragraphs: list[nodes.Node]) -> nodes.note:
    """A note of one paragraph per list of inline nodes."""
    return nodes.note("", *(nodes.paragraph("", "", *inline) for inline in paragraphs),
                      classes=["course-label"])


class folded(nodes.General, nodes.Element):
    """A note folded to its summary line (HTML ``<details>``); its children are the rest."""


def _visit_folded(self, node: folded) -> None:
    self.body.append(f'<details class="admonition note {" ".join(node["classes"])}">'
                     f'<summary>{self.encode(node["summary"])}</summary>')


def _depart_folded(self, node: folded) -> None:
    self.body.append("</details>")


def _code(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def notebook_label(profile: str, has_widgets: bool) -> folded:
    """The note on a notebook page, folded: the profile of its outputs, what its widgets need."""
    config = get_profile(profile)
    lines = [[nodes.Text("The outputs and figures on this page come from one run of the notebook "
                         "with the "), _code(profile),
              nodes.Text(f" profile ({config.dataset} images of {config.image_size}x"
                         f"{config.image_size} pixels, {config.num_blocks} blocks of width "
                         f"{config.embed_dim}, {config.epochs} epochs), as CI runs it. "
                         "With the "),
              _code("laptop"), nodes.Text(" or "), _code("paper"),
              nodes.Text(" profile the numbers and pictures differ: run the notebook to see "
                         "yours.")]]
    if has_widgets:
        lines.append([nodes.Text("The widgets on this page are shown in the state in which they "
                                 "were saved (drawn by the Jupyter widgets' JavaScript, which the "
                                 "page loads from a CDN: offline they do not appear), and do not "
                                 "move here: a live kernel is needed to move them (run the "
                                 "notebook in JupyterLab, "),
                      _code("make lab"), nodes.Text(", or on Binder).")])
    return folded("", *(nodes.paragraph("", "", *inline) for inline in lines),
                  summary=f"Outputs from one run with the {profile} profile"
                          + (", widgets as saved" if has_widgets else ""),
                  classes=["course-label"])


def exercise_label() -> nodes.note:
    """The note on an exercise page."""
    return _note([nodes.Text("This exercise is shown as you get it, without outputs: open it in "
                             "JupyterLab ("), _code("make lab"),
                  nodes.Text(") or on Binder to write and check your answers. Solutions are not "
                             "on this website.")])


def _has_widgets(doctree: nodes.document) -> bool:
    return any(WIDGET_VIEW in node.astext() for node in doctree.findall(nodes.raw))


def drop_tensorflow_log(doctree: nodes.document) -> None:
    """Remove TensorFlow's C++ log lines from stderr outputs; remove outputs left empty."""
    for block in list(doctree.findall(nodes.literal_block)):
        if "stderr" not in block["classes"]:
            continue
        kept = [line for line in block.astext().splitlines(keepends=True)
                if not TF_LOG_LINE.match(line)]
        if "".join(kept).strip():
            block.children = [nodes.Text("".join(kept))]
        else:
            container = block.parent
            container.remove(block)
            if not container.children and container.parent is not None:
                container.parent.remove(container)


# Markup in docstrings and markdown that a caption shows as plain text.
_MARKUP = re.compile(r":\w+:`~?([^`]*)`|``([^`]*)``|`([^`]*)`|\*\*([^*]*)\*\*|\*([^*]*)\*")
# A sentence ends at . ! or ? before a capital, except after "al.", "e.g.", "i.e." or a
# three-letter abbreviation ("Ann. Math.").
_SENTENCE_END = re.compile(r"(?<![A-Z][a-z][a-z]\.)(?<!\bal\.)(?<!e\.g\.)(?<!i\.e\.)"
                           r"(?<=[.!?])\s+(?=[A-Z(])")
_LONGEST = 200  # characters of the text above a caption quotes


def _plain(text: str) -> str:
    """``text`` without reST/markdown markup, whitespace folded."""
    return " ".join(_MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None),
                                text).split())


def _first_sentence(text: str) -> str:
    sentence = _SENTENCE_END.split(_plain(text), maxsplit=1)[0].rstrip(":")
    if len(sentence) > _LONGEST:
        sentence = sentence[:_LONGEST].rsplit(" ", 1)[0] + "\u2026"
    return sentence if sentence.endswith((".", "!", "?", "\u2026")) else sentence + "."


def _viz_summary(code: str) -> str | None:
    """What the one figure-drawing :mod:`eanet_course.viz` function in ``code`` draws: its
    docstring's summary line, up to its first colon, semicolon or parenthesis."""
    drawers = {name for name in re.findall(r"\bviz\.(\w+)\(", code)
               if "Figure" in str(inspect.signature(getattr(viz, name, len)).return_annotation)}
    if len(drawers) != 1:
        return None
    summary = _plain((inspect.getdoc(getattr(viz, drawers.pop())) or "").split("\n\n")[0])
    form = re.split(r"[:;]|\.(?:\s|$)| \(", summary)[0].strip()
    return form + "." if form else None


def _text_above(cell: nodes.Element) -> str | None:
    """The first sentence of the last paragraph before ``cell`` in its section, if any."""
    for sibling in reversed(cell.parent.children[:cell.parent.index(cell)]):
        if isinstance(sibling, nodes.section):
            return None
        paragraphs = list(sibling.findall(nodes.paragraph)) if isinstance(
            sibling, nodes.Element) and "cell" not in sibling.get("classes", []) else []
        if paragraphs:
            return _first_sentence(paragraphs[-1].astext())
    return None


def caption_figures(doctree: nodes.document) -> int:
    """Number the figures of the page's cell outputs, with captions and alt text; returns N."""
    number = 0
    for cell in list(doctree.findall(lambda n: isinstance(n, nodes.container)
                                     and n.get("nb_element") == "cell_code")):
        images = [img for img in cell.findall(nodes.image)]
        if not images:
            continue
        code = next((b.astext() for b in cell.findall(nodes.literal_block)), "")
        form, context = _viz_summary(code), _text_above(cell)
        # The alt text says what the picture is; the caption adds what the text above says.
        alt = form or context or "A figure drawn by the cell above."
        caption = f"{form} {context}" if form and context else alt
        for position, image in enumerate(images, start=1):
            number += 1
            label = f"Figure {number}"
            existing = image.parent if isinstance(image.parent, nodes.figure) else None
            if existing is not None and list(existing.findall(nodes.caption)):
                set_caption = next(existing.findall(nodes.caption))
                set_caption.insert(0, nodes.Text(f"{label}: "))
                image["alt"] = image.get("alt") or _plain(set_caption.astext())
                continue
            part = f" (part {position} of {len(images)})" if len(images) > 1 else ""
            image["alt"] = alt[:-1] + part + alt[-1]
            figure = nodes.figure("", ids=[f"figure-{number}"], classes=["course-figure"])
            image.replace_self(figure)
            figure += image
            figure += nodes.caption("", f"{label}: {caption[:-1]}{part}{caption[-1]}")
    return number


def _label(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.docname
    if Path(app.env.doc2path(docname)).suffix != ".ipynb":
        return
    drop_tensorflow_log(doctree)
    caption_figures(doctree)
    folder = docname.partition("/")[0]
    if folder == "notebooks":
        label = notebook_label(app.config.course_profile, _has_widgets(doctree))
    elif folder == "exercises":
        label = exercise_label()
    else:
        return
    section = next(doctree.findall(nodes.section), None)
    if section is None:
        raise ValueError(f"{docname} has no title: the course's pages open with one")
    section.insert(1, label)


def setup(app: Sphinx) -> dict:
    app.add_config_value("course_profile", "ci", "env", types=[str])
    # Set by conf.py from the code of book/_ext: a change there re-reads every page.
    app.add_config_value("course_extensions_digest", "", "env", types=[str])
    app.add_node(folded, html=(_visit_folded, _depart_folded))
    app.connect("doctree-read", _label)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
