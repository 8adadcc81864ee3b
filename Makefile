# kfp-auth: `make demo` runs the documented usage end to end on a local stack;
# `make test` runs every test. Both install what they need on a fresh machine.

PYTHON ?= python3
VENV   := .venv
KFP18  := .cache/venv-kfp18
BENCH  := .cache/venv-bench
PIP_Q  := --quiet --disable-pip-version-check

.PHONY: demo test check venv develop stack system-deps lint actionlint typecheck test-rust test-python wheels rust-targets check-windows test-wheels platforms kfp-matrix kfp-versions fuzz fuzz-tools bench bench-sessions soak soak-ci clean

demo: develop stack
	$(VENV)/bin/python scripts/demo.py

test: lint test-rust typecheck docs test-python test-wheels kfp-matrix fuzz soak-ci

# The inner loop, about a minute when warm: the lints, the Rust tests, and the
# pytest tests that need no Dex or oauth2-proxy (`-m "not stack"`).
check: venv
	cargo fmt --check
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	cargo clippy --all-targets --features python -- -D warnings
	cargo test --quiet
	$(VENV)/bin/maturin develop --quiet
	$(VENV)/bin/python -m pytest -q -m "not stack"

# kfp 1.8 and 2.x cannot share a venv: the kfp 1.8 tests run in $(KFP18)
# (requirements-kfp18.txt, by the rule below), with the editable build of `make develop`.
venv: $(VENV)/.installed $(KFP18)/.installed

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_Q) -r requirements-dev.txt
	touch $@

# Each venv of a tool or test under .cache, .cache/venv-NAME, holds requirements-NAME.txt. It
# is made again from scratch when the Python or its requirements files (every prerequisite)
# changed, going by their content as the stamp records it; a newer mtime alone (a checkout,
# a rebase) only renews the stamp.
.cache/venv-%/.installed: requirements-%.txt
	@want="$$($(PYTHON) -VV | head -1) $$(cat $^ | sha256sum | cut -c1-16)"; \
	if [ "$$(cat $@ 2>/dev/null)" != "$$want" ]; then \
	  echo "making $(@D) from $^"; \
	  rm -rf $(@D) && $(PYTHON) -m venv $(@D) && $(@D)/bin/pip install $(PIP_Q) -r $< || exit 1; \
	fi; \
	echo "$$want" > $@

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

# actionlint from its Go module; with shellcheck on PATH it checks the run: scripts too.
actionlint:
	bash scripts/build-actionlint.sh

lint: actionlint system-deps venv check-windows
	.cache/bin/actionlint .github/workflows/release.yml
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
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

test-python: develop stack system-deps actionlint
	$(VENV)/bin/python -m pytest

# The sdist and the abi3 wheels users install: manylinux_2_17 (glibc 2.17+) x86_64
# and aarch64, and musllinux_1_2 x86_64, cross-built with zig as the linker and C
# compiler (ziglang from PyPI), so one machine builds every Linux tag and
# maturin's platform check passes for each. Symbols are stripped.
WHEELS_VENV  := .cache/venv-wheels
RUST_TARGETS := x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl
MATURIN_ZIG  := $(WHEELS_VENV)/bin/maturin build --release --strip --zig --quiet --out dist

rust-targets:
	@installed="$$(rustup target list --installed)"; for t in $(RUST_TARGETS); do \
	  echo "$$installed" | grep -qx "$$t" || rustup target add "$$t"; done

# The Windows wheel's code (its `cfg(not(unix))` parts) compiles: built only in CI,
# so checked here on the GNU target (the msvc one needs Microsoft's SDK), with zig
# as ring's C compiler. Part of `make lint`.
check-windows: $(WHEELS_VENV)/.installed
	@rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
	ZIG_TARGET=x86_64-windows-gnu CC_x86_64_pc_windows_gnu=$(CURDIR)/scripts/zig-cc.sh \
	  AR_x86_64_pc_windows_gnu=$(CURDIR)/scripts/zig-ar.sh RUSTFLAGS="-D warnings" \
	  cargo check --quiet --target x86_64-pc-windows-gnu --features python

wheels: $(WHEELS_VENV)/.installed rust-targets
	rm -rf dist
	$(WHEELS_VENV)/bin/maturin sdist --out dist
	PATH="$(CURDIR)/$(WHEELS_VENV)/bin:$$PATH" $(MATURIN_ZIG) --target x86_64-unknown-linux-gnu --compatibility manylinux2014
	PATH="$(CURDIR)/$(WHEELS_VENV)/bin:$$PATH" $(MATURIN_ZIG) --target aarch64-unknown-linux-gnu --compatibility manylinux2014
	PATH="$(CURDIR)/$(WHEELS_VENV)/bin:$$PATH" $(MATURIN_ZIG) --target x86_64-unknown-linux-musl --compatibility musllinux_1_2
	@ls -l dist

# Every claimed CPython (3.9 to 3.13) installs the x86_64 wheel with no Rust on
# PATH and runs tests/wheel against the real stack; then the README's wheel
# table must match what ran, and the README's quick start runs in a Jupyter kernel.
# Then pip's fall-backs: the sdist builds, and CPython 3.8 is refused.
test-wheels: wheels stack system-deps venv
	bash scripts/wheel-smoke.sh
	$(VENV)/bin/python scripts/platforms.py --check
	bash scripts/notebook-smoke.sh
	bash scripts/sdist-check.sh

# Rewrite the README's wheel table from the last test-wheels run.
platforms:
	$(VENV)/bin/python scripts/platforms.py --write

# The kfp versions users run (one requirements-kfp-<version>.txt each), each in a venv of
# its own holding the built x86_64 wheel, as users install it; tests/kfp_matrix runs in
# each against the real stack. Then docs/kfp-versions.md's table must match what ran.
KFP_MATRIX := $(patsubst requirements-kfp-%.txt,%,$(wildcard requirements-kfp-[0-9]*.txt))
KFP_MATRIX_VENVS := $(KFP_MATRIX:%=.cache/venv-kfp-%/.installed)
$(KFP_MATRIX_VENVS): requirements-kfp-runner.txt

kfp-matrix: wheels stack system-deps venv $(KFP_MATRIX_VENVS)
	bash scripts/kfp-matrix.sh $(KFP_MATRIX)
	$(VENV)/bin/python scripts/kfp_versions.py --check

# Rewrite docs/kfp-versions.md's table from the last kfp-matrix run.
kfp-versions:
	$(VENV)/bin/python scripts/kfp_versions.py --write

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

docs: $(DOCS_VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf target fuzz/target $(VENV) .cache site
