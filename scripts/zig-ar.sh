#!/bin/sh
# zig's archiver, for ring's build script beside scripts/zig-cc.sh.
exec "${ZIG_PYTHON:-$(dirname "$0")/../.cache/venv-wheels/bin/python}" -m ziglang ar "$@"
