# Two commands for a fresh machine: `make run` (the web app) and `make test` (the suite).
# Each creates .venv, installs what it needs and fetches the model first: `make run` only what
# serving needs (the package, the camera's npm runtime, README's sample files), `make test` adds
# the extras the checks, the docs and the suite need (sizes and times: docs/development.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP  := $(VENV)/.installed-test
TEST_EXTRAS := cli,server,test,cluster,quality,docs,dev,openvino
HOST   ?= 127.0.0.1
PORT   ?= 5003

# apt-get as root, or through sudo, for the few Debian packages a fresh machine may lack.
APT_INSTALL = if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; \
	$$S apt-get update -qq && $$S env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

.PHONY: run test unit check docs fuzz bench model browser web samples clean

# Debian's python3 has no venv module until python3-venv is installed: install it when needed.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  $(APT_INSTALL) python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cli,server]'
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[$(TEST_EXTRAS)]'
	touch $(TEST_STAMP)

# pip does not compile an editable install, and containers often set PYTHONDONTWRITEBYTECODE:
# then every start compiles the package again (~40 ms of a ~0.19 s `mattekit --version` here). Incremental.
# The general model (IMG.LY ISNet, AGPL-3.0, from its npm package) is fetched by name, for the
# tests and the app: mattekit itself never fetches it unasked.
model: $(STAMP)
	$(PY) -m compileall -q src
	$(PY) -m mattekit model fetch person
	@command -v npm >/dev/null 2>&1 || { $(APT_INSTALL) npm >/dev/null; }
	$(PY) -m mattekit model fetch general

# Browser tests use Debian's Chromium (browser downloads are blocked here).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(APT_INSTALL) chromium >/dev/null; }

# The page's Camera mode runs RVM in the browser on onnxruntime-web, served by the app from
# web/node_modules (ignored by git): installed here from web/package-lock.json (pinned, with
# hashes), never fetched by the page from anywhere else. Incremental.
WEB_STAMP := web/node_modules/.installed
web: $(WEB_STAMP)
$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make web: npm not found. Install Node.js and npm (Debian: apt-get install -y npm), then run make again." >&2; exit 1; }
	cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

# The files README.md's examples name (a photo, a folder of two, a clip), fetched like the
# tests' samples (tests/samples.py) into samples/, which git ignores. Incremental.
SAMPLES_STAMP := samples/.fetched
samples: $(SAMPLES_STAMP)
$(SAMPLES_STAMP): $(STAMP) tests/samples.py
	$(PY) tests/samples.py --readme samples >/dev/null
	touch $(SAMPLES_STAMP)

run: model web samples
	@echo "mattekit: serving on http://$(HOST):$(PORT)/"
	$(VENV)/bin/uvicorn app:app --host $(HOST) --port $(PORT)

# The suite, after the checks and the docs: .ci/run runs exactly this.
test: $(TEST_STAMP) model browser web samples check docs
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)

# The fast tier while working: the tests marked `unit` (in-process: no subprocess, server, browser
# or Ray; tests/conftest.py fails one that starts a process or listens on a socket), less the
# long model runs (`slow`) and ../shared/eval (`eval`). `make test` still runs everything.
unit: $(TEST_STAMP) model
	$(PY) -m pytest -q -m "unit and not slow and not eval" $(PYTEST_ARGS)

# Lint and types on the package (settings in pyproject.toml).
check: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench app.py
	$(VENV)/bin/ruff format --check src tests bench app.py
	$(VENV)/bin/mypy

# The docs site (docs/*.md through Sphinx + MyST); a warning is an error.
docs: $(TEST_STAMP)
	$(PY) -m sphinx -q -W --keep-going -b html docs docs/_build/html

fuzz: $(TEST_STAMP) model
	$(PY) -m pytest -q tests/test_fuzz.py --fuzz-long $(PYTEST_ARGS)

bench: $(TEST_STAMP) model
	$(PY) -m bench.quality
	$(PY) -m bench.speed

clean:
	rm -rf $(VENV) .pytest_cache test-output web/node_modules docs/_build samples
