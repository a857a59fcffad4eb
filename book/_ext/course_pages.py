"""Labels on the course's pages: what a reader sees is a saved run, not a live notebook.

Under its title, every notebook page says that its outputs come from one run with the ``ci``
profile; a page with saved widgets says that moving them needs a live kernel; every exercise page
says that it is shown as the learner gets it, without outputs, and that solutions are not on the
site. The labels are docutils notes added when Sphinx reads a page (``doctree-read``). The same
hook drops TensorFlow's C++ start-up log lines from the pages' stderr outputs (they say nothing
about the course, and vary with the machine); every other stderr line stays.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

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


def _code(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def notebook_label(profile: str, has_widgets: bool) -> nodes.note:
    """The note on a notebook page: the profile of its outputs, and what its widgets need."""
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
    return _note(*lines)


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


def _label(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.docname
    if Path(app.env.doc2path(docname)).suffix != ".ipynb":
        return
    drop_tensorflow_log(doctree)
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
    app.connect("doctree-read", _label)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
