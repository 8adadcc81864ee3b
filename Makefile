# kfp-auth: `make demo` runs the documented usage end to end on a local stack;
# `make test` runs every test. Both install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
KFP18  := .cache/venv-kfp18
BENCH  := .cache/venv-bench
PIP_Q  := --quiet --disable-pip-version-check

.PHONY: demo test venv develop stack system-deps lint typecheck test-rust test-python bench bench-sessions clean

demo: develop stack
	$(VENV)/bin/python scripts/demo.py

test: lint test-rust typecheck test-python

venv: $(VENV)/.installed $(KFP18)/.installed

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_Q) -r requirements-dev.txt
	touch $@

# kfp 1.8 and 2.x cannot share a venv; the kfp 1.8 tests run here.
$(KFP18)/.installed: requirements-kfp18.txt
	$(PYTHON) -m venv $(KFP18)
	$(KFP18)/bin/pip install $(PIP_Q) -r requirements-kfp18.txt
	touch $@

# Editable installs of the extension into both venvs (one abi3 build serves both).
develop: venv
	$(VENV)/bin/maturin develop --quiet
	VIRTUAL_ENV=$(CURDIR)/$(KFP18) $(VENV)/bin/maturin develop --quiet

# The real Dex and oauth2-proxy, built from their Go modules into .cache/bin.
stack:
	bash scripts/build-stack.sh

# Debian packages the tests use (redis-server for oauth2-proxy's session store).
system-deps:
	bash scripts/install-system-deps.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings

# The stubs must match the built module, and the Python package type-checks strictly.
typecheck: develop
	$(VENV)/bin/python -m mypy.stubtest kfp_auth._native
	$(VENV)/bin/python -m mypy

test-rust:
	cargo test

test-python: develop stack system-deps
	$(VENV)/bin/python -m pytest

# kfp-auth against the documented pure-Python login, side by side on the local
# real stack; writes bench/RESULTS.md, bench/results.txt and bench/ratios.png.
# Its own venv holds an installed release wheel (the tests use a debug, editable one).
$(BENCH)/.installed: requirements-bench.txt requirements-dev.txt
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/pip install $(PIP_Q) -r requirements-bench.txt
	touch $@

bench: $(BENCH)/.installed stack system-deps
	rm -rf target/bench-wheels
	$(BENCH)/bin/maturin build --release --quiet --out target/bench-wheels
	$(BENCH)/bin/pip install $(PIP_Q) --force-reinstall --no-deps target/bench-wheels/*.whl
	$(BENCH)/bin/python -W ignore bench/run.py

# Figures for long-lived sessions (a report; see bench/sessions.py).
bench-sessions: develop stack
	$(VENV)/bin/python -W ignore bench/sessions.py

clean:
	rm -rf target $(VENV) .cache
