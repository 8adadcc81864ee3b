#!/usr/bin/env bash
# Build actionlint (the GitHub Actions workflow linter) from its Go module into .cache/bin.
# Rebuilds only when the pinned version changes (a stamp file sits beside the binary).
set -euo pipefail

ACTIONLINT_VERSION="v1.7.12"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KFP_AUTH_CACHE:-$root/.cache}"
bin="$cache/bin"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

command -v go >/dev/null || { echo "build-actionlint: Go is required" >&2; exit 1; }

if [[ "$(cat "$bin/actionlint.version" 2>/dev/null)" != "$ACTIONLINT_VERSION" || ! -x "$bin/actionlint" ]]; then
  echo "build-actionlint: building actionlint $ACTIONLINT_VERSION" >&2
  GOBIN="$bin" go install -trimpath "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  echo "$ACTIONLINT_VERSION" > "$bin/actionlint.version"
fi
echo "build-actionlint: actionlint $ACTIONLINT_VERSION in $bin" >&2
