# kfp-auth: `make demo` runs the documented usage end to end on a local stack;
# `make test` runs every test. Both install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
KFP18  := .cache/venv-kfp18
BENCH  := .cache/venv-bench
PIP_Q  := --quiet --disable-pip-version-check

.PHONY: demo test venv develop stack system-deps lint typecheck test-rust test-python fuzz fuzz-tools bench bench-sessions soak soak-ci clean

demo: develop stack
	$(VENV)/bin/python scripts/demo.py

test: lint test-rust typecheck test-python fuzz soak-ci

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
	cd fuzz && cargo fmt --check
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

# libFuzzer on the page parser, the API-answer classifier and the cookie jar
# (fuzz/fuzz_targets), FUZZ_SECONDS each, one target at a time, from the
# committed corpus and seeds. New inputs go to fuzz/target/run-corpus (ignored),
# so the checkout stays clean; a crash, a failed assertion or an input slower
# than 20 s fails the target and leaves the input in fuzz/artifacts/<target>/.
# cargo-fuzz needs a nightly toolchain (for -Zsanitizer=address).
FUZZ_TARGETS := page response cookies
FUZZ_SECONDS ?= 60
CARGO_FUZZ_VERSION := 0.13.2

fuzz: fuzz-tools
	cargo +nightly fuzz build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/run-corpus/$$t && \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s" && \
	  cargo +nightly fuzz run $$t fuzz/target/run-corpus/$$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=20 -print_final_stats=1 || exit 1; \
	done

# A nightly toolchain and cargo-fuzz (into ~/.cargo/bin), when missing.
fuzz-tools:
	@rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)

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

# The documentation site (mkdocs.yml, docs/), in a venv of its own. --strict turns
# every warning into a failure: a broken link, anchor or API reference fails the build.
DOCS_VENV := .cache/venv-docs

.PHONY: docs

$(DOCS_VENV)/.installed: requirements-docs.txt
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install $(PIP_Q) -r requirements-docs.txt
	touch $@

docs: $(DOCS_VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf target fuzz/target $(VENV) .cache site
