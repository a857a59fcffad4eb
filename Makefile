# Two commands: `make lab` opens the course, `make test` runs every test.
# Both set the environment up first (`make setup`, idempotent: it reinstalls only when
# pyproject.toml changes). The [instructor] extra (nbgrader) comes along where the Python allows
# it (3.11 or newer); its tests skip elsewhere.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Jupyter refuses to run as root unless told; CI containers run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# What CI runs: the offline profile, TensorFlow's log noise silenced.
TEST_ENV := EANET_PROFILE=ci TF_CPP_MIN_LOG_LEVEL=3 PYTHONWARNINGS=ignore::DeprecationWarning

.PHONY: setup lab test exercises instructor clean book

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,instructor]"
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir=. notebooks/00_setup_and_data.ipynb

# Package tests, every notebook, solution and exercise under nbval, and the browser test.
test: setup
	scripts/ensure-chromium.sh $(BIN)/python
	scripts/ensure-bubblewrap.sh
	$(TEST_ENV) $(BIN)/python -m pytest --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 --timeout=900 tests notebooks solutions exercises

# The course as a website, built offline into _build/book/html (notebooks run once under the ci
# profile and are cached in _build/book; tests/test_book.py, part of `make test`, checks it).
book: setup
	$(TEST_ENV) $(BIN)/python book/build.py

exercises: setup
	$(BIN)/python -m eanet_course exercises build

# Instructors: every assignment of the nbgrader course in instructor/ generated into
# instructor/release/, ready to hand out (see "For instructors" in the README).
instructor: setup
	@$(BIN)/python -c "import nbgrader" 2>/dev/null || { echo "nbgrader is not installed:" \
		"it needs Python 3.11 or newer (make clean && make PYTHON=python3.11 instructor)"; exit 1; }
	$(BIN)/python -m eanet_course exercises check
	cd instructor && PATH="$(abspath $(BIN)):$$PATH" nbgrader generate_assignment --force "*"
	@echo "Released copies: instructor/release/. Next: cd instructor, then nbgrader autograde," \
		"generate_feedback, export with $(abspath $(BIN)) on the PATH."

# Instructors: autograde every submission of assignment A in instructor/submitted/, each in a
# sandbox (make autograde A=01_patches; see "For instructors" in the README).
.PHONY: autograde
autograde: setup
	@test -n "$(A)" || { echo "usage: make autograde A=ASSIGNMENT (e.g. A=01_patches)"; exit 2; }
	scripts/ensure-bubblewrap.sh
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m eanet_course grade "$(A)" --course instructor

clean:
	rm -rf $(VENV) test-output .pytest_cache _build
