# Two commands: `make lab` opens the course, `make test` runs every test.
# Each installs what its role needs, first, into .venv (idempotent: it reinstalls only when
# pyproject.toml or constraints.txt changes), with the versions of constraints.txt:
#   make lab         the learner's install: the package and its dependencies, nothing else
#   make book        + the site's tools (the [book] extra)
#   make instructor  + nbgrader (the [instructor] extra; Python 3.11 or newer)
#   make test        + the test tools, the site's tools and nbgrader (the [dev] extra)
# `make constraints` moves constraints.txt to the newest releases pyproject.toml allows.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make CONSTRAINTS= lab` installs without the pins (e.g. on a Python they were not tested on).
CONSTRAINTS ?= constraints.txt
INSTALL := $(BIN)/python -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
# Jupyter refuses to run as root unless told; CI containers run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# What CI runs: the offline profile, TensorFlow's log noise silenced.
TEST_ENV := EANET_PROFILE=ci TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore::DeprecationWarning
# Every Python of .venv imports eanet_course when it starts (a .pth file), so that TensorFlow's
# C++ start-up log is quiet even where a notebook imports keras first (eanet_course/_quiet.py).
QUIET_PTH := import importlib.util as u; u.find_spec("eanet_course") and __import__("eanet_course")

.PHONY: setup lab test exercises instructor clean book constraints

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(INSTALL) -e .
	$(BIN)/python -c "import pathlib, sys, sysconfig; pathlib.Path(sysconfig.get_path('purelib'), \
		'eanet_course_quiet.pth').write_text(sys.argv[1] + '\n')" '$(QUIET_PTH)'
	touch $@

# One stamp per extra, each on top of the learner's install.
$(VENV)/.installed-%: $(VENV)/.installed
	$(INSTALL) -e ".[$*]"
	touch $@

lab: setup
	$(BIN)/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir=. notebooks/00_setup_and_data.ipynb

# Package tests, every notebook, solution and exercise under nbval, and the browser test, in
# TEST_JOBS processes (pytest-xdist; one per core, at most 4: each holds TensorFlow and a kernel).
# A file's tests run in one process, in order (--dist loadfile): a notebook's cells share a kernel.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 4 ? 4 : n )))
test: $(VENV)/.installed-dev
	scripts/ensure-chromium.sh $(BIN)/python
	scripts/ensure-bubblewrap.sh
	$(TEST_ENV) $(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --durations=15 \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600 --timeout=900 \
		tests notebooks solutions exercises

# The course as a website, built offline into _build/book/html (notebooks run once under the ci
# profile and are cached in _build/book; tests/test_book.py, part of `make test`, checks it).
book: $(VENV)/.installed-book
	$(TEST_ENV) $(BIN)/python book/build.py

exercises: setup
	$(BIN)/python -m eanet_course exercises build

# Instructors: every assignment of the nbgrader course in instructor/ generated into
# instructor/release/, ready to hand out (see "For instructors" in the README).
instructor: $(VENV)/.installed-instructor
	@$(BIN)/python -c "import nbgrader" 2>/dev/null || { echo "nbgrader is not installed:" \
		"it needs Python 3.11 or newer (make clean && make PYTHON=python3.11 instructor)"; exit 1; }
	$(BIN)/python -m eanet_course exercises check
	cd instructor && PATH="$(abspath $(BIN)):$$PATH" nbgrader generate_assignment --force "*"
	@echo "Released copies: instructor/release/. Next: cd instructor, then nbgrader autograde," \
		"generate_feedback, export with $(abspath $(BIN)) on the PATH."

# Instructors: autograde every submission of assignment A in instructor/submitted/, each in a
# sandbox (make autograde A=01_patches; see "For instructors" in the README).
.PHONY: autograde
autograde: $(VENV)/.installed-instructor
	@test -n "$(A)" || { echo "usage: make autograde A=ASSIGNMENT (e.g. A=01_patches)"; exit 2; }
	scripts/ensure-bubblewrap.sh
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m eanet_course grade "$(A)" --course instructor

# Newer versions: upgrade .venv to the newest releases pyproject.toml allows and pin them in
# constraints.txt (scripts/refresh-constraints.py). Then `make test`; commit it when it passes.
constraints: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ".[dev]"
	$(BIN)/python scripts/refresh-constraints.py
	touch $(VENV)/.installed $(VENV)/.installed-*

clean:
	rm -rf $(VENV) test-output .pytest_cache _build
