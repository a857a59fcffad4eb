"""The course website (``make book``): built offline with warnings as errors, then checked.

The module builds the site once (``book/build.py``: Sphinx ``-W --keep-going``; notebooks run
under the ``ci`` profile unless the jupyter-cache in ``_build/book`` already holds their current
code), then checks what a reader gets: a page for every notebook and exercise, every internal link
and anchor resolving, a figure on every notebook page, numbered, with a caption and alt text, the
labels, launch buttons, the API reference, the README's tables, no solution anywhere on the site,
and, in headless Chromium with the network cut off, the landing page and notebook 04 rendered at
a desktop's width and a phone's, nothing wider than the screen (screenshots in
``test-output/book/``).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))


def _load(path: Path):
    """Import a file as a module under its own name (``book/build.py`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"book_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


book_build = _load(ROOT / "book" / "build.py")
import readme_sections  # noqa: E402  (book/_ext/readme_sections.py)
from test_browser import CHROMIUM, CHROMIUM_ARGS, _playwright_chromium  # noqa: E402

HTML = book_build.HTML
SHOTS = ROOT / "test-output" / "book"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# The launch buttons' repository, for the build under test (book/conf.py reads it).
REPOSITORY = "https://github.com/example/eanet-course"

pytestmark = pytest.mark.timeout(1800)  # a first build executes every notebook


@pytest.fixture(scope="module")
def site() -> Path:
    """Build the site (a no-op for notebooks the cache already holds); returns the HTML folder."""
    done = subprocess.run([sys.executable, str(ROOT / "book" / "build.py")], cwd=ROOT,
                          capture_output=True, text=True,
                          env={**os.environ, "EANET_REPOSITORY": REPOSITORY})
    log = done.stdout + done.stderr
    print(log[-2000:])
    assert done.returncode == 0, f"the site does not build without warnings:\n{log[-6000:]}"
    return HTML


@functools.cache
def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _text(node) -> str:
    """The text of an HTML node, whitespace folded (highlighted code splits into many spans)."""
    return " ".join(node.get_text(" ").split())


def _page(site: Path, source: Path) -> Path:
    return site / source.parent.name / (source.stem + ".html")


def _article(site: Path, source: Path):
    return _soup(_page(site, source)).select_one("article.bd-article")


# ---- the README sections that make the landing and measured pages (no build needed) ----------

def test_readme_sections_are_chosen_by_title_and_relinked():
    text = ("# Title\nintro [a](notebooks/x.ipynb)\n## One\nfirst\n```bash\n## not a section\n```\n"
            "## Measured: two\n[b](https://example.org) [c](#anchor) ![d](docs/e.png)\n")
    assert readme_sections.select(text, "intro").strip() == "intro [a](notebooks/x.ipynb)"
    one = readme_sections.select(text, "^One$")
    assert "## not a section" in one and "Measured" not in one
    measured = readme_sections.relink(readme_sections.select(text, "^Measured"), "book")
    assert "](https://example.org)" in measured and "](#anchor)" in measured
    assert "](../docs/e.png)" in measured
    with pytest.raises(Exception, match="no section matching 'Gone'.*'One', 'Measured: two'"):
        readme_sections.select(text, "Gone")


# ---- the build and its pages -------------------------------------------------------------

def test_every_notebook_exercise_and_the_glossary_has_a_page(site):
    sources = [*NOTEBOOKS, *EXERCISES]
    glossary = ROOT / "notebooks" / "GLOSSARY.md"
    if glossary.exists():
        sources.append(glossary)
    missing = [s.relative_to(ROOT) for s in sources if not _page(site, s).is_file()]
    assert NOTEBOOKS and not missing, f"no page for {missing}"
    landing = _soup(site / "book" / "index.html")
    linked = {unquote(a["href"]).split("#")[0]
              for a in landing.select("nav a[href], article a[href]")}
    unlisted = [s.relative_to(ROOT) for s in sources
                if f"../{s.parent.name}/{s.stem}.html" not in linked]
    assert not unlisted, f"the landing page does not link to {unlisted}"


def test_landing_page_says_what_the_course_is_and_how_to_start(site):
    text = _text(_soup(site / "book" / "index.html").select_one("article"))
    for words in ("external attention", "Who it is for", "make lab", "make test", "syllabus"):
        assert words.lower() in text.lower(), f"the landing page lacks {words!r}"
    assert (site / "index.html").read_text().count('url=book/index.html') == 1


def _targets(page: Path):
    """``(attribute value, tag)`` of every href and src on ``page``."""
    for tag in _soup(page).find_all(href=True):
        yield tag["href"], tag
    for tag in _soup(page).find_all(src=True):
        yield tag["src"], tag


@functools.cache
def _ids(page: Path) -> set[str]:
    soup = _soup(page)
    return ({t["id"] for t in soup.find_all(id=True)}
            | {t["name"] for t in soup.find_all("a", attrs={"name": True})})


def test_every_internal_link_and_anchor_resolves(site):
    # The theme's _static/*.html are Jinja templates it ships, not pages.
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)
    broken, checked = [], 0
    for page in pages:
        for value, _tag in _targets(page):
            if SCHEME.match(value) or value.startswith("//"):
                continue  # external: not fetched (tests never use the network)
            path, fragment = urldefrag(value)
            path = unquote(urlsplit(path).path)
            target = (page.parent / path).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file() or site.resolve() not in target.parents:
                broken.append(f"{page.relative_to(site)}: {value}")
            elif fragment and target.suffix == ".html" and unquote(fragment) not in _ids(target):
                broken.append(f"{page.relative_to(site)}: {value} (no such anchor)")
    assert checked > 100, f"only {checked} internal links were found: is the site empty?"
    assert not broken, "broken internal links:\n" + "\n".join(broken)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_page_shows_a_figure_and_its_profile(site, notebook):
    article = _article(site, notebook)
    figures = [img for img in article.find_all("img") if "_images/" in img["src"]]
    assert figures, f"{notebook.name}: its page shows no figure"
    for img in figures:
        assert (_page(site, notebook).parent / unquote(img["src"])).is_file(), img["src"]
    label = _text(article.select_one(".course-label"))
    assert "ci" in label and "profile" in label


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_are_numbered_per_page_with_a_caption_and_alt_text(site, notebook):
    figures = _article(site, notebook).select("figure")
    pictures = [f for f in figures if f.find("img", src=re.compile("_images/"))]
    assert pictures, f"{notebook.name}: no figure"
    for number, figure in enumerate(pictures, start=1):
        caption = _text(figure.figcaption) if figure.figcaption else ""
        alt = figure.img.get("alt", "")
        assert caption.startswith(f"Figure {number}:"), (number, caption)
        assert len(caption) > len(f"Figure {number}: ") + 10, caption
        assert len(alt) > 10 and "_images" not in alt and not alt.endswith(".png"), alt


# Maths in a notebook's markdown: $...$ or $$...$$ outside code spans (myst's dollarmath).
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\s][^$\n]*?\$", re.S)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_formula_is_typeset_by_mathjax(site, notebook):
    markdown = " ".join("".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]
                        if cell["cell_type"] == "markdown")
    formulas = MATH.findall(re.sub(r"`[^`\n]*`", "", markdown))
    typeset = _article(site, notebook).select(".math")
    assert len(typeset) >= len(formulas), f"{len(formulas)} formulas, {len(typeset)} typeset"
    if formulas:
        scripts = [urlsplit(tag["src"]).path for tag in _soup(_page(site, notebook))
                   .select("script[src]") if "mathjax" in tag["src"].lower()]
        assert scripts == ["../_static/mathjax/tex-chtml.js"], f"MathJax from {scripts}"
        assert (HTML / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_the_profile_note_is_folded_to_one_line(site):
    note = _article(site, NOTEBOOKS[0]).select_one(".course-label")
    assert note.name == "details" and "open" not in note.attrs
    assert "ci profile" in _text(note.summary) and len(_text(note.summary)) < 80


def test_notebook_pages_launch_on_binder_and_colab_from_the_repository(site):
    notebook = NOTEBOOKS[0]
    path = f"notebooks/{notebook.name}"
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    links = {a["href"] for a in _soup(_page(site, notebook)).find_all("a", href=True)}
    assert f"https://mybinder.org/v2/gh/{owner_repo}/main?urlpath=lab/tree/{path}" in links
    assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/{path}" in links


def test_the_header_is_not_an_empty_bar_with_a_second_search_box(site):
    soup = _soup(_page(site, NOTEBOOKS[0]))
    header = soup.select_one("header.bd-header")
    assert header is None or not header.find(True), "the header bar is back"
    assert len(soup.select("form.bd-search")) == 1, "one search box"


def _all(module: str) -> list[str]:
    """``module.__all__``, read from its source (importing would start TensorFlow)."""
    path = ROOT.joinpath(*module.split("."))
    source = (path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).read_text()
    tree = ast.parse(source)
    return next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(target, "id", None) == "__all__" for target in node.targets))


def test_the_api_reference_documents_every_public_name(site):
    """Every class and function (every name but the CONSTANTS) in ``__all__`` of the modules the
    API page lists has an entry there."""
    page = site / "book" / "api.html"
    modules = re.findall(r"^\.\. automodule:: (eanet_course\.[\w.]+)$",
                         (ROOT / "book" / "api.md").read_text(), re.M)
    assert len(modules) >= 10
    ids = _ids(page)
    public = [(m, name) for m in modules for name in _all(m) if not name.isupper()]  # no CONSTANTS
    assert len(public) > 50
    missing = [f"{m}.{name}" for m, name in public if f"{m}.{name}" not in ids]
    assert not missing, f"not on the API page: {missing}"
    external = _soup(page).find(id="eanet_course.layers.ExternalAttention").find_parent("dl")
    assert "(B, N, embed_dim)" in _text(external), "the docstrings' shapes are shown"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_widgets_are_on_the_page_with_their_state_and_a_note(site, notebook):
    """A notebook that displays widgets gets their saved state on its page, and the note."""
    html = _page(site, notebook).read_text(encoding="utf-8")
    views = html.count('type="application/vnd.jupyter.widget-view+json"')
    label = _text(_article(site, notebook).select_one(".course-label"))
    if views == 0:
        assert "live kernel" not in label
        return
    state = _soup(_page(site, notebook)).find(
        "script", attrs={"type": "application/vnd.jupyter.widget-state+json"})
    models = json.loads(state.string)["state"]
    for view in re.findall(r'widget-view\+json">(.*?)</script>', html, re.S):
        assert json.loads(view)["model_id"] in models, "a widget's saved state is missing"
    assert "live kernel is needed to move them" in label


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda p: p.stem)
def test_exercise_pages_are_unexecuted_and_say_so(site, exercise):
    article = _article(site, exercise)
    assert "Solutions are not on this website" in _text(article.select_one(".course-label"))
    assert not article.select(".cell_output"), f"{exercise.name}: its page shows outputs"


def _solution_blocks(path: Path) -> list[str]:
    """The code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, whitespace-folded."""
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                     if c["cell_type"] == "code")
    blocks = re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", code, re.S)
    return [" ".join(b.split()) for b in blocks if len(" ".join(b.split())) > 40]


def test_no_solution_is_on_the_site(site):
    files = [p for p in site.rglob("*") if p.is_file()]
    assert not [p for p in files if "solutions" in p.relative_to(site).parts]
    text = {p: p.read_text(encoding="utf-8", errors="ignore") for p in files
            if p.suffix in {".html", ".ipynb", ".txt", ".js", ".md", ".py"}}
    assert not [p for p, t in text.items() if "BEGIN SOLUTION" in t]
    pages = " ".join(_text(_soup(p)) for p in files if p.suffix == ".html")
    blocks = [(s.name, b) for s in SOLUTIONS for b in _solution_blocks(s)]
    assert blocks or not SOLUTIONS, "no solution region found: has the marker convention changed?"
    leaked = [(name, block[:80]) for name, block in blocks if block in pages]
    assert not leaked, f"solution code on the site: {leaked}"


def _readme_tables(pattern: str) -> list[list[str]]:
    """The data rows of the markdown tables in the README sections matching ``pattern``."""
    text = readme_sections.select((ROOT / "README.md").read_text(), pattern)
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[re.sub(r"[`*]", "", c).strip() for c in r.strip("|").split("|")] for r in rows
            if not re.fullmatch(r"[|:\- ]+", r)]


@pytest.mark.parametrize("page, pattern", [("index", "^The syllabus$"), ("measured", "^Measured")])
def test_the_readme_tables_are_on_the_site(site, page, pattern):
    expected = _readme_tables(pattern)
    typography = str.maketrans("\u2018\u2019\u201c\u201d", "''\"\"")  # Sphinx's smart quotes
    shown = [[cell.get_text(" ", strip=True).translate(typography)
              for cell in tr.find_all(["td", "th"])]
             for tr in _soup(site / "book" / f"{page}.html").select("article table tr")]
    assert expected and all(row in shown for row in expected), (expected, shown)


def test_every_executed_notebook_is_cached_for_the_next_build(site):
    """A second ``make book`` re-executes nothing: the cache holds every notebook's code."""
    from jupyter_cache import get_cache

    cache = get_cache(book_build.OUT / "jupyter_cache")
    uncached = []
    for notebook in NOTEBOOKS:
        try:
            cache.match_cache_file(notebook)
        except KeyError:
            uncached.append(notebook.name)
    assert not uncached, f"not cached: {uncached}"


# ---- in a browser, offline ---------------------------------------------------------------

# Loaded by the pages at view time, never at build time: the Jupyter widgets' HTML manager
# (with require.js) for saved widgets. Offline it is refused; the pages render without it.
# MathJax is the site's own (_static/mathjax), so formulas are typeset offline.
VIEW_TIME_HOSTS = {"cdn.jsdelivr.net", "cdnjs.cloudflare.com"}
# What a phone would clip: the page scrolling sideways, or the article, a figure or a saved
# widget (when drawn) wider than its box without its own scroll bar.
CLIPPED = """() => {
    const root = document.documentElement, wide = [];
    if (root.scrollWidth > root.clientWidth) wide.push(`page ${root.scrollWidth}px`);
    for (const el of document.querySelectorAll(
            "article.bd-article, article figure, article img, .jupyter-widgets")) {
        const box = el.getBoundingClientRect();
        if (box.right > root.clientWidth + 1 || el.scrollWidth > el.clientWidth + 1)
            wide.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(box.right)}px`);
    }
    return wide;
}"""


@pytest.fixture(scope="module")
def served(site):
    """The site on http://127.0.0.1:PORT/ from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.mark.skipif(CHROMIUM is None and not _playwright_chromium(),
                    reason="No Chromium: run scripts/ensure-chromium.sh (make test does).")
def test_landing_page_and_notebook_04_render_offline_in_chromium(served):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    refused: list[str] = []

    def offline(route):
        host = urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", offline)
            page.goto(served, wait_until="load")  # the root sends the browser to the landing page
            page.wait_for_url("**/book/index.html")
            assert page.locator("article h1").first.inner_text().strip() == "EANet, hands on"
            assert page.locator("nav.bd-docs-nav a").count() >= len(NOTEBOOKS)
            page.screenshot(path=SHOTS / "landing.png")

            page.goto(served + "notebooks/04_double_normalization.html", wait_until="load")
            figures = page.locator("article img[src*='_images/']")
            assert figures.count() >= 1
            widths = figures.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
            assert all(widths), f"figures that did not load: {widths}"
            assert page.locator(".course-label").first.is_visible()
            # Formulas typeset by the site's own MathJax, with the network cut.
            page.locator("mjx-container").first.wait_for(state="attached", timeout=30_000)
            assert page.locator("mjx-container").count() >= page.locator(".math").count() > 0
            page.screenshot(path=SHOTS / "04_double_normalization.png", full_page=True)

            # On a phone (390 px wide): no page wider than the screen, the note one line high.
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.route("**/*", offline)
            pages = ["book/index.html", "book/measured.html", "book/api.html",
                     *(f"{s.parent.name}/{s.stem}.html" for s in [*NOTEBOOKS, *EXERCISES])]
            wide = {}
            for path in pages:
                phone.goto(served + path, wait_until="load")
                if overflow := phone.evaluate(CLIPPED):
                    wide[path] = overflow
            assert not wide, f"wider than a 390 px screen: {wide}"
            phone.goto(served + "notebooks/08_attention_maps.html", wait_until="load")
            phone.screenshot(path=SHOTS / "08_attention_maps_phone.png")
            note = phone.locator(".course-label").first.bounding_box()
            assert note["height"] < 120, f"the folded note is {note['height']} px high"
        finally:
            browser.close()
    hosts = {urlsplit(url).hostname for url in refused}
    assert not [url for url in refused if "mathjax" in url.lower()], "MathJax from a CDN"
    assert hosts <= VIEW_TIME_HOSTS, f"the pages asked for unexpected hosts: {sorted(hosts)}"
    print(f"\nscreenshots in {SHOTS}; refused view-time requests: {sorted(set(refused))}")


def test_tensorflow_start_up_log_is_dropped_and_other_stderr_kept():
    import course_pages
    from docutils import nodes
    from docutils.utils import new_document

    document = new_document("page")
    noise = ("WARNING: All log messages before absl::InitializeLog() is called are written to "
             "STDERR\nI0000 00:00:1795962724.658389   13046 port.cc:153] oneDNN custom ops\n")
    for text in (noise, noise + "UserWarning: a warning the learner should see\n"):
        output = nodes.container("", nodes.literal_block(text, text, classes=["output", "stderr"]))
        document += output
    course_pages.drop_tensorflow_log(document)
    assert [block.astext() for block in document.findall(nodes.literal_block)] == [
        "UserWarning: a warning the learner should see\n"]
    assert len(document.children) == 1
