# kfp-auth: `make demo` runs the documented usage end to end on a local stack;
# `make test` runs every test. Both install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
KFP18  := .cache/venv-kfp18
PIP_Q  := --quiet --disable-pip-version-check

.PHONY: demo test venv develop stack system-deps lint typecheck test-rust test-python bench-sessions soak soak-ci clean

demo: develop stack
	$(VENV)/bin/python scripts/demo.py

test: lint test-rust typecheck test-python soak-ci

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

# Figures for long-lived sessions (a report; see bench/sessions.py).
bench-sessions: develop stack
	$(VENV)/bin/python -W ignore bench/sessions.py

# 100 sessions over 50 users, cookies lasting 20 s, the API called from 4 threads: fails on any
# error, or when descriptors or RSS grow past the noise bounds (see bench/soak.py).
soak: develop stack
	$(VENV)/bin/python -W ignore bench/soak.py --duration 600

# The same for 60 s, run by `make test`.
soak-ci: develop stack
	$(VENV)/bin/python -W ignore bench/soak.py --duration 60

clean:
	rm -rf target $(VENV) .cache
