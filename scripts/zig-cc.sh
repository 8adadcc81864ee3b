#!/bin/sh
# zig as a cross C compiler, for ring's build script when checking a foreign target
# (`make lint`'s Windows check). The zig target comes from $ZIG_TARGET; cc-rs's own
# `--target=<rust triple>` is dropped, as zig does not parse Rust's triples. zig is
# the ziglang package in the wheels venv, or $ZIG_PYTHON's.
for arg in "$@"; do
  shift
  case "$arg" in --target=*) ;; *) set -- "$@" "$arg" ;; esac
done
exec "${ZIG_PYTHON:-$(dirname "$0")/../.cache/venv-wheels/bin/python}" -m ziglang cc -target "$ZIG_TARGET" "$@"
